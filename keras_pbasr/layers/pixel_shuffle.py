"""Pixel (un)shuffle in Keras channel order.

Keras' depth_to_space puts sub-pixel (i, j) of channel c at input channel (i*r + j)*C + c;
torch's PixelShuffle uses c*r*r + i*r + j. The layers here use the Keras order and the
checkpoint converters permute the adjacent conv weights (see keras_pbasr.convert).
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_pbasr")
class PixelShuffle(keras.layers.Layer):
    """(N, H, W, C*r*r) -> (N, H*r, W*r, C)."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, x):
        return keras.ops.depth_to_space(x, self.scale, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        return (n, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_pbasr")
class PixelUnshuffle(keras.layers.Layer):
    """(N, H*r, W*r, C) -> (N, H, W, C*r*r)."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, x):
        return keras.ops.space_to_depth(x, self.scale, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        return (n, None if h is None else h // r, None if w is None else w // r, c * r * r)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
