"""Converter from official SRFormer checkpoints (HVision-NKU/SRFormer, PBaSR's SRFormer
branches): keys conv_first, patch_embed.norm, layers.{i}.residual_group.blocks.{j}.*,
layers.{i}.conv, norm, conv_after_body and the reconstruction head.

The files also store the buffers `attn.aligned_relative_position_index` and (shifted blocks)
`attn_mask`, computed for the training patch size; the Keras model recomputes both (the mask
for every input size at call time), so they are ignored, not loaded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping

import keras
import numpy as np

from keras_pbasr.convert.registry import (
    ArchitectureConverter,
    ConversionError,
    WeightTarget,
    conv_targets,
    dense_targets,
    norm_targets,
    register_converter,
    require,
)
from keras_pbasr.convert.tensors import (
    pixel_shuffle_out_channels,
    torch_depthwise_conv_to_keras,
)
from keras_pbasr.models.srformer.srformer_backbone import NUM_FEAT, SRFormer

_BLOCK_KEY = re.compile(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.norm1\.weight$")
_RECOMPUTED_BUFFERS = (".attn_mask", ".attn.aligned_relative_position_index")


def _block_key(group: int, block: int) -> str:
    return f"layers.{group}.residual_group.blocks.{block}"


def _block_layer_name(group: int, block: int) -> str:
    return f"layers_{group}_residual_group_blocks_{block}"


@register_converter
class SRFormerConverter(ArchitectureConverter):
    name = "srformer"

    def matches(self, keys: Collection[str]) -> bool:
        # `attn.kv` (keys/values at half width) tells PSA apart from Swin's `attn.qkv`.
        return "conv_first.weight" in keys and f"{_block_key(0, 0)}.attn.kv.weight" in keys

    def is_ignored(self, key: str) -> bool:
        return key.endswith(_RECOMPUTED_BUFFERS)

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        keys = set(state_dict)
        depth_of: dict[int, int] = {}
        for key in keys:
            if m := _BLOCK_KEY.match(key):
                group, block = int(m.group(1)), int(m.group(2))
                depth_of[group] = max(depth_of.get(group, 0), block + 1)
        if not depth_of or sorted(depth_of) != list(range(len(depth_of))):
            raise ConversionError(f"{self.name}: PSA groups layers.0..N are incomplete")
        depths = [depth_of[i] for i in range(len(depth_of))]

        embed_dim = int(require(state_dict, "conv_first.weight", self.name).shape[0])
        tables = [
            require(state_dict, f"{_block_key(i, 0)}.attn.relative_position_bias_table",
                     self.name)
            for i in range(len(depths))
        ]
        table_side = math.isqrt(int(tables[0].shape[0]))  # (2*(ws/2) - 1)^2 rows
        if table_side * table_side != tables[0].shape[0] or table_side % 2 == 0:
            raise ConversionError(
                f"{self.name}: relative_position_bias_table has {tables[0].shape[0]} rows, "
                "not (window_size - 1)^2"
            )
        window_size = table_side + 1
        fc1 = require(state_dict, f"{_block_key(0, 0)}.mlp.fc1.weight", self.name)
        mlp_ratio = float(fc1.shape[0]) / embed_dim

        self._check_shifted_windows(keys, depths)
        resi_connection = "3conv" if "layers.0.conv.0.weight" in keys else "1conv"
        upsampler, upscale = self._head_from_keys(state_dict)
        return {
            "upscale": upscale,
            "window_size": window_size,
            "depths": depths,
            "embed_dim": embed_dim,
            "num_heads": [int(t.shape[1]) for t in tables],
            "mlp_ratio": mlp_ratio,
            "upsampler": upsampler,
            "resi_connection": resi_connection,
        }

    def _check_shifted_windows(self, keys: set[str], depths: list[int]) -> None:
        # The official model drops the shift (and shrinks the window) when its img_size is not
        # larger than the window; its shifted blocks then store no attn_mask. That variant
        # is not implemented, so refuse it instead of converting it wrongly.
        if depths[0] > 1 and f"{_block_key(0, 1)}.attn_mask" not in keys:
            raise ConversionError(
                f"{self.name}: block {_block_key(0, 1)} has no attn_mask buffer, so the "
                "checkpoint was built without shifted windows (img_size <= window_size), "
                "which keras_pbasr's SRFormer does not support"
            )

    def _head_from_keys(self, state_dict: Mapping[str, np.ndarray]) -> tuple[str, int]:
        keys = set(state_dict)
        if "conv_up1.weight" in keys:
            return "nearest+conv", 4
        if "conv_before_upsample.0.weight" in keys and "upsample.0.weight" in keys:
            first = state_dict["upsample.0.weight"].shape[0]
            if first == 9 * NUM_FEAT and "upsample.2.weight" not in keys:
                return "pixelshuffle", 3
            stages = sum(1 for k in keys if re.fullmatch(r"upsample\.\d+\.weight", k))
            return "pixelshuffle", 2**stages
        if "upsample.0.weight" in keys:
            upscale = math.isqrt(int(state_dict["upsample.0.weight"].shape[0]) // 3)
            return "pixelshuffledirect", upscale
        raise ConversionError(
            f"{self.name}: no reconstruction head (conv_up1, upsample.0 or "
            "conv_before_upsample.0); the denoising / JPEG variant is not supported"
        )

    def build(self, config: dict) -> keras.Model:
        return SRFormer(**config)

    def weight_targets(self, model: keras.Model, config: dict) -> dict[str, WeightTarget]:
        targets = conv_targets(model.get_layer("conv_first"), "conv_first")
        targets.update(norm_targets(model.get_layer("patch_embed_norm"), "patch_embed.norm"))
        for group, depth in enumerate(config["depths"]):
            for block in range(depth):
                layer = model.get_layer(_block_layer_name(group, block))
                targets.update(_block_targets(layer, _block_key(group, block)))
            targets.update(_residual_conv_targets(model, f"layers_{group}_conv",
                                                  f"layers.{group}.conv",
                                                  config["resi_connection"]))
        targets.update(norm_targets(model.get_layer("norm"), "norm"))
        targets.update(_residual_conv_targets(model, "conv_after_body", "conv_after_body",
                                              config["resi_connection"]))
        targets.update(_head_targets(model, config["upsampler"], config["upscale"]))
        return targets


def _block_targets(block, prefix: str) -> dict[str, WeightTarget]:
    attn, mlp = block.attn, block.mlp
    targets = {
        f"{prefix}.attn.relative_position_bias_table": WeightTarget(
            attn.relative_position_bias_table
        ),
        f"{prefix}.mlp.dwconv.depthwise_conv.0.weight": WeightTarget(
            mlp.dwconv.kernel, torch_depthwise_conv_to_keras
        ),
        f"{prefix}.mlp.dwconv.depthwise_conv.0.bias": WeightTarget(mlp.dwconv.bias),
    }
    targets.update(norm_targets(block.norm1, f"{prefix}.norm1"))
    targets.update(norm_targets(block.norm2, f"{prefix}.norm2"))
    for name, layer in (("attn.q", attn.q), ("attn.kv", attn.kv), ("attn.proj", attn.proj),
                        ("mlp.fc1", mlp.fc1), ("mlp.fc2", mlp.fc2)):
        targets.update(dense_targets(layer, f"{prefix}.{name}"))
    return targets


def _residual_conv_targets(model, layer_name: str, torch_name: str, resi_connection: str):
    if resi_connection == "1conv":
        return conv_targets(model.get_layer(layer_name), torch_name)
    targets = {}
    for index in (0, 2, 4):
        targets.update(conv_targets(model.get_layer(f"{layer_name}_{index}"),
                                    f"{torch_name}.{index}"))
    return targets


def _head_targets(model, upsampler: str, upscale: int) -> dict[str, WeightTarget]:
    def shuffled_conv(index: int, channels: int, factor: int):
        # This conv feeds a PixelShuffle: reorder its outputs into Keras' sub-pixel order.
        def to_keras_order(array, c=channels, r=factor):
            return pixel_shuffle_out_channels(array, c, r)

        return conv_targets(model.get_layer(f"upsample_{index}"), f"upsample.{index}",
                            to_keras_order, to_keras_order)

    if upsampler == "pixelshuffledirect":
        return shuffled_conv(0, 3, upscale)
    targets = conv_targets(model.get_layer("conv_before_upsample_0"), "conv_before_upsample.0")
    if upsampler == "pixelshuffle":
        factors = [3] if upscale == 3 else [2] * (upscale.bit_length() - 1)
        for k, factor in enumerate(factors):
            targets.update(shuffled_conv(2 * k, NUM_FEAT, factor))
    else:
        for name in ("conv_up1", "conv_up2", "conv_hr"):
            targets.update(conv_targets(model.get_layer(name), name))
    targets.update(conv_targets(model.get_layer("conv_last"), "conv_last"))
    return targets
