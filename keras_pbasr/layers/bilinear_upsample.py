"""Bilinear x2 upsampling with torch's align_corners=False semantics, for any (also dynamic) size.

keras.layers.UpSampling2D(interpolation="bilinear") computes the same values but fails inside a
TF graph whose height/width are unknown (ops.image.resize needs a static size). For a factor of
2 with half-pixel centres every output is a fixed blend of two neighbours, so the layer needs
no resize op:
    out[2i]     = 0.75 * x[i] + 0.25 * x[max(i - 1, 0)]
    out[2i + 1] = 0.75 * x[i] + 0.25 * x[min(i + 1, n - 1)]
"""

from __future__ import annotations

import keras
from keras import ops


def _upsample_axis_2x(x, axis: int):
    """Doubles one spatial axis (1 or 2) of an (N, H, W, C) tensor."""
    first = ops.take(x, [0], axis=axis)
    last = ops.take(x, [-1], axis=axis)
    if axis == 1:
        previous = ops.concatenate([first, x[:, :-1]], axis=1)
        following = ops.concatenate([x[:, 1:], last], axis=1)
    else:
        previous = ops.concatenate([first, x[:, :, :-1]], axis=2)
        following = ops.concatenate([x[:, :, 1:], last], axis=2)
    even = 0.75 * x + 0.25 * previous
    odd = 0.75 * x + 0.25 * following
    # Interleave: (..., n, 2, ...) flattened row-major puts even[i], odd[i] next to each other.
    interleaved = ops.stack([even, odd], axis=axis + 1)
    shape = ops.shape(x)
    new_shape = [shape[0], shape[1], shape[2], x.shape[3]]
    new_shape[axis] = shape[axis] * 2
    return ops.reshape(interleaved, new_shape)


def bilinear_upsample_2x(x):
    """(N, H, W, C) -> (N, 2H, 2W, C), as torch F.interpolate(scale_factor=2, mode="bilinear",
    align_corners=False)."""
    x = ops.convert_to_tensor(x)
    return _upsample_axis_2x(_upsample_axis_2x(x, 1), 2)


@keras.saving.register_keras_serializable(package="keras_pbasr")
class BilinearUpsample2x(keras.layers.Layer):
    """Layer form of `bilinear_upsample_2x` (channels_last).

    Example:
    >>> import numpy as np
    >>> BilinearUpsample2x()(np.zeros((1, 3, 5, 2), "float32")).shape
    (1, 6, 10, 2)
    """

    def call(self, inputs):
        return bilinear_upsample_2x(inputs)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, c)
