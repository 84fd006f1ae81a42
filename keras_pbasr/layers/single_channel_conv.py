"""A Conv2D with one output channel that can be differentiated on the torch backend.

PyTorch 2.13 (CPU) cannot backpropagate through conv2d when the input is channels_last memory
and the weight is a permuted view with a single output channel, which is exactly what Keras'
torch backend passes for a channels_last Conv2D(1, ...): the backward pass fails with
"slow_conv2d: grad_weight must be contiguous". With two output channels torch takes another
kernel, so on torch this layer convolves with the kernel padded by one zero output channel and
keeps the first channel. Weights, outputs and gradients are those of keras.layers.Conv2D.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_pbasr")
class SingleChannelConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D with filters=1 (a per-pixel logit or score head), differentiable on
    every backend. Takes Conv2D's arguments except `filters`.

    Example:
    >>> import numpy as np
    >>> head = SingleChannelConv2D(3, padding="same")
    >>> head(np.zeros((1, 5, 7, 8), "float32")).shape
    (1, 5, 7, 1)
    """

    def __init__(self, kernel_size, **kwargs):
        kwargs.pop("filters", None)  # present in configs written by get_config
        super().__init__(1, kernel_size, **kwargs)

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "torch":
            return super().convolution_op(inputs, kernel)
        padded = ops.pad(kernel, ((0, 0), (0, 0), (0, 0), (0, 1)))
        outputs = super().convolution_op(inputs, padded)
        return outputs[..., :1] if self.data_format == "channels_last" else outputs[:, :1]
