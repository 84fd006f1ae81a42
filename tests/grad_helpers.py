"""Gradients with the active backend's own autodiff, for tests that check where gradients flow."""

from __future__ import annotations

import keras
import numpy as np


def gradient(fn, x: np.ndarray) -> np.ndarray:
    """d fn(x) / dx for a scalar-valued fn; zeros where x does not reach the output."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        # Jitted: one XLA compilation instead of one per primitive.
        return np.asarray(jax.jit(jax.grad(fn))(x))
    if backend == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        fn(t).backward()
        return np.zeros_like(x) if t.grad is None else t.grad.numpy()
    import tensorflow as tf

    t = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = fn(t)
    grad = tape.gradient(y, t)
    return np.zeros_like(x) if grad is None else grad.numpy()
