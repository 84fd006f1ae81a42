"""FeMaSR (chaofengc/FeMaSR, used by PBaSR): super-resolution by feature matching against a
VQGAN codebook. Two models share one layout:

- `FeMaSRHQ`, the HQ stage: a VQGAN that encodes an HR image to 1/8 of its size, quantizes the
  features with a learned codebook and decodes them back (the texture prior);
- `FeMaSR`, the LQ stage (x4 in PBaSR): an encoder with Swin transformer layers maps the LR
  image to features at 1/8 of the HR size, which are quantized with the HQ codebook and decoded
  by the HQ decoder, with skip connections from the encoder at 1/4 and 1/2 of the HR size.

Layer names follow the official module groups: `encoder_*` (multiscale_encoder),
`before_quant` (before_quant_group.0), `quantize` (quantize_group.0), `after_quant`
(after_quant_group.0), `decoder_*` (decoder_group) and `out_conv`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras
from keras import ops

from keras_pbasr.layers.padding import CropToScaledInput, SymmetricPadPastMultiple
from keras_pbasr.models.backbone import SRBackbone
from keras_pbasr.models.femasr.femasr_layers import (
    GROUP_NORM_GROUPS,
    ResBlock,
    ResidualSwinTransformerBlock,
    VectorQuantizer,
    code_matching_losses,
    vq_codebook_loss,
)
from keras_pbasr.utils.arguments import refuse_unknown_arguments

# The codebook sits at 1/2^CODE_LEVEL of the HR size (FeMaSR's codebook_params [[32, ...]]
# for 256 px HR patches).
CODE_LEVEL = 3
# Feature channels at HR, 1/2, 1/4 and 1/8 of the HR size (FeMaSR's channel_query_dict for
# gt_resolution 256: 256 -> 64, 128 -> 128, 64 -> 256, 32 -> 256).
DEFAULT_CHANNELS = (64, 128, 256, 256)
# The official module groups, and the ones PBaSR (and FeMaSR's LQ stage) keep frozen.
MODULE_GROUPS = (
    "multiscale_encoder",
    "before_quant_group",
    "quantize_group",
    "after_quant_group",
    "decoder_group",
    "out_conv",
)
PBASR_FROZEN_MODULES = ("quantize", "decoder", "after_quant_group", "out_conv")
_GROUP_OF_PREFIX = {
    "encoder_": "multiscale_encoder",
    "before_quant": "before_quant_group",
    "quantize": "quantize_group",
    "after_quant": "after_quant_group",
    "decoder_": "decoder_group",
    "out_conv": "out_conv",
}
# The official `test` pads by 1..(8 // scale * 8) pixels: a multiple of 64 HR pixels.
PAD_MULTIPLE_HR = 64


def module_group(layer_name: str) -> str | None:
    """The official module group (MODULE_GROUPS) a layer of these models belongs to."""
    for prefix, group in _GROUP_OF_PREFIX.items():
        if layer_name.startswith(prefix):
            return group
    return None


def frozen_groups(frozen_modules: Sequence[str]) -> set[str]:
    """Module groups frozen by official-style keywords: a group is frozen when a keyword is
    a substring of its name (so 'quantize' freezes quantize_group, not before_quant_group)."""
    groups = set()
    for keyword in frozen_modules:
        matched = {g for g in MODULE_GROUPS if keyword in g}
        if not matched:
            raise ValueError(
                f"frozen module keyword {keyword!r} matches none of {', '.join(MODULE_GROUPS)}"
            )
        groups |= matched
    return groups


# ----------------------------------------------------------------------------------------------
# Layers and forward pass shared by both stages. The forward takes a name -> layer lookup so the
# same code builds the functional graph and runs the unpadded training pass on the model's
# own layers (whose intermediate features the training losses need).
# ----------------------------------------------------------------------------------------------


def _conv(filters: int, kernel: int, name: str, strides: int = 1) -> keras.layers.Conv2D:
    padding = "same" if kernel % 2 and strides == 1 else "valid"
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, name=name)


def _resblocks(channels: int, act_type: str, prefix: str) -> dict:
    return {f"{prefix}_res_{k}": ResBlock(channels, act_type, name=f"{prefix}_res_{k}")
            for k in (0, 1)}


def _upsample_block(channels: int, act_type: str, prefix: str) -> dict:
    """nearest x2 -> 3x3 conv -> 2 ResBlocks (official DecoderBlock and the LQ upsamplers)."""
    return {
        f"{prefix}_upsample": keras.layers.UpSampling2D(2, interpolation="nearest",
                                                        name=f"{prefix}_upsample"),
        f"{prefix}_conv": _conv(channels, 3, f"{prefix}_conv"),
        **_resblocks(channels, act_type, prefix),
    }


def _build_layers(channels, in_level: int, lq: bool, act_type: str, codebook_size: int,
                  code_dim: int, swin: dict | None) -> dict:
    # torch's k4 p1 and k3 s2 p1 convs: explicit zero padding + 'valid' (Keras 'same' pads
    # differently for even kernels and strided convs on even sizes).
    found = {
        "encoder_in_pad": keras.layers.ZeroPadding2D(1, name="encoder_in_pad"),
        "encoder_in_conv": _conv(channels[in_level], 4, "encoder_in_conv"),
    }
    for i, level in enumerate(range(in_level + 1, CODE_LEVEL + 1)):
        prefix = f"encoder_down_{i}"
        found[f"{prefix}_pad"] = keras.layers.ZeroPadding2D(1, name=f"{prefix}_pad")
        found[f"{prefix}_conv"] = _conv(channels[level], 3, f"{prefix}_conv", strides=2)
        found.update(_resblocks(channels[level], act_type, prefix))
    if lq:
        for j in range(swin["num_layers"]):
            found[f"encoder_swin_{j}"] = ResidualSwinTransformerBlock(
                channels[CODE_LEVEL], swin["depth"], swin["num_heads"], swin["window_size"],
                swin["mlp_ratio"], name=f"encoder_swin_{j}",
            )
        for i in range(2):
            found.update(_upsample_block(channels[CODE_LEVEL - 1 - i], act_type,
                                         f"encoder_up_{i}"))
    found["before_quant"] = _conv(code_dim, 1, "before_quant")
    found["quantize"] = VectorQuantizer(codebook_size, code_dim, name="quantize")
    found["after_quant"] = _conv(channels[CODE_LEVEL], 3, "after_quant")
    for i in range(CODE_LEVEL):
        found.update(_upsample_block(channels[CODE_LEVEL - 1 - i], act_type, f"decoder_{i}"))
        if lq and i:
            found[f"decoder_{i}_skip"] = keras.layers.Add(name=f"decoder_{i}_skip")
    found["out_conv"] = _conv(3, 3, "out_conv")
    return found


def _run_blocks(layer: Callable, x, prefix: str, first: str):
    x = layer(f"{prefix}_{first}")(x)
    x = layer(f"{prefix}_conv")(x)
    return layer(f"{prefix}_res_1")(layer(f"{prefix}_res_0")(x))


def _encode_and_decode(layer: Callable, x, in_level: int, lq: bool, num_swin_layers: int,
                       use_residual: bool) -> dict:
    """The official encode_and_decode on an unpadded image: {"image", "z" (features to
    quantize), "z_q" (straight-through codes), "indices"}."""
    x = layer("encoder_in_conv")(layer("encoder_in_pad")(x))
    features = []
    for i in range(CODE_LEVEL - in_level):
        x = _run_blocks(layer, x, f"encoder_down_{i}", "pad")
        features.append(x)
    if lq:
        for j in range(num_swin_layers):
            x = layer(f"encoder_swin_{j}")(x)
        features.append(x)
        for i in range(2):
            x = _run_blocks(layer, x, f"encoder_up_{i}", "upsample")
            features.append(x)
        skips = features[-3:]  # 1/8, 1/4, 1/2 of the HR size
    else:
        skips = [features[-1]]

    z = layer("before_quant")(skips[0])
    z_q, indices = layer("quantize")(z)
    x = layer("after_quant")(z_q)
    for i in range(CODE_LEVEL):
        if lq and use_residual and i:
            x = layer(f"decoder_{i}_skip")([x, skips[i]])
        x = _run_blocks(layer, x, f"decoder_{i}", "upsample")
    return {"image": layer("out_conv")(x), "z": z, "z_q": z_q, "indices": indices}


def _check_channels(channels: Sequence[int]) -> list[int]:
    channels = [int(c) for c in channels]
    if len(channels) != CODE_LEVEL + 1 or any(c <= 0 or c % GROUP_NORM_GROUPS for c in channels):
        raise ValueError(
            f"channels must be {CODE_LEVEL + 1} multiples of {GROUP_NORM_GROUPS} (HR, 1/2, 1/4, "
            f"1/8 of the HR size), got {channels}"
        )
    return channels


class _FeMaSRBase(SRBackbone):
    """What both stages share: the lookup-based forward and freezing of module groups."""

    def _apply_frozen_modules(self, groups: set[str]) -> None:
        for layer in self.layers:
            if module_group(layer.name) in groups:
                layer.trainable = False

    def encode_and_decode(self, x) -> dict:
        """The unpadded forward (as in official training): {"image", "z", "z_q", "indices"}.
        H and W must be multiples of `training_size_multiple`."""
        _check_size(x, self.training_size_multiple, type(self).__name__)
        return _encode_and_decode(self.get_layer, x, self._in_level, self._lq,
                                  self._num_swin_layers, self._use_residual)

    @property
    def quantizer(self) -> VectorQuantizer:
        return self.get_layer("quantize")


def _check_size(x, multiple: int, owner: str) -> None:
    height, width = x.shape[1], x.shape[2]
    for size in (height, width):
        if size is not None and size % multiple:
            raise ValueError(
                f"{owner}'s unpadded (training) forward needs H and W that are multiples of "
                f"{multiple}, got {height}x{width}; crop the patches accordingly"
            )


@keras.saving.register_keras_serializable(package="keras_pbasr")
class FeMaSRHQ(_FeMaSRBase):
    """FeMaSR's HQ stage: a VQGAN autoencoder (the texture prior of the LQ stage).

    in_conv (4x4, pad 1) -> 3x [3x3 stride-2 conv + 2 ResBlocks] to 1/8 -> before_quant (1x1 to
    code_dim) -> vector quantizer (codebook_size x code_dim, straight-through) -> after_quant
    (3x3) -> 3x [nearest x2 + 3x3 conv + 2 ResBlocks] -> out_conv (3x3 to RGB). ResBlocks are
    pre-activation (GroupNorm(32, eps 1e-6) + SiLU). Inputs are symmetric-padded by 1..64 px to
    a multiple of 64 (the official `test`) and the output is cropped back: (N, H, W, 3) for
    (N, H, W, 3) inputs in [0, 1]. `code_indices(hr)` gives the codes that supervise the LQ
    stage.

    Args:
        channels: feature channels at HR, 1/2, 1/4 and 1/8 resolution (multiples of 32).
        codebook_size: number of codewords.
        code_dim: codeword length.
        act_type: 'silu' (FeMaSR), 'leakyrelu' (slope 0.2), 'relu' or 'gelu'.
        frozen_modules: official module keywords whose layers are not trainable.

    Example:
    >>> import numpy as np
    >>> hq = FeMaSRHQ()  # FeMaSR's released configuration
    >>> small = FeMaSRHQ(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8)
    >>> small(np.zeros((1, 21, 30, 3), "float32")).shape
    (1, 21, 30, 3)
    """

    def __init__(
        self,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        codebook_size: int = 1024,
        code_dim: int = 512,
        act_type: str = "silu",
        frozen_modules: Sequence[str] = (),
        **kwargs,
    ):
        refuse_unknown_arguments(FeMaSRHQ, kwargs)
        channels = _check_channels(channels)
        groups = frozen_groups(frozen_modules)
        found = _build_layers(channels, 0, False, act_type, codebook_size, code_dim, None)
        inputs = keras.Input((None, None, 3), name="hr")
        x = SymmetricPadPastMultiple(PAD_MULTIPLE_HR, name="pad")(inputs)
        out = _encode_and_decode(found.__getitem__, x, 0, False, 0, False)
        outputs = CropToScaledInput(1, dtype="float32", name="crop")([out["image"], inputs])
        # The unpadded forward (code_indices) needs H and W that reach the codebook level.
        super().__init__(inputs=inputs, outputs=outputs, scale=1,
                         training_size_multiple=2**CODE_LEVEL, **kwargs)

        self.channels = channels
        self.codebook_size = int(codebook_size)
        self.code_dim = int(code_dim)
        self.act_type = act_type
        self.frozen_modules = tuple(frozen_modules)
        self._in_level, self._lq, self._num_swin_layers, self._use_residual = 0, False, 0, False
        self._apply_frozen_modules(groups)

    def code_indices(self, hr):
        """(N, H/8, W/8) int32 codeword indices of HR images (H, W multiples of 8)."""
        _check_size(hr, self.training_size_multiple, type(self).__name__)
        layer = self.get_layer
        x = layer("encoder_in_conv")(layer("encoder_in_pad")(hr))
        for i in range(CODE_LEVEL):
            x = _run_blocks(layer, x, f"encoder_down_{i}", "pad")
        return self.quantizer.nearest_indices(layer("before_quant")(x))

    def get_config(self):
        return {
            **super().get_config(),
            "channels": list(self.channels),
            "codebook_size": self.codebook_size,
            "code_dim": self.code_dim,
            "act_type": self.act_type,
            "frozen_modules": list(self.frozen_modules),
        }


@keras.saving.register_keras_serializable(package="keras_pbasr")
class FeMaSR(_FeMaSRBase):
    """FeMaSR's LQ stage (the generator PBaSR trains; x4: 34,059,971 parameters).

    Encoder: in_conv (4x4, pad 1) at the LR resolution (1/upscale of HR), [3x3 stride-2 conv +
    2 ResBlocks] down to 1/8 of the HR size, `num_swin_layers` residual Swin transformer blocks
    (SwinIR RSTB: `swin_depth` blocks of window `window_size`, shifted by half a window on odd
    blocks, then a 3x3 conv and a residual add), and two [nearest x2 + conv + 2 ResBlocks]
    upsamplers to 1/4 and 1/2. The 1/8 features are quantized with the HQ codebook
    (before_quant -> quantize -> after_quant) and decoded by the HQ decoder, adding the encoder
    features at 1/4 and 1/2 (`use_residual`). Inputs (N, h, w, 3) in [0, 1] are
    symmetric-padded by 1..(8*window_size/upscale) px as the official `test` does; the output
    (N, upscale*h, upscale*w, 3) is cropped back.

    For PBaSR training, `frozen_modules` (default: PBaSR's quantize, decoder,
    after_quant_group, out_conv) are not trainable, and `training_outputs(lr, hr, prior)`
    returns the SR image and the codebook / Gram feature-matching losses against the codes of
    the HR image given by the HQ prior (`FeMaSRHQ.code_indices`).

    Args:
        upscale: 4 (PBaSR, FeMaSR x4) or 2.
        channels: feature channels at HR, 1/2, 1/4 and 1/8 of the HR size (multiples of 32);
            the last one is also the Swin embedding width.
        codebook_size, code_dim, beta: the vector quantizer (beta weights the codebook loss).
        act_type: 'silu' (FeMaSR), 'leakyrelu' (slope 0.2), 'relu' or 'gelu'.
        num_swin_layers, swin_depth, swin_num_heads, window_size, swin_mlp_ratio: the Swin part.
        use_residual: add the encoder features to the decoder at 1/4 and 1/2.
        frozen_modules: official module keywords whose layers are not trainable.

    Example:
    >>> import numpy as np
    >>> model = FeMaSR()  # PBaSR / FeMaSR x4 configuration
    >>> small = FeMaSR(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8,
    ...                num_swin_layers=1, swin_depth=2, swin_num_heads=2, window_size=4)
    >>> small(np.zeros((1, 13, 19, 3), "float32")).shape
    (1, 52, 76, 3)
    """

    def __init__(
        self,
        upscale: int = 4,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        codebook_size: int = 1024,
        code_dim: int = 512,
        beta: float = 0.25,
        act_type: str = "silu",
        num_swin_layers: int = 4,
        swin_depth: int = 6,
        swin_num_heads: int = 8,
        window_size: int = 8,
        swin_mlp_ratio: float = 4.0,
        use_residual: bool = True,
        frozen_modules: Sequence[str] = PBASR_FROZEN_MODULES,
        **kwargs,
    ):
        refuse_unknown_arguments(FeMaSR, kwargs)
        channels = _check_channels(channels)
        if upscale not in (2, 4):
            raise ValueError(f"upscale must be 2 or 4, got {upscale}")
        if channels[CODE_LEVEL] % swin_num_heads or window_size < 2 or window_size % 2:
            raise ValueError(
                f"channels[-1] ({channels[CODE_LEVEL]}) must be divisible by swin_num_heads "
                f"({swin_num_heads}) and window_size ({window_size}) even"
            )
        groups = frozen_groups(frozen_modules)
        in_level = int(math.log2(upscale))
        swin = {"num_layers": num_swin_layers, "depth": swin_depth, "num_heads": swin_num_heads,
                "window_size": window_size, "mlp_ratio": swin_mlp_ratio}
        found = _build_layers(channels, in_level, True, act_type, codebook_size, code_dim, swin)
        inputs = keras.Input((None, None, 3), name="lr")
        x = SymmetricPadPastMultiple(2**CODE_LEVEL * window_size // upscale, name="pad")(inputs)
        out = _encode_and_decode(found.__getitem__, x, in_level, True, num_swin_layers,
                                 use_residual)
        outputs = CropToScaledInput(upscale, dtype="float32", name="crop")([out["image"], inputs])
        # The unpadded training forward: the 1/8-HR features must tile into windows.
        super().__init__(inputs=inputs, outputs=outputs, scale=upscale,
                         training_size_multiple=2**CODE_LEVEL * window_size // upscale, **kwargs)

        self.upscale = int(upscale)
        self.channels = channels
        self.codebook_size = int(codebook_size)
        self.code_dim = int(code_dim)
        self.beta = float(beta)
        self.act_type = act_type
        self.num_swin_layers = int(num_swin_layers)
        self.swin_depth = int(swin_depth)
        self.swin_num_heads = int(swin_num_heads)
        self.window_size = int(window_size)
        self.swin_mlp_ratio = float(swin_mlp_ratio)
        self.use_residual = bool(use_residual)
        self.frozen_modules = tuple(frozen_modules)
        self._in_level, self._lq = in_level, True
        self._num_swin_layers, self._use_residual = self.num_swin_layers, self.use_residual
        self._apply_frozen_modules(groups)

    def training_outputs(self, lr, hr, prior=None):
        """Trainer hook (see PBaSRTrainer): the training-mode SR image and the extra losses.

        With `prior` (a FeMaSRHQ, normally the one this model's codebook and decoder came
        from) the losses are FeMaSR's LQ-stage ones against the HR image's codes: "codebook"
        (beta * MSE to the codewords) and "code_gram" (Gram-matrix distance). Without a prior,
        the plain VQ loss "codebook" (its codebook term has no effect while the codebook is
        frozen). LR patches must be multiples of `training_size_multiple` (no padding, as in
        training).
        """
        out = self.encode_and_decode(lr)
        z = out["z"]
        if prior is None:
            return out["image"], {"codebook": vq_codebook_loss(z, out["z_q"], self.beta)}
        indices = ops.stop_gradient(prior.code_indices(hr))
        if tuple(indices.shape[1:3]) != tuple(z.shape[1:3]) and None not in z.shape[1:3]:
            raise ValueError(
                f"the HQ prior's codes of the HR patch are {tuple(indices.shape[1:3])}, the LR "
                f"features {tuple(z.shape[1:3])}: HR patches must be {self.upscale}x the LR ones"
            )
        z_q_gt = ops.cast(self.quantizer.lookup(indices), z.dtype)
        return out["image"], code_matching_losses(z, z_q_gt, self.beta)

    def get_config(self):
        return {
            **super().get_config(),
            "upscale": self.upscale,
            "channels": list(self.channels),
            "codebook_size": self.codebook_size,
            "code_dim": self.code_dim,
            "beta": self.beta,
            "act_type": self.act_type,
            "num_swin_layers": self.num_swin_layers,
            "swin_depth": self.swin_depth,
            "swin_num_heads": self.swin_num_heads,
            "window_size": self.window_size,
            "swin_mlp_ratio": self.swin_mlp_ratio,
            "use_residual": self.use_residual,
            "frozen_modules": list(self.frozen_modules),
        }
