"""SRFormer: permuted self-attention super-resolution transformer."""
