"""Split of a per-pixel loss into its blur-region and sharp-region means (paper Table 1, Fig 4c).
"""

from __future__ import annotations

from keras import ops


def _masked_mean(values, weight, axis):
    weight = weight * ops.ones_like(values)
    total = ops.sum(weight, axis=axis)
    # An empty region has no mean: NaN, reported rather than silently dropped.
    safe_total = ops.where(total > 0, total, ops.ones_like(total))
    mean = ops.sum(values * weight, axis=axis) / safe_total
    return ops.where(total > 0, mean, ops.full_like(total, float("nan")))


def region_means(per_pixel_loss, mask, per_sample: bool = False):
    """(blur_mean, sharp_mean) of `per_pixel_loss` (N, H, W, C) over the blur map `mask`
    (broadcastable to it, typically (N, H, W, 1), 1 = sharp, 0 = blurred, values in [0, 1]; soft
    values weight a pixel into both regions).

    Returns two scalars over the batch, or two (N,) vectors with per_sample=True. A region with
    no pixels gives NaN.

    Example:
    >>> import numpy as np
    >>> loss = np.array([1.0, 2.0, 3.0, 5.0]).reshape(1, 2, 2, 1)
    >>> mask = np.array([0.0, 0.0, 1.0, 1.0]).reshape(1, 2, 2, 1)
    >>> [float(m) for m in region_means(loss, mask)]
    [1.5, 4.0]
    """
    values = ops.cast(per_pixel_loss, "float32")
    sharp_weight = ops.cast(mask, "float32")
    axis = tuple(range(1, len(values.shape))) if per_sample else None
    blur_mean = _masked_mean(values, 1.0 - sharp_weight, axis)
    sharp_mean = _masked_mean(values, sharp_weight, axis)
    return blur_mean, sharp_mean
