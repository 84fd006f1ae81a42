"""SRFormer (permuted self-attention transformer for super-resolution), as configured by PBaSR
and by the upstream SRFormer releases."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_pbasr.layers.padding import CropToScaledInput, ReflectPadToMultiple
from keras_pbasr.layers.pixel_shuffle import PixelShuffle
from keras_pbasr.models.backbone import SRBackbone
from keras_pbasr.models.srformer.srformer_layers import (
    MeanShift,
    PSABlock,
    ShiftedWindowAttentionMask,
)
from keras_pbasr.utils.arguments import refuse_unknown_arguments

# DIV2K mean that the official model subtracts from RGB inputs and adds back to the output.
RGB_MEAN = (0.4488, 0.4371, 0.4040)
UPSAMPLERS = ("nearest+conv", "pixelshuffle", "pixelshuffledirect")
RESIDUAL_CONNECTIONS = ("1conv", "3conv")
# Intermediate channels of the 'pixelshuffle' and 'nearest+conv' reconstruction heads.
NUM_FEAT = 64


@keras.saving.register_keras_serializable(package="keras_pbasr")
class SRFormer(SRBackbone):
    """SRFormer: conv_first -> permuted self-attention groups -> reconstruction head.

    Structure (official names): the RGB mean is subtracted, `conv_first` (3x3) embeds the image,
    `patch_embed_norm` normalises the tokens, then `len(depths)` PSA groups each run
    `depths[i]` PSA blocks (windows shifted by window_size/2 on odd blocks), a conv
    (`resi_connection`) and a residual add; `norm` and `conv_after_body` close the body with
    a residual from `conv_first`. Heads:
    - 'nearest+conv' (PBaSR / real-world, x4 only): conv_before_upsample + LeakyReLU(0.01),
      2x (nearest x2, conv_up{1,2}, LeakyReLU 0.2), conv_hr + LeakyReLU 0.2, conv_last;
    - 'pixelshuffle' (classical SR): conv_before_upsample + LeakyReLU(0.01), conv + pixel
      shuffle x2 per factor 2 (or one x3), conv_last;
    - 'pixelshuffledirect' (lightweight SR): one conv to 3*scale^2 channels + pixel shuffle.
    Inputs are reflect-padded to a multiple of `window_size` and the output is cropped back,
    so any input size works. Input: channels_last RGB in [0, 1]; output:
    (N, upscale*H, upscale*W, 3), float32 under any dtype policy.

    Args:
        upscale: upscaling factor.
        window_size: attention window (even); 22 in PBaSR, 24 in upstream SRFormer.
        depths: number of PSA blocks in each group.
        embed_dim: token channels (divisible by 4 and by every `num_heads` entry).
        num_heads: attention heads in each group.
        mlp_ratio: ConvFFN hidden channels / embed_dim.
        upsampler: one of 'nearest+conv', 'pixelshuffle', 'pixelshuffledirect'.
        resi_connection: '1conv' (one 3x3 conv) or '3conv' (3x3 -> 1x1 -> 3x3, dim/4 wide).
        drop_path_rate: stochastic depth, rising linearly to this rate over all blocks
            (training only; the official constructor defaults to 0.1).

    Example:
    >>> import numpy as np
    >>> model = SRFormer()  # PBaSR configuration, 10,339,855 parameters
    >>> small = SRFormer(window_size=8, depths=(2, 2), embed_dim=24, num_heads=(2, 3))
    >>> small(np.zeros((1, 37, 29, 3), "float32")).shape
    (1, 148, 116, 3)
    """

    def __init__(
        self,
        upscale: int = 4,
        window_size: int = 22,
        depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
        embed_dim: int = 180,
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
        mlp_ratio: float = 2.0,
        upsampler: str = "nearest+conv",
        resi_connection: str = "1conv",
        drop_path_rate: float = 0.0,
        **kwargs,
    ):
        refuse_unknown_arguments(SRFormer, kwargs)
        depths, num_heads = [int(d) for d in depths], [int(h) for h in num_heads]
        _check_arguments(upscale, window_size, depths, embed_dim, num_heads, upsampler,
                         resi_connection)

        inputs = keras.Input((None, None, 3), name="lr")
        x = ReflectPadToMultiple(window_size, name="check_image_size")(inputs)
        x = MeanShift(RGB_MEAN, sign=-1.0, name="sub_mean")(x)

        # 1. Shallow feature extraction.
        x = shallow = _conv3x3(embed_dim, "conv_first")(x)

        # 2. Deep feature extraction: PSA groups with residual connections.
        x = keras.layers.LayerNormalization(epsilon=1e-5, name="patch_embed_norm")(x)
        # One mask for every shifted (odd) block: the padded size is the same throughout.
        shift_size = window_size // 2
        attention_mask = (
            ShiftedWindowAttentionMask(window_size, shift_size, name="shifted_window_mask")(x)
            if max(depths) > 1 else None
        )
        block_drop_rates = _linspace(0.0, drop_path_rate, sum(depths))
        block_index = 0
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            group_input = x
            for j in range(depth):
                shifted = j % 2 == 1
                block = PSABlock(
                    embed_dim,
                    heads,
                    window_size,
                    shift_size=shift_size if shifted else 0,
                    mlp_ratio=mlp_ratio,
                    drop_path_rate=block_drop_rates[block_index],
                    name=f"layers_{i}_residual_group_blocks_{j}",
                )
                x = block(x, attention_mask=attention_mask) if shifted else block(x)
                block_index += 1
            x = _residual_conv(x, embed_dim, resi_connection, f"layers_{i}_conv")
            x = keras.layers.Add(name=f"layers_{i}_residual")([x, group_input])
        x = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")(x)
        x = _residual_conv(x, embed_dim, resi_connection, "conv_after_body")
        x = keras.layers.Add(name="body_residual")([x, shallow])

        # 3. High-quality image reconstruction.
        x = _reconstruction_head(x, upscale, upsampler)
        x = MeanShift(RGB_MEAN, sign=1.0, name="add_mean")(x)
        outputs = CropToScaledInput(upscale, dtype="float32", name="sr")([x, inputs])
        super().__init__(inputs=inputs, outputs=outputs, scale=upscale, **kwargs)

        self.upscale = upscale
        self.window_size = window_size
        self.depths = depths
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.upsampler = upsampler
        self.resi_connection = resi_connection
        self.drop_path_rate = drop_path_rate

    def get_config(self):
        return {
            **super().get_config(),
            "upscale": self.upscale,
            "window_size": self.window_size,
            "depths": list(self.depths),
            "embed_dim": self.embed_dim,
            "num_heads": list(self.num_heads),
            "mlp_ratio": self.mlp_ratio,
            "upsampler": self.upsampler,
            "resi_connection": self.resi_connection,
            "drop_path_rate": self.drop_path_rate,
        }


def _check_arguments(upscale, window_size, depths, embed_dim, num_heads, upsampler,
                     resi_connection) -> None:
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
    if resi_connection not in RESIDUAL_CONNECTIONS:
        raise ValueError(
            f"resi_connection must be one of {RESIDUAL_CONNECTIONS}, got {resi_connection!r}"
        )
    if upsampler == "nearest+conv" and upscale != 4:
        raise ValueError(f"upsampler 'nearest+conv' supports only upscale 4, got {upscale}")
    if upsampler == "pixelshuffle" and not (upscale == 3 or _is_power_of_two(upscale)):
        raise ValueError(f"upsampler 'pixelshuffle' supports 2^n and 3, got upscale {upscale}")
    if window_size < 2 or window_size % 2:
        raise ValueError(f"window_size must be even and >= 2, got {window_size}")
    if len(depths) != len(num_heads) or not depths:
        raise ValueError(f"depths {depths} and num_heads {num_heads} must have the same length")
    for heads in num_heads:
        if embed_dim % 4 or embed_dim % heads:
            raise ValueError(
                f"embed_dim {embed_dim} must be divisible by 4 and by every num_heads entry"
            )


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _linspace(start: float, stop: float, count: int) -> list[float]:
    if count == 1:
        return [start]
    return [start + (stop - start) * i / (count - 1) for i in range(count)]


def _conv3x3(filters: int, name: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(filters, 3, padding="same", name=name)


def _residual_conv(x, dim: int, resi_connection: str, name: str):
    """The conv closing a PSA group or the body: '1conv' = `name`, '3conv' = `name_0`
    (3x3, dim/4) -> `name_2` (1x1) -> `name_4` (3x3, dim), LeakyReLU 0.2 between."""
    if resi_connection == "1conv":
        return _conv3x3(dim, name)(x)
    x = _conv3x3(dim // 4, f"{name}_0")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_1")(x)
    x = keras.layers.Conv2D(dim // 4, 1, name=f"{name}_2")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_3")(x)
    return _conv3x3(dim, f"{name}_4")(x)


def _reconstruction_head(x, upscale: int, upsampler: str):
    if upsampler == "pixelshuffledirect":
        x = _conv3x3(3 * upscale * upscale, "upsample_0")(x)
        return PixelShuffle(upscale, name="upsample_1")(x)

    # torch nn.LeakyReLU() default slope 0.01 after conv_before_upsample.
    x = _conv3x3(NUM_FEAT, "conv_before_upsample_0")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.01, name="conv_before_upsample_1")(x)
    if upsampler == "pixelshuffle":
        factors = [3] if upscale == 3 else [2] * (upscale.bit_length() - 1)
        for k, factor in enumerate(factors):
            x = _conv3x3(NUM_FEAT * factor * factor, f"upsample_{2 * k}")(x)
            x = PixelShuffle(factor, name=f"upsample_{2 * k + 1}")(x)
        return _conv3x3(3, "conv_last")(x)

    # 'nearest+conv'
    for k in (1, 2):
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"nearest_{k}")(x)
        x = _conv3x3(NUM_FEAT, f"conv_up{k}")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"lrelu_up{k}")(x)
    x = _conv3x3(NUM_FEAT, "conv_hr")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="lrelu_hr")(x)
    return _conv3x3(3, "conv_last")(x)
