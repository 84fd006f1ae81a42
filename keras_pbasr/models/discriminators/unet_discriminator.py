"""UNetDiscriminatorSN, Real-ESRGAN's per-pixel U-Net discriminator with spectral norm."""

from __future__ import annotations

import keras

from keras_pbasr.layers.bilinear_upsample import BilinearUpsample2x
from keras_pbasr.layers.single_channel_conv import SingleChannelConv2D
from keras_pbasr.layers.spectral_norm import SpectralNormConv2D
from keras_pbasr.layers.torch_init import TorchConvUniform
from keras_pbasr.utils.arguments import refuse_unknown_arguments

# Three stride-2 convolutions and three x2 upsamplings: the skips only line up on multiples of 8.
SIZE_MULTIPLE = 8


@keras.saving.register_keras_serializable(package="keras_pbasr")
class SpatialSizeCheck(keras.layers.Layer):
    """Identity on one or more (N, H, W, C) tensors that raises a clear ValueError when H or W is
    not a multiple of `multiple` or the tensors differ in H, W. Sizes unknown while tracing
    (a TF graph with dynamic shapes) are not checked."""

    def __init__(self, multiple: int, model_name: str, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.model_name = model_name

    def call(self, inputs):
        tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        sizes = [tuple(t.shape[1:3]) for t in tensors]
        if any(s is None for size in sizes for s in size):
            return inputs
        if len(set(sizes)) > 1:
            raise ValueError(
                f"{self.model_name}: the image and the condition must have the same height "
                f"and width, got {' and '.join(f'{h}x{w}' for h, w in sizes)}"
            )
        h, w = sizes[0]
        if h % self.multiple or w % self.multiple:
            raise ValueError(
                f"{self.model_name}: height and width must be divisible by {self.multiple}, got "
                f"{h}x{w}; crop or pad the input (e.g. to "
                f"{h - h % self.multiple}x{w - w % self.multiple})"
            )
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "model_name": self.model_name}


def torch_default_conv_init(kernel_size: int, in_channels: int) -> dict:
    """Conv2D initializer arguments reproducing torch's nn.Conv2d default initialisation."""
    return {
        "kernel_initializer": TorchConvUniform(),
        "bias_initializer": TorchConvUniform(kernel_size * kernel_size * in_channels),
    }


def leaky_relu(name: str) -> keras.layers.Layer:
    # torch F.leaky_relu(negative_slope=0.2); the Keras default slope is 0.3.
    return keras.layers.LeakyReLU(negative_slope=0.2, name=name)


def unet_body(x0, num_feat: int, skip_connection: bool):
    """conv1..conv9 of the U-Net discriminator from the first features x0 to one logit per pixel.

    Shared by the unconditional and conditional discriminators; layer names follow the torch
    module names so that checkpoint keys map one to one.
    """

    def sn_conv(filters, kernel_size, strides, name):
        return SpectralNormConv2D(
            filters, kernel_size, strides=strides, padding=1, use_bias=False,
            kernel_initializer=TorchConvUniform(), name=name,
        )

    f = num_feat
    x1 = leaky_relu("lrelu1")(sn_conv(f * 2, 4, 2, "conv1")(x0))
    x2 = leaky_relu("lrelu2")(sn_conv(f * 4, 4, 2, "conv2")(x1))
    x3 = leaky_relu("lrelu3")(sn_conv(f * 8, 4, 2, "conv3")(x2))

    x4 = leaky_relu("lrelu4")(sn_conv(f * 4, 3, 1, "conv4")(BilinearUpsample2x(name="up4")(x3)))
    if skip_connection:
        x4 = keras.layers.Add(name="skip4")([x4, x2])
    x5 = leaky_relu("lrelu5")(sn_conv(f * 2, 3, 1, "conv5")(BilinearUpsample2x(name="up5")(x4)))
    if skip_connection:
        x5 = keras.layers.Add(name="skip5")([x5, x1])
    x6 = leaky_relu("lrelu6")(sn_conv(f, 3, 1, "conv6")(BilinearUpsample2x(name="up6")(x5)))
    if skip_connection:
        x6 = keras.layers.Add(name="skip6")([x6, x0])

    out = leaky_relu("lrelu7")(sn_conv(f, 3, 1, "conv7")(x6))
    out = leaky_relu("lrelu8")(sn_conv(f, 3, 1, "conv8")(out))
    out = SingleChannelConv2D(
        3, padding="same", name="conv9", **torch_default_conv_init(3, num_feat)
    )(out)
    return keras.layers.Activation("linear", dtype="float32", name="logits")(out)


@keras.saving.register_keras_serializable(package="keras_pbasr")
class UNetDiscriminatorSN(keras.Model):
    """Real-ESRGAN's U-Net discriminator: one real/fake logit per pixel.

    conv0 (3x3) -> three spectral-normalised k4 s2 p1 downsamplings -> three bilinear x2
    upsamplings each followed by an SN 3x3 conv with U-Net skips -> conv7, conv8 (SN) -> conv9.
    LeakyReLU 0.2 throughout. Input (N, H, W, num_in_ch) with H and W divisible by 8; output
    (N, H, W, 1) float32 logits. Spectral norm follows torch: call with `training=True` in the
    discriminator's training step so that u and v advance; inference uses the stored u, v.
    Default size: 4,376,897 trainable parameters (plus the non-trainable u, v vectors).

    Example:
    >>> import numpy as np
    >>> d = UNetDiscriminatorSN(num_feat=16)
    >>> d(np.zeros((2, 32, 40, 3), "float32")).shape
    (2, 32, 40, 1)
    """

    def __init__(
        self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True, **kwargs
    ):
        refuse_unknown_arguments(UNetDiscriminatorSN, kwargs)
        image = keras.Input((None, None, num_in_ch), name="image")
        checked = SpatialSizeCheck(SIZE_MULTIPLE, "UNetDiscriminatorSN", name="size_check")(image)
        x = keras.layers.Conv2D(
            num_feat, 3, padding="same", name="conv0", **torch_default_conv_init(3, num_in_ch)
        )(checked)
        x0 = leaky_relu("lrelu0")(x)
        logits = unet_body(x0, num_feat, skip_connection)
        super().__init__(inputs=image, outputs=logits, **kwargs)

        self.num_in_ch = num_in_ch
        self.num_feat = num_feat
        self.skip_connection = skip_connection

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_in_ch": self.num_in_ch,
            "num_feat": self.num_feat,
            "skip_connection": self.skip_connection,
        }
