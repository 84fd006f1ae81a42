"""Independent PyTorch reference modules, written from the architecture descriptions in
shared/docs/reference.md (not copied from the official repositories), with the official
state_dict key layouts. Used to build random-weight checkpoints for converter parity tests."""
