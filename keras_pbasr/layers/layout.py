"""Which channel layout the convolutional backbones compute in, and a layout-aware PReLU.

The backbones take and return channels_last tensors on every backend. Internally they may
compute in channels_first: Keras' torch backend converts every channels_last conv input to
NCHW and back (two copies per conv, about half of RRDBNet's CPU time in eager torch), while
a channels_first conv hands torch its tensor as is. TensorFlow's CPU conv only supports
channels_last, and XLA (JAX) picks its own layout, so they stay channels_last.
"""

from __future__ import annotations

import keras
from keras import layers, ops, saving

DATA_FORMATS = ("channels_last", "channels_first")


def preferred_data_format() -> str:
    """The faster internal layout for the current Keras backend (the one place it is chosen)."""
    return "channels_first" if keras.backend.backend() == "torch" else "channels_last"


def resolve_data_format(data_format: str | None) -> str:
    """`data_format`, or the backend's preferred one when None; validates the name."""
    if data_format is None:
        return preferred_data_format()
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS} or None, got {data_format!r}")
    return data_format


def channel_axis(data_format: str) -> int:
    return 1 if data_format == "channels_first" else -1


def to_internal_layout(x, data_format: str, name: str):
    """channels_last (N, H, W, C) -> the internal layout (a no-op for channels_last)."""
    if data_format == "channels_last":
        return x
    return layers.Permute((3, 1, 2), name=name)(x)


def to_channels_last(x, data_format: str, name: str):
    """The internal layout -> channels_last (a no-op for channels_last)."""
    if data_format == "channels_last":
        return x
    return layers.Permute((2, 3, 1), name=name)(x)


@saving.register_keras_serializable(package="keras_pbasr")
class PReLU(layers.Layer):
    """torch's nn.PReLU(num_parameters=C): x if x >= 0 else alpha[c] * x, one slope per channel,
    in either layout.

    The slopes are stored as `alpha` with shape (1, 1, C) in both layouts, as by a Keras
    PReLU(shared_axes=[1, 2]). The class is named like Keras' PReLU on purpose: Keras finds
    layers in weight files by class name, so files written with keras.layers.PReLU load here.

    Example:
    >>> import numpy as np
    >>> layer = PReLU()
    >>> keras.ops.convert_to_numpy(layer(np.array([[[[-1.0, 2.0]]]], "float32"))).tolist()
    [[[[-0.25, 2.0]]]]
    """

    def __init__(self, data_format: str = "channels_last", alpha_init: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.data_format = resolve_data_format(data_format)
        self.alpha_init = float(alpha_init)

    def build(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
        self.alpha = self.add_weight(
            shape=(1, 1, channels), initializer=keras.initializers.Constant(self.alpha_init),
            name="alpha",
        )

    def call(self, x):
        alpha = ops.cast(self.alpha, x.dtype)
        if self.data_format == "channels_first":
            alpha = ops.reshape(alpha, (-1, 1, 1))
        # torch's definition, max(0, x) + alpha * min(0, x); one op fewer than Keras' PReLU.
        return ops.relu(x) + alpha * ops.minimum(x, 0.0)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "alpha_init": self.alpha_init}
