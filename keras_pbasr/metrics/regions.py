"""Region weights for blur/sharp-restricted metrics and input preparation.

A blur map (mask) follows the ReBlurSR convention: 0 = blurred pixel, 255 = sharp pixel.
The region weight lives at HR resolution: "all" -> 1, "blur" -> 1 - mask/255,
"sharp" -> mask/255. Every full-reference metric takes such a weight and reduces its
per-position terms with weighted means, so that an all-ones weight gives exactly the
unmasked value, scaling the weight changes nothing, and an empty region gives NaN.
"""

from __future__ import annotations

import numpy as np
from keras import ops

REGIONS = ("all", "blur", "sharp")


def region_weight(mask, region: str) -> np.ndarray:
    """Weight map (N, H, W, 1) float32 for `region` from a blur map with values in [0, 255]
    (0 = blurred, 255 = sharp), given as (H, W), (N, H, W) or (N, H, W, 1).

    Example:
    >>> region_weight(np.array([[0.0, 255.0]]), "blur")[0, 0, :, 0]
    array([1., 0.], dtype=float32)
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    m = np.asarray(mask, dtype="float32")
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 3:
        m = m[..., None]
    if m.ndim != 4 or m.shape[-1] != 1:
        raise ValueError(f"mask must be (H, W), (N, H, W) or (N, H, W, 1), got {m.shape}")
    if region == "all":
        return np.ones_like(m)
    sharp = m / 255.0
    return sharp if region == "sharp" else 1.0 - sharp


def crop_border(x, border: int):
    """Drops `border` pixels on every side of H and W (before any colour conversion)."""
    if border == 0 or x is None:
        return x
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    return x[:, border:-border, border:-border, :]


def prepare_pair(sr, hr, weight=None, border: int = 0, name: str = "metric"):
    """Checks shapes, crops, and returns float32 (sr, hr) and a float weight (N, H, W, 1).

    Raises ValueError when SR and HR differ in shape or the weight does not match them.
    """
    sr = ops.cast(ops.convert_to_tensor(sr), "float32")
    hr = ops.cast(ops.convert_to_tensor(hr), "float32")
    if len(sr.shape) != 4:
        raise ValueError(f"{name}: images must be (N, H, W, C), got {tuple(sr.shape)}")
    if tuple(sr.shape) != tuple(hr.shape):
        raise ValueError(
            f"{name}: SR shape {tuple(sr.shape)} differs from HR shape {tuple(hr.shape)}"
        )
    if weight is None:
        weight = ops.ones(tuple(sr.shape[:3]) + (1,), "float32")
    else:
        weight = ops.cast(ops.convert_to_tensor(weight), "float32")
        if len(weight.shape) == 3:
            weight = weight[..., None]
        if tuple(weight.shape) != tuple(sr.shape[:3]) + (1,):
            raise ValueError(
                f"{name}: weight shape {tuple(weight.shape)} does not match images "
                f"{tuple(sr.shape)} (expected (N, H, W, 1))"
            )
    border = int(border)
    return crop_border(sr, border), crop_border(hr, border), crop_border(weight, border)


def nan_if_empty(value, weight):
    """NaN where the region weight sums to zero (an empty region), else `value`."""
    total = ops.sum(ops.cast(weight, value.dtype), axis=(1, 2, 3))
    return ops.where(total > 0, value, ops.cast(float("nan"), value.dtype))
