"""Pooling used by the perceptual metrics: DISTS' L2 pooling and area (adaptive average)
resizing of weight maps to a feature map's resolution."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def hanning_l2_filter() -> np.ndarray:
    """DISTS' 3x3 filter: outer([.5, 1, .5], [.5, 1, .5]) normalised to sum 1."""
    a = np.hanning(5)[1:-1]
    g = a[:, None] * a[None, :]
    return (g / g.sum()).astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_pbasr")
class L2Pooling2D(keras.layers.Layer):
    """DISTS' L2 pooling: sqrt(depthwise_conv(x^2, hanning) + 1e-12), stride 2, zero pad 1
    (torch: F.conv2d(x**2, filter, stride=2, padding=1, groups=C)). Output size ceil(H/2).

    Example:
    >>> import numpy as np
    >>> L2Pooling2D()(np.ones((1, 7, 8, 4), "float32")).shape
    (1, 4, 4, 4)
    """

    def build(self, input_shape):
        channels = input_shape[-1]
        # A fixed filter, not a weight: (3, 3, C, 1) for a depthwise conv.
        self._filter = np.tile(hanning_l2_filter()[:, :, None, None], (1, 1, channels, 1))

    def call(self, x):
        x = ops.pad(ops.square(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
        kernel = ops.convert_to_tensor(self._filter, dtype=x.dtype)
        out = ops.depthwise_conv(x, kernel, strides=2, padding="valid")
        return ops.sqrt(out + 1e-12)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        half = lambda s: None if s is None else (s + 1) // 2  # noqa: E731
        return (n, half(h), half(w), c)


def area_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) averaging matrix of torch's adaptive average pooling (= resize
    mode 'area'): output i averages inputs floor(i*I/O) .. ceil((i+1)*I/O) - 1."""
    matrix = np.zeros((out_size, in_size), np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def area_resize(weight, height: int, width: int):
    """Area-averages a (N, H, W, C) map to (N, height, width, C) (adaptive average pooling).

    Example:
    >>> import numpy as np
    >>> area_resize(np.ones((1, 9, 7, 1), "float32"), 3, 2).shape
    (1, 3, 2, 1)
    """
    in_h, in_w = int(weight.shape[1]), int(weight.shape[2])
    if (in_h, in_w) == (height, width):  # the identity: callers may pass a resized map
        return ops.cast(weight, "float32")
    rows = ops.convert_to_tensor(area_weights(in_h, height))
    cols = ops.convert_to_tensor(area_weights(in_w, width))
    weight = ops.cast(weight, "float32")
    return ops.einsum("ih,nhwc,jw->nijc", rows, weight, cols)


def weighted_spatial_mean(values, weight=None):
    """Mean over H and W of (N, H, W, C) values -> (N, C); with a weight map (N, H, W, 1)
    area-averaged to their resolution: sum(w*v)/sum(w) (NaN where the weight is all zero).
    A weight already at their resolution is used as it is (area_resize is then the identity).

    Rows are reduced first, then columns: float32 sums over a whole image at once lose
    digits on TensorFlow (DISTS' covariance then misses torch's value by ~4e-4)."""
    if weight is None:
        return ops.mean(ops.mean(values, axis=1), axis=1)
    w = area_resize(weight, int(values.shape[1]), int(values.shape[2]))
    weighted_sum = ops.sum(ops.sum(values * w, axis=1), axis=1)
    return weighted_sum / ops.sum(ops.sum(w, axis=1), axis=1)
