"""Colour conversions used by the metrics (pyiqa conventions, channels_last)."""

from __future__ import annotations

import numpy as np
from keras import ops

COLOR_SPACES = ("yiq", "bt601")

# Luma rows of YIQ (what pyiqa calls "Y channel") and of BT.601 YCbCr (MATLAB rgb2ycbcr, on
# the 0..255 scale, plus 16, then / 255).
_LUMA = {
    "yiq": ((0.299, 0.587, 0.114), None),
    "bt601": ((65.481, 128.553, 24.966), 16.0),
}


def check_color_space(color_space: str) -> str:
    if color_space not in COLOR_SPACES:
        raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {color_space!r}")
    return color_space


def _float32(x):
    return ops.cast(x, "float32")


def rgb_to_luma(rgb, color_space: str = "yiq"):
    """(N, H, W, 3) RGB in [0, 1] -> (N, H, W, 1) float32 luma in [0, 1].

    Reproduces torch's float32 matmul bit for bit: a chain of fused multiply-adds, each
    product and sum exact in float64 and rounded to float32. This matters because SSIM, GMSD,
    VIF and NIQE round luma*255 to integers, and a different float32 summation order flips
    a few ties (e.g. 25 pixels of a 512x384 image), enough to move NIQE by 1e-2.
    Needs float64 (see float64_scope on JAX).
    """
    weights, offset = _LUMA[check_color_space(color_space)]
    x = ops.cast(_float32(rgb), "float64")
    w = [float(np.float32(v)) for v in weights]
    acc = _float32(x[..., 0:1] * w[0])
    acc = _float32(x[..., 1:2] * w[1] + ops.cast(acc, "float64"))
    acc = _float32(x[..., 2:3] * w[2] + ops.cast(acc, "float64"))
    if offset is not None:
        acc = (acc + offset) / 255.0
    return acc


def luma_255(rgb, color_space: str = "yiq", dtype: str = "float64"):
    """Luma scaled to [0, 255] and rounded (half to even), as pyiqa does before SSIM, GMSD,
    VIF and NIQE. The scaling happens in float32 like the reference; the rounded values are
    cast to `dtype`."""
    y = rgb_to_luma(rgb, color_space) * 255.0
    return ops.cast(ops.round(y), dtype)


def rgb_to_lmn(rgb):
    """The LMN opponent colour space of VSI: L = 0.06R + 0.63G + 0.27B, ..."""
    m = np.array([[0.06, 0.63, 0.27], [0.30, 0.04, -0.35], [0.34, -0.6, 0.17]])
    return ops.matmul(rgb, ops.cast(ops.convert_to_tensor(m.T), rgb.dtype))


def rgb_to_lab(rgb):
    """sRGB in [0, 1] -> CIE Lab with the D50 white point (2 degree observer), as pyiqa."""
    dtype = rgb.dtype
    linear = ops.where(rgb <= 0.04045, rgb / 12.92, ops.power((rgb + 0.055) / 1.055, 2.4))
    to_xyz = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = ops.matmul(linear, ops.cast(ops.convert_to_tensor(to_xyz.T), dtype))
    white = np.array([0.9642119944211994, 1.0, 0.8251882845188288])
    t = xyz / ops.cast(ops.convert_to_tensor(white), dtype)
    eps = float(np.finfo(np.float64 if dtype == "float64" else np.float32).eps)
    cube_root = ops.sign(t) * ops.power(ops.abs(t + eps), 1.0 / 3.0)
    f = ops.where(t > 0.008856, cube_root, (903.3 * t + 16.0) / 116.0)
    to_lab = np.array([[0, 116.0, 0], [500.0, -500.0, 0], [0, 200.0, -200.0]])
    lab = ops.matmul(f, ops.cast(ops.convert_to_tensor(to_lab.T), dtype))
    return lab + ops.cast(ops.convert_to_tensor(np.array([-16.0, 0.0, 0.0])), dtype)
