"""Resizing as matrix products: interpolation matrices built in numpy, applied with keras.ops.

This reproduces torch's bilinear interpolation (align_corners False/True, no antialias) and
MATLAB's bicubic imresize with antialiasing exactly on every backend.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops


def bilinear_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
    """(out_size, in_size) matrix of torch F.interpolate(mode='bilinear') along one axis."""
    out = np.arange(out_size, dtype="float64")
    if align_corners:
        src = out * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros_like(out)
    else:
        src = np.maximum((out + 0.5) * (in_size / out_size) - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    m = np.zeros((out_size, in_size))
    np.add.at(m, (np.arange(out_size), lo), 1.0 - frac)
    np.add.at(m, (np.arange(out_size), hi), frac)
    return m


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (
        -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    ) * ((ax > 1) & (ax <= 2))


def matlab_bicubic_matrix(in_size: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """(out_size, in_size) matrix of MATLAB imresize(..., scale, 'bicubic') along one axis
    (symmetric boundary), as in BasicSR's matlab_functions.calculate_weights_indices."""
    out_size = math.ceil(in_size * scale)
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel_width /= scale
    x = np.arange(1, out_size + 1, dtype="float64")
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    p = math.ceil(kernel_width) + 2
    idx = left[:, None] + np.arange(p)[None, :]
    dist = u[:, None] - idx
    if scale < 1 and antialiasing:
        w = scale * _cubic(dist * scale)
    else:
        w = _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # 1-based indices outside [1, in_size] mirror back (MATLAB's symmetric padding).
    period = np.concatenate([np.arange(in_size), np.arange(in_size)[::-1]])
    src = period[np.mod(idx.astype(int) - 1, 2 * in_size)]
    m = np.zeros((out_size, in_size))
    np.add.at(m, (np.repeat(np.arange(out_size), p), src.ravel()), w.ravel())
    return m


def apply_separable(x, rows: np.ndarray, cols: np.ndarray):
    """rows @ x @ cols.T on the H and W axes of (N, H, W, C)."""
    r = ops.cast(ops.convert_to_tensor(rows), x.dtype)
    c = ops.cast(ops.convert_to_tensor(cols), x.dtype)
    x = ops.einsum("oh,nhwc->nowc", r, x)
    return ops.einsum("pw,nowc->nopc", c, x)


def resize_bilinear(x, size: tuple[int, int], align_corners: bool = False):
    h, w = x.shape[1], x.shape[2]
    return apply_separable(
        x,
        bilinear_matrix(h, size[0], align_corners),
        bilinear_matrix(w, size[1], align_corners),
    )


def imresize_matlab(x, scale: float):
    """MATLAB imresize(x, scale) with bicubic antialiasing on (N, H, W, C)."""
    h, w = x.shape[1], x.shape[2]
    return apply_separable(
        x, matlab_bicubic_matrix(h, scale), matlab_bicubic_matrix(w, scale)
    )
