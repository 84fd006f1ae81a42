"""The blur-map-conditioned U-Net discriminator of PBaSR's blur branch (D_B), in both
variants of the official code: ConditionalUNetDiscriminatorSN ("v1") and
ConditionalUNetDiscriminatorSNv2 ("v2")."""

from __future__ import annotations

import keras
import numpy as np

from keras_pbasr.models.discriminators.unet_discriminator import (
    SIZE_MULTIPLE,
    SpatialSizeCheck,
    leaky_relu,
    torch_default_conv_init,
    unet_body,
)
from keras_pbasr.utils.arguments import refuse_unknown_arguments

VARIANTS = ("v1", "v2")


@keras.saving.register_keras_serializable(package="keras_pbasr")
class PassThroughFusionInitializer(keras.initializers.Initializer):
    """1x1 fusion kernel (1, 1, image_ch + cond_ch, out) that copies the first `out` input
    channels (the image features) and ignores the condition channels, so that v2 starts out as
    the unconditional discriminator."""

    def __call__(self, shape, dtype=None):
        kh, kw, in_channels, out_channels = shape
        if (kh, kw) != (1, 1) or in_channels < out_channels:
            raise ValueError(f"PassThroughFusionInitializer needs a 1x1 kernel, got {shape}")
        kernel = np.zeros(shape, "float32")
        kernel[0, 0, :out_channels, :] = np.eye(out_channels, dtype="float32")
        return keras.ops.convert_to_tensor(kernel, dtype=dtype)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="keras_pbasr")
class ConditionalUNetDiscriminatorSN(keras.Model):
    """U-Net SN discriminator conditioned on the HR blur map (1 = sharp, 0 = blurred).

    Called as `D([image, cond])` with image (N, H, W, num_in_ch) and cond (N, H, W, num_cond_ch),
    H and W divisible by 8; returns (N, H, W, 1) float32 logits.

    variant="v1": pred_conv(image) and pred_conv_cond(cond), 3x3 convs to num_feat/2 channels each,
    concatenated (image first) and fused by a 1x1 `concat_layer`, with no activation in between;
    then conv0 (num_feat -> num_feat) + LeakyReLU and the U-Net of UNetDiscriminatorSN.
    4,417,409 trainable parameters by default.

    variant="v2": x0 = LeakyReLU(conv0(image)) as in the unconditional D; the condition goes
    through LeakyReLU(pred_conv_cond) to num_feat/2 channels; `concat_layer` (1x1, num_feat +
    num_feat/2 -> num_feat) fuses them and its output replaces x0 (input of conv1 and of the last
    skip). The fusion starts as identity on the image features and zero on the condition, so at
    initialisation v2 equals an unconditional D with the same weights and can be initialised from
    one. 4,383,425 trainable parameters by default.

    Example:
    >>> import numpy as np
    >>> d = ConditionalUNetDiscriminatorSN(num_feat=16, variant="v2")
    >>> image, blur_map = np.zeros((1, 32, 40, 3), "float32"), np.ones((1, 32, 40, 1), "float32")
    >>> d([image, blur_map]).shape
    (1, 32, 40, 1)
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_cond_ch: int = 1,
        num_feat: int = 64,
        skip_connection: bool = True,
        variant: str = "v2",
        **kwargs,
    ):
        refuse_unknown_arguments(ConditionalUNetDiscriminatorSN, kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if num_feat % 2:
            raise ValueError(f"num_feat must be even (the condition gets num_feat/2): {num_feat}")
        half = num_feat // 2

        image = keras.Input((None, None, num_in_ch), name="image")
        cond = keras.Input((None, None, num_cond_ch), name="condition")
        checked_image, checked_cond = SpatialSizeCheck(
            SIZE_MULTIPLE, "ConditionalUNetDiscriminatorSN", name="size_check"
        )([image, cond])

        def conv(filters, kernel_size, in_channels, name, **initializers):
            initializers = {**torch_default_conv_init(kernel_size, in_channels), **initializers}
            return keras.layers.Conv2D(
                filters, kernel_size, padding="same", name=name, **initializers
            )

        if variant == "v1":
            image_feat = conv(half, 3, num_in_ch, "pred_conv")(checked_image)
            cond_feat = conv(half, 3, num_cond_ch, "pred_conv_cond")(checked_cond)
            fused = keras.layers.Concatenate(name="concat")([image_feat, cond_feat])
            fused = conv(num_feat, 1, 2 * half, "concat_layer")(fused)
            x0 = leaky_relu("lrelu0")(conv(num_feat, 3, num_feat, "conv0")(fused))
        else:
            image_feat = leaky_relu("lrelu0")(conv(num_feat, 3, num_in_ch, "conv0")(checked_image))
            cond_feat = leaky_relu("lrelu_cond")(
                conv(half, 3, num_cond_ch, "pred_conv_cond")(checked_cond)
            )
            fused = keras.layers.Concatenate(name="concat")([image_feat, cond_feat])
            x0 = conv(
                num_feat, 1, num_feat + half, "concat_layer",
                kernel_initializer=PassThroughFusionInitializer(), bias_initializer="zeros",
            )(fused)
        logits = unet_body(x0, num_feat, skip_connection)
        super().__init__(inputs=[image, cond], outputs=logits, **kwargs)

        self.num_in_ch = num_in_ch
        self.num_cond_ch = num_cond_ch
        self.num_feat = num_feat
        self.skip_connection = skip_connection
        self.variant = variant

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_in_ch": self.num_in_ch,
            "num_cond_ch": self.num_cond_ch,
            "num_feat": self.num_feat,
            "skip_connection": self.skip_connection,
            "variant": self.variant,
        }


def conditional_from_unconditional(
    unconditional: keras.Model, num_cond_ch: int = 1, name: str | None = None
) -> ConditionalUNetDiscriminatorSN:
    """A v2 ConditionalUNetDiscriminatorSN that starts as a copy of an UNetDiscriminatorSN.

    conv0 .. conv9 (with their spectral-norm vectors) are copied by layer name; the condition
    path (pred_conv_cond) keeps its fresh initialisation and the 1x1 fusion starts as the
    identity on the image features, so the result equals `unconditional` on any image until it
    is trained (PBaSR's D_B started from D_G).

    Example:
    >>> from keras_pbasr.models.discriminators import UNetDiscriminatorSN
    >>> d_blur = conditional_from_unconditional(UNetDiscriminatorSN(num_feat=16))
    >>> d_blur.variant
    'v2'
    """
    config = unconditional.get_config()
    conditional = ConditionalUNetDiscriminatorSN(
        num_in_ch=config["num_in_ch"],
        num_cond_ch=num_cond_ch,
        num_feat=config["num_feat"],
        skip_connection=config["skip_connection"],
        variant="v2",
        name=name or "discriminator_blur",
    )
    targets = {layer.name: layer for layer in conditional.layers}
    for layer in unconditional.layers:
        if not layer.weights:
            continue
        target = targets.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if target is None or [tuple(w.shape) for w in target.weights] != shapes:
            raise ValueError(
                f"cannot start D_B from this discriminator: its layer {layer.name!r} has no "
                "counterpart of the same shape in ConditionalUNetDiscriminatorSN v2"
            )
        target.set_weights(layer.get_weights())
    return conditional
