"""Bicubic resizing by a rational factor, as ncnn's Interp (type 3) and torch's
`F.interpolate(mode="bicubic", align_corners=False)` compute it.

Keras' own bicubic resize differs by backend (TensorFlow and JAX use the Keys kernel with
a = -0.5, and JAX antialiases when it shrinks), so the official animevideov3 x2 / x3 graphs
(an x4 network followed by a bicubic resize by 1/2 or 3/4) need this exact one: cubic
convolution with a = -0.75, half-pixel centres, no antialiasing, edge pixels repeated.

For a factor p/q (in lowest terms) and a size that is a multiple of q, output pixel
k*p + j reads input pixels k*q + o_j - 1 .. k*q + o_j + 2 with fixed weights: p phases per
axis. The layer computes each phase with strided slices and interleaves the p*p phases with
depth_to_space, so it needs no resize matrix and works with any (dynamic) image size.
"""

from __future__ import annotations

import math
from fractions import Fraction

import keras
import numpy as np

CUBIC_A = -0.75


def cubic_weights(t: float, a: float = CUBIC_A) -> np.ndarray:
    """Weights of the four taps at offsets -1, 0, 1, 2 for a fractional position t in [0, 1).

    Example:
    >>> cubic_weights(0.0).tolist()
    [0.0, 1.0, 0.0, 0.0]
    """

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.array([far(t + 1), near(t), near(1 - t), far(2 - t)], np.float64)


def cubic_phases(numerator: int, denominator: int) -> list[tuple[int, np.ndarray]]:
    """For a resize by numerator/denominator (lowest terms): per output phase j, the input
    offset o_j of tap 0 within a block of `denominator` pixels and the four tap weights.

    Output pixel x = k*numerator + j samples input position (x + 0.5) / factor - 0.5.

    Example:
    >>> [(o, w.round(4).tolist()) for o, w in cubic_phases(1, 2)]
    [(0, [-0.0938, 0.5938, 0.5938, -0.0938])]
    """
    phases = []
    for j in range(numerator):
        position = (j + 0.5) * denominator / numerator - 0.5
        offset = math.floor(position)
        phases.append((offset, cubic_weights(position - offset)))
    return phases


@keras.saving.register_keras_serializable(package="keras_pbasr")
class CubicResize(keras.layers.Layer):
    """(N, H, W, C) -> (N, H*p/q, W*p/q, C), bicubic (a = -0.75, half-pixel, edge clamp).

    H and W must be multiples of q (the factor's denominator in lowest terms).

    Example:
    >>> import numpy as np
    >>> tuple(CubicResize(3, 4)(np.zeros((1, 8, 12, 3), "float32")).shape)
    (1, 6, 9, 3)
    """

    def __init__(self, numerator: int, denominator: int, **kwargs):
        super().__init__(**kwargs)
        factor = Fraction(int(numerator), int(denominator))
        if factor <= 0:
            raise ValueError(f"the resize factor must be positive, got {numerator}/{denominator}")
        self.numerator, self.denominator = factor.numerator, factor.denominator
        self._phases = cubic_phases(self.numerator, self.denominator)
        offsets = [o + d for o, _ in self._phases for d in (-1, 2)]
        # Edge pixels repeated on both sides so every strided slice stays inside.
        self._pad = max(abs(min(offsets)), max(offsets)) + 1

    def _edge_pad(self, x, axis: int):
        first, last, pad = _edge(x, axis, 0), _edge(x, axis, -1), self._pad
        return keras.ops.concatenate([first] * pad + [x] + [last] * pad, axis=axis)

    def _phase_axis(self, x, axis: int) -> list:
        """The p phases along `axis` (1 = height, 2 = width), each (size / q) long."""
        padded = self._edge_pad(x, axis)
        q, pad = self.denominator, self._pad
        outputs = []
        for offset, weights in self._phases:
            total = None
            for tap, weight in zip((-1, 0, 1, 2), weights):
                if weight == 0.0:
                    continue
                start, end = pad + offset + tap, -(pad - offset - tap)
                index = [slice(None)] * 4
                index[axis] = slice(start, end, q)
                term = padded[tuple(index)] * keras.ops.cast(weight, x.dtype)
                total = term if total is None else total + term
            outputs.append(total)
        return outputs

    def call(self, x):
        rows = self._phase_axis(x, 1)
        phases = [col for row in rows for col in self._phase_axis(row, 2)]
        if self.numerator == 1:
            return phases[0]
        # Phase (i, j) of channel c -> channel (i*p + j)*C + c: Keras depth_to_space order.
        stacked = keras.ops.concatenate(phases, axis=-1)
        return keras.ops.depth_to_space(stacked, self.numerator, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape

        def scaled(size):
            return None if size is None else size * self.numerator // self.denominator

        return (n, scaled(h), scaled(w), c)

    def get_config(self):
        return {**super().get_config(), "numerator": self.numerator,
                "denominator": self.denominator}


def _edge(x, axis: int, position: int):
    """The first (0) or last (-1) pixel along `axis`, keeping the axis."""
    index = [slice(None)] * 4
    index[axis] = slice(0, 1) if position == 0 else slice(-1, None)
    return x[tuple(index)]
