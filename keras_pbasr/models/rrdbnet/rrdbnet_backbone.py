"""RRDBNet, the ESRGAN / Real-ESRGAN generator (BasicSR layout and names)."""

from __future__ import annotations

import keras

from keras_pbasr.layers.layout import (
    channel_axis,
    resolve_data_format,
    to_channels_last,
    to_internal_layout,
)
from keras_pbasr.layers.padding import CropToScaledInput, ReflectPadToMultiple
from keras_pbasr.layers.pixel_shuffle import PixelUnshuffle
from keras_pbasr.layers.torch_init import TorchConvUniform
from keras_pbasr.models.backbone import SRBackbone
from keras_pbasr.utils.arguments import refuse_unknown_arguments

# Real-ESRGAN runs x2 and x1 models at 1/4 of the pixels by pixel-unshuffling the input
# first, so every scale shares the x4 body and its two x2 upsampling steps.
UNSHUFFLE_FOR_SCALE = {4: 1, 2: 2, 1: 4}
RESIDUAL_SCALE = 0.2


@keras.saving.register_keras_serializable(package="keras_pbasr")
class ScaledResidual(keras.layers.Layer):
    """`shortcut + scale * residual`, the residual scaling of ESRGAN's dense blocks."""

    def __init__(self, scale: float = RESIDUAL_SCALE, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, shortcut, residual):
        return shortcut + residual * keras.ops.cast(self.scale, residual.dtype)

    def compute_output_shape(self, shortcut_shape, residual_shape):
        return shortcut_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


WEIGHT_INITS = ("keras", "basicsr")


def conv_initializers(weight_init: str, in_channels: int, dense_block: bool) -> dict:
    """Conv2D initializer arguments. "keras": Keras' defaults (glorot_uniform, zero bias).
    "basicsr": as BasicSR's RRDBNet: dense-block convs kaiming_normal (fan_in, gain sqrt(2))
    times 0.1 with zero bias (`default_init_weights(..., 0.1)`), the other convs torch's
    nn.Conv2d default, U(+-1/sqrt(fan_in)) for weight and bias.

    Example:
    >>> sorted(conv_initializers("basicsr", 64, dense_block=True))
    ['bias_initializer', 'kernel_initializer']
    """
    if weight_init == "keras":
        return {}
    if dense_block:
        # std = sqrt(scale / fan_in) = 0.1 * sqrt(2 / fan_in), untruncated as torch's normal_.
        return {"kernel_initializer": keras.initializers.VarianceScaling(
                    2.0 * 0.1**2, mode="fan_in", distribution="untruncated_normal"),
                "bias_initializer": "zeros"}
    return {"kernel_initializer": TorchConvUniform(),
            "bias_initializer": TorchConvUniform(fan_in=9 * in_channels)}


def _conv(filters: int, name: str, activate: bool, data_format: str, in_channels: int,
          weight_init: str = "keras", dense_block: bool = False) -> keras.layers.Conv2D:
    # LeakyReLU(0.2) fused into the conv (keras.activations.leaky_relu defaults to 0.2).
    return keras.layers.Conv2D(
        filters, 3, padding="same", activation="leaky_relu" if activate else None,
        data_format=data_format, name=name,
        **conv_initializers(weight_init, in_channels, dense_block),
    )


def residual_dense_block(x, num_feat: int, num_grow_ch: int, name: str,
                         data_format: str = "channels_last", weight_init: str = "keras"):
    """conv1..conv5 over the growing concatenation [x, x1, ..., x4]; x + 0.2 * x5."""
    features = [x]
    for i in range(1, 5):
        inputs = features[0] if i == 1 else keras.layers.Concatenate(
            axis=channel_axis(data_format), name=f"{name}_concat{i}"
        )(features)
        conv = _conv(num_grow_ch, f"{name}_conv{i}", True, data_format,
                     num_feat + (i - 1) * num_grow_ch, weight_init, dense_block=True)
        features.append(conv(inputs))
    x5 = _conv(num_feat, f"{name}_conv5", False, data_format, num_feat + 4 * num_grow_ch,
               weight_init, dense_block=True)(
        keras.layers.Concatenate(axis=channel_axis(data_format), name=f"{name}_concat5")(features)
    )
    return ScaledResidual(name=f"{name}_residual")(x, x5)


def rrdb(x, num_feat: int, num_grow_ch: int, name: str, data_format: str = "channels_last",
         weight_init: str = "keras"):
    """Residual-in-residual dense block: three dense blocks, then x + 0.2 * out."""
    out = x
    for k in (1, 2, 3):
        out = residual_dense_block(out, num_feat, num_grow_ch, f"{name}_rdb{k}", data_format,
                                   weight_init)
    return ScaledResidual(name=f"{name}_residual")(x, out)


@keras.saving.register_keras_serializable(package="keras_pbasr")
class RRDBNet(SRBackbone):
    """ESRGAN's Residual-in-Residual Dense Block network, as in BasicSR / Real-ESRGAN.

    conv_first -> `num_block` RRDBs -> conv_body (+ residual) -> two (nearest x2, conv,
    LeakyReLU 0.2) steps -> conv_hr, LeakyReLU -> conv_last. For scale 2 (or 1) the input is
    pixel-unshuffled by 2 (or 4) first. Layer names follow the torch keys
    (`body.3.rdb2.conv1` -> `body_3_rdb2_conv1`). No output clamp.

    Inputs are channels_last RGB in [0, 1] of any height and width (for scale 2 and 1 the
    model reflect-pads to a multiple of 2 / 4 and crops the output, as Real-ESRGAN's
    inference does); the output is (N, scale*H, scale*W, num_out_ch) in float32
    under any dtype policy. `data_format` is the layout the convs compute in (inputs and
    outputs stay channels_last); None picks the faster one for the backend
    (`keras_pbasr.layers.layout.preferred_data_format`). Weights do not depend on it.
    `weight_init` sets the starting weights for training from scratch: "keras" (Keras'
    defaults, glorot_uniform) or "basicsr" (BasicSR's: kaiming_normal x 0.1 in the dense
    blocks, torch's nn.Conv2d default elsewhere; `conv_initializers`). Converted and preset
    weights replace them either way.

    Example:
    >>> import numpy as np
    >>> model = RRDBNet(scale=4, num_feat=16, num_block=2, num_grow_ch=8)
    >>> model(np.zeros((1, 12, 10, 3), "float32")).shape
    (1, 48, 40, 3)
    >>> RRDBNet().count_params()  # RealESRGAN_x4plus
    16697987
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        data_format: str | None = None,
        weight_init: str = "keras",
        **kwargs,
    ):
        refuse_unknown_arguments(RRDBNet, kwargs)
        if scale not in UNSHUFFLE_FOR_SCALE:
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {scale!r}")
        if weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")
        layout = resolve_data_format(data_format)
        inputs = keras.Input((None, None, num_in_ch), name="lr")
        x = inputs
        unshuffle = UNSHUFFLE_FOR_SCALE[scale]
        if unshuffle > 1:
            x = ReflectPadToMultiple(unshuffle, name="pad")(x)
            x = PixelUnshuffle(unshuffle, name="pixel_unshuffle")(x)
        x = to_internal_layout(x, layout, name="to_channels_first")
        feat = _conv(num_feat, "conv_first", False, layout, num_in_ch * unshuffle**2,
                     weight_init)(x)
        body = feat
        for i in range(num_block):
            body = rrdb(body, num_feat, num_grow_ch, f"body_{i}", layout, weight_init)
        body = _conv(num_feat, "conv_body", False, layout, num_feat, weight_init)(body)
        feat = keras.layers.Add(name="body_residual")([feat, body])
        for k in (1, 2):
            feat = keras.layers.UpSampling2D(
                2, data_format=layout, interpolation="nearest", name=f"upsample{k}"
            )(feat)
            feat = _conv(num_feat, f"conv_up{k}", True, layout, num_feat, weight_init)(feat)
        feat = _conv(num_feat, "conv_hr", True, layout, num_feat, weight_init)(feat)
        out = _conv(num_out_ch, "conv_last", False, layout, num_feat, weight_init)(feat)
        out = to_channels_last(out, layout, name="to_channels_last")
        if unshuffle > 1:
            out = CropToScaledInput(scale, name="crop")([out, inputs])
        super().__init__(inputs=inputs, outputs=self.float32_output(out), scale=scale, **kwargs)

        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_block = num_block
        self.num_grow_ch = num_grow_ch
        self.data_format = data_format
        self.weight_init = weight_init

    def get_config(self):
        return {
            **super().get_config(),
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "scale": self.scale,
            "num_feat": self.num_feat,
            "num_block": self.num_block,
            "num_grow_ch": self.num_grow_ch,
            # None (the default) stays None, so a saved model picks its backend's layout.
            "data_format": self.data_format,
            "weight_init": self.weight_init,
        }
