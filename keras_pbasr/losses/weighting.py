"""Weighted means of per-pixel loss maps, shared by the pixel and GAN losses."""

from __future__ import annotations

from keras import ops


def weighted_mean(values, weight=None):
    """Mean of `values`, or sum(values * w) / sum(w) with `weight` broadcast to values' shape.

    A (N, H, W, 1) weight map thus weights every channel of a pixel equally (BasicSR's
    weight_reduce_loss does the same); an all-ones map gives exactly the plain mean. An all-zero
    map gives NaN (0/0), never a silent 0.
    """
    values = ops.cast(values, "float32")
    if weight is None:
        return ops.mean(values)
    weight = ops.cast(weight, "float32") * ops.ones_like(values)
    return ops.sum(values * weight) / ops.sum(weight)
