"""GMSD (gradient magnitude similarity deviation; lower is better), optionally by region."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_pbasr.metrics.color import luma_255
from keras_pbasr.metrics.compilation import compiled_metric
from keras_pbasr.metrics.functional import gradient_magnitude, mean_pool, weighted_std
from keras_pbasr.metrics.regions import nan_if_empty, prepare_pair

PREWITT_X = np.array([[1.0, 0.0, -1.0]] * 3) / 3.0
GMSD_T = 170.0


def gms_map(x, y):
    """Gradient magnitude similarity map of two luma*255 images after 2x2 mean pooling."""
    pooled = mean_pool(ops.concatenate([x, y], axis=0), 2)
    g1, g2 = ops.split(gradient_magnitude(pooled, PREWITT_X, 1e-12), 2)
    return (2 * g1 * g2 + GMSD_T) / (g1 * g1 + g2 * g2 + GMSD_T)


def gmsd(sr, hr, weight=None, *, crop_border: int = 0, color_space: str = "yiq"):
    """GMSD per image: unbiased standard deviation of the GMS map (pyiqa). A region weight is
    2x2 mean-pooled like the image and gives a weighted standard deviation. Returns (N,)."""
    sr, hr, weight = prepare_pair(sr, hr, weight, crop_border, "GMSD")
    if min(sr.shape[1], sr.shape[2]) < 4:
        raise ValueError(f"GMSD needs images of at least 4x4 px, got {sr.shape[1]}x{sr.shape[2]}")
    return _gmsd(sr, hr, weight, color_space=color_space)


@compiled_metric(static=("color_space",))
def _gmsd(sr, hr, weight, *, color_space: str):
    q = gms_map(luma_255(sr, color_space), luma_255(hr, color_space))
    w = mean_pool(ops.cast(weight, "float64"), 2)
    return nan_if_empty(weighted_std(q, w), w)
