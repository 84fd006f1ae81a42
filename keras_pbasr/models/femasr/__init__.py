"""FeMaSR: VQGAN-prior super-resolution (HQ stage and LQ stage)."""
