"""SRVGGNetCompact, the Real-ESRGAN compact generator (realesr-general-x4v3, animevideov3)."""

from __future__ import annotations

import keras

from keras_pbasr.layers.cubic_resize import CubicResize
from keras_pbasr.layers.layout import (
    PReLU,
    resolve_data_format,
    to_channels_last,
    to_internal_layout,
)
from keras_pbasr.layers.pixel_shuffle import PixelShuffle
from keras_pbasr.layers.torch_init import TorchConvUniform
from keras_pbasr.models.backbone import SRBackbone
from keras_pbasr.utils.arguments import refuse_unknown_arguments

WEIGHT_INITS = ("keras", "basicsr")


@keras.saving.register_keras_serializable(package="keras_pbasr")
class SRVGGNetCompact(SRBackbone):
    """A plain VGG-style body at LR resolution, a pixel shuffle, and a nearest-upsampled
    input added as a global residual.

    Inputs are channels_last RGB in [0, 1] of any height and width; the output is
    (N, upscale*H, upscale*W, num_out_ch) in float32 under any dtype policy.
    `data_format` is the layout the convs compute in (inputs and outputs stay
    channels_last); None picks the faster one for the backend
    (`keras_pbasr.layers.layout.preferred_data_format`). Weights do not depend on it.

    `outscale` (default: `upscale`) adds a final bicubic resize of the x`upscale` result to
    x`outscale` (ncnn / torch bicubic, a = -0.75, no antialiasing): the official
    realesr-animevideov3 x2 and x3 models are the x4 network followed by such a resize.

    `weight_init` sets the starting weights for training from scratch: "keras" (Keras'
    defaults, glorot_uniform) or "basicsr" (torch's nn.Conv2d default, which BasicSR's
    SRVGGNetCompact keeps: U(+-1/sqrt(fan_in)) for weight and bias).

    Example:
    >>> import numpy as np
    >>> model = SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4)  # realesr-general-x4v3
    >>> model(np.zeros((1, 16, 16, 3), "float32")).shape
    (1, 64, 64, 3)
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
        data_format: str | None = None,
        outscale: int | None = None,
        weight_init: str = "keras",
        **kwargs,
    ):
        refuse_unknown_arguments(SRVGGNetCompact, kwargs)
        if weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")
        if outscale is not None and (int(outscale) != outscale or outscale < 1):
            raise ValueError(f"outscale must be a positive integer, got {outscale!r}")
        if act_type not in ("prelu", "leakyrelu", "relu"):
            raise ValueError(f"act_type must be prelu, leakyrelu or relu, got {act_type!r}")
        layout = resolve_data_format(data_format)

        def activation(name):
            if act_type == "prelu":
                # torch nn.PReLU(num_parameters=num_feat): one slope per channel, init 0.25.
                return PReLU(layout, alpha_init=0.25, name=name)
            if act_type == "leakyrelu":
                return keras.layers.LeakyReLU(negative_slope=0.1, name=name)
            return keras.layers.ReLU(name=name)

        def conv(filters, name, in_channels=num_feat):
            # "basicsr": SRVGGNetCompact has no init code, so torch's nn.Conv2d default.
            initializers = {} if weight_init == "keras" else {
                "kernel_initializer": TorchConvUniform(),
                "bias_initializer": TorchConvUniform(fan_in=9 * in_channels),
            }
            return keras.layers.Conv2D(filters, 3, padding="same", data_format=layout, name=name,
                                       **initializers)

        inputs = keras.Input((None, None, num_in_ch), name="lr")
        x = to_internal_layout(inputs, layout, name="to_channels_first")
        x = conv(num_feat, "body_0", num_in_ch)(x)
        x = activation("body_1")(x)
        for i in range(num_conv):
            x = conv(num_feat, f"body_{2 * i + 2}")(x)
            x = activation(f"body_{2 * i + 3}")(x)
        x = conv(num_out_ch * upscale * upscale, f"body_{2 * num_conv + 2}")(x)
        # The pixel shuffle's channel order is Keras' channels_last one (see the converter).
        x = to_channels_last(x, layout, name="to_channels_last")
        x = PixelShuffle(upscale, name="upsampler")(x)
        base = keras.layers.UpSampling2D(upscale, interpolation="nearest", name="base")(inputs)
        x = keras.layers.Add(name="residual")([x, base])
        if outscale is not None and outscale != upscale:
            x = CubicResize(int(outscale), upscale, name="output_resize")(x)
        super().__init__(inputs=inputs, outputs=self.float32_output(x),
                         scale=int(outscale or upscale), **kwargs)

        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_conv = num_conv
        self.upscale = upscale
        self.act_type = act_type
        self.data_format = data_format
        self.outscale = None if outscale is None else int(outscale)
        self.weight_init = weight_init

    def get_config(self):
        return {
            **super().get_config(),
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "num_feat": self.num_feat,
            "num_conv": self.num_conv,
            "upscale": self.upscale,
            "act_type": self.act_type,
            # None (the default) stays None, so a saved model picks its backend's layout.
            "data_format": self.data_format,
            "outscale": self.outscale,
            "weight_init": self.weight_init,
        }
