"""Backend-agnostic building blocks of the image-quality metrics (keras.ops only).

Images are channels_last: (N, H, W, C). Filters are applied per channel as
cross-correlation (like torch's F.conv2d, which the reference implementations use).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import numpy as np
from keras import ops


@contextlib.contextmanager
def float64_scope() -> Iterator[None]:
    """Lets float64 tensors be float64 inside the block on every backend.

    JAX silently turns float64 into float32 unless x64 is enabled; TensorFlow and torch
    support float64 natively, so this is a no-op there.
    """
    if keras.backend.backend() == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


def pad2d(x, top: int, bottom: int, left: int, right: int, mode: str = "reflect"):
    """Pads H and W like numpy.pad (`reflect`, `symmetric`, `edge`, `constant` = zeros).

    Implemented as a gather with numpy-computed indices because keras.ops.pad's
    reflect/symmetric/edge modes are not supported alike by every backend.
    """
    if mode == "constant":
        return ops.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    h, w = x.shape[1], x.shape[2]
    rows = np.pad(np.arange(h), (top, bottom), mode=mode)
    cols = np.pad(np.arange(w), (left, right), mode=mode)
    x = ops.take(x, ops.convert_to_tensor(rows, "int32"), axis=1)
    return ops.take(x, ops.convert_to_tensor(cols, "int32"), axis=2)


def filter2d(x, kernel: np.ndarray, stride: int | tuple[int, int] = 1):
    """'valid' cross-correlation of every channel of x with one 2-D kernel."""
    n, h, w, c = x.shape
    kernel = np.asarray(kernel, dtype="float64")
    k = ops.cast(ops.convert_to_tensor(kernel[:, :, None, None]), x.dtype)
    if c == 1:
        return ops.conv(x, k, strides=stride, padding="valid")
    planes = ops.reshape(ops.transpose(x, (0, 3, 1, 2)), (-1, h, w, 1))
    out = ops.conv(planes, k, strides=stride, padding="valid")
    out = ops.reshape(out, (-1, c, out.shape[1], out.shape[2]))
    return ops.transpose(out, (0, 2, 3, 1))


def filter_bank2d(x, kernels: np.ndarray, stride: int | tuple[int, int] = 1):
    """'valid' cross-correlation of single-channel x (N, H, W, 1) with F kernels (k, k, F),
    in one convolution -> (N, h, w, F)."""
    if x.shape[-1] != 1:
        raise ValueError(f"filter_bank2d takes one channel, got {x.shape[-1]}")
    k = ops.cast(ops.convert_to_tensor(np.asarray(kernels, "float64")[:, :, None, :]), x.dtype)
    return ops.conv(x, k, strides=stride, padding="valid")


def gradient_magnitude(x, kernel_x: np.ndarray, eps: float):
    """sqrt(gx^2 + gy^2 + eps) of single-channel x, with gx / gy from `kernel_x` and its
    transpose after zero padding of 1 (same size; GMSD's Prewitt, VSI's Scharr)."""
    padded = pad2d(x, 1, 1, 1, 1, mode="constant")
    gradients = filter_bank2d(padded, np.stack([kernel_x, kernel_x.T], axis=-1))
    return ops.sqrt(ops.sum(gradients * gradients, axis=-1, keepdims=True) + eps)


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """MATLAB fspecial('gaussian', size, sigma), rounded to float32 values like pyiqa's."""
    m = (size - 1.0) / 2.0
    y, x = np.ogrid[-m : m + 1, -m : m + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return (h / h.sum()).astype("float32").astype("float64")


def avg_pool2x2_zero_pad(x):
    """torch avg_pool2d(kernel 2, padding=(H % 2, W % 2)) with zero padding counted."""
    ph, pw = x.shape[1] % 2, x.shape[2] % 2
    return mean_pool(pad2d(x, ph, ph, pw, pw, mode="constant"), 2)


def mean_pool(x, k: int):
    """Non-overlapping k x k mean, dropping a partial last row/column (torch avg_pool2d)."""
    if k == 1:
        return x
    n, h, w, c = x.shape
    hh, ww = h // k, w // k
    x = x[:, : hh * k, : ww * k, :]
    x = ops.reshape(x, (-1, hh, k, ww, k, c))
    return ops.mean(x, axis=(2, 4))


def weighted_mean(values, weight, axis=(1, 2, 3)):
    """sum(w * v) / sum(w) with w broadcast over channels; NaN when the weights sum to 0."""
    weight = weight * ops.ones_like(values)
    return ops.sum(values * weight, axis=axis) / ops.sum(weight, axis=axis)


def weighted_std(values, weight, axis=(1, 2, 3)):
    """Unbiased weighted standard deviation with reliability weights.

    Divides by V1 - V2/V1 (V1 = sum w, V2 = sum w^2): this is n - 1 for all-ones weights
    (torch.std), sum(w) - 1 for binary weights, and unchanged when w is scaled.
    """
    weight = weight * ops.ones_like(values)
    v1 = ops.sum(weight, axis=axis)
    v2 = ops.sum(weight * weight, axis=axis)
    mean = ops.sum(values * weight, axis=axis) / v1
    shape = [-1] + [1] * (len(values.shape) - 1)
    centred = values - ops.reshape(mean, shape)
    var = ops.sum(weight * centred * centred, axis=axis) / (v1 - v2 / v1)
    return ops.sqrt(var)
