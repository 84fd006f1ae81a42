"""Converters from official FeMaSR checkpoints (chaofengc/FeMaSR FeMaSRNet): the LQ stage
(`femasr`, with Swin layers) and the HQ VQGAN (`femasr_hq`). PBaSR-FeMaSR ParallelNet files
are averaged into one FeMaSR state dict by keras_pbasr.convert before these run.

Keys: multiscale_encoder.in_conv, multiscale_encoder.blocks.{i} (down blocks, then in the LQ
stage SwinLayers `.swin_blks.{j}` and two upsamplers), before_quant_group.0,
quantize_group.0.embedding, after_quant_group.0.conv, decoder_group.{i}.block.*, out_conv.
Ignored, not loaded: the Swin buffers relative_position_index and attn_mask (recomputed for
every input size) and the HQ pretraining's semantic guidance (conv_semantic.*,
vgg_feat_extractor.*), which only feeds a training loss. Checkpoints with several codebook
scales (quantize_group.1, ...) are refused: the released FeMaSR and PBaSR models have one.
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
from keras_pbasr.models.femasr.femasr_backbone import CODE_LEVEL, FeMaSR, FeMaSRHQ

ENCODER = "multiscale_encoder"
_RECOMPUTED_BUFFERS = (".attn_mask", ".relative_position_index")
_TRAINING_ONLY_PREFIXES = ("conv_semantic.", "vgg_feat_extractor.")
_DOWN_CONV = re.compile(rf"^{ENCODER}\.blocks\.(\d+)\.0\.weight$")
_SWIN_LAYER = re.compile(rf"^{ENCODER}\.blocks\.\d+\.swin_blks\.(\d+)\.conv\.weight$")
_SWIN_BLOCK = re.compile(
    rf"^{ENCODER}\.blocks\.\d+\.swin_blks\.0\.residual_group\.blocks\.(\d+)\.norm1\.weight$"
)


def _out_channels(state_dict, key: str, arch: str) -> int:
    return int(require(state_dict, key, arch).shape[0])


def _has_swin(keys: Collection[str]) -> bool:
    return any(".swin_blks." in k for k in keys)


class _FeMaSRConverterBase(ArchitectureConverter):
    def matches(self, keys: Collection[str]) -> bool:
        keys = set(keys)
        return f"{ENCODER}.in_conv.weight" in keys and _has_swin(keys) == self.lq

    def is_ignored(self, key: str) -> bool:
        return key.endswith(_RECOMPUTED_BUFFERS) or key.startswith(_TRAINING_ONLY_PREFIXES)

    def _common_config(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        extra_scales = sorted({k.split(".")[1] for k in state_dict
                               if k.startswith(("quantize_group.", "before_quant_group."))} - {"0"})
        if extra_scales:
            raise ConversionError(
                f"{self.name}: codebook scales {extra_scales} besides 0 (multi-scale "
                "codebook_params) are not supported; FeMaSR and PBaSR release one codebook"
            )
        codebook = require(state_dict, "quantize_group.0.embedding.weight", self.name)
        channels = [
            *(_out_channels(state_dict, f"decoder_group.{i}.block.1.weight", self.name)
              for i in reversed(range(CODE_LEVEL))),
            _out_channels(state_dict, "after_quant_group.0.conv.weight", self.name),
        ]
        return {
            "channels": channels,
            "codebook_size": int(codebook.shape[0]),
            "code_dim": int(codebook.shape[1]),
        }

    def _down_blocks(self, state_dict) -> int:
        # Down blocks start with a conv (key `.0.weight`); the Swin / upsampler blocks do not.
        found = sorted(int(m.group(1)) for k in state_dict if (m := _DOWN_CONV.match(k)))
        if found != list(range(len(found))):
            raise ConversionError(f"{self.name}: encoder down blocks {found} are not 0..n-1")
        return len(found)

    def weight_targets(self, model: keras.Model, config: dict) -> dict[str, WeightTarget]:
        layer = model.get_layer
        targets = conv_targets(layer("encoder_in_conv"), f"{ENCODER}.in_conv")
        num_down = CODE_LEVEL - int(math.log2(config.get("upscale", 1)))
        for i in range(num_down):
            targets.update(_stage_targets(model, f"encoder_down_{i}", f"{ENCODER}.blocks.{i}", 0))
        if self.lq:
            swin_prefix = f"{ENCODER}.blocks.{num_down}.swin_blks"
            for j in range(config["num_swin_layers"]):
                targets.update(_rstb_targets(layer(f"encoder_swin_{j}"), f"{swin_prefix}.{j}"))
            for i in range(2):
                targets.update(_stage_targets(model, f"encoder_up_{i}",
                                              f"{ENCODER}.blocks.{num_down + 1 + i}", 1))
        targets.update(conv_targets(layer("before_quant"), "before_quant_group.0"))
        targets["quantize_group.0.embedding.weight"] = WeightTarget(layer("quantize").embedding)
        targets.update(conv_targets(layer("after_quant"), "after_quant_group.0.conv"))
        for i in range(CODE_LEVEL):
            targets.update(_stage_targets(model, f"decoder_{i}", f"decoder_group.{i}.block", 1))
        targets.update(conv_targets(layer("out_conv"), "out_conv"))
        return targets


@register_converter
class FeMaSRConverter(_FeMaSRConverterBase):
    """The LQ stage (FeMaSR x4 / x2 SR models, PBaSR-FeMaSR branches)."""

    name = "femasr"
    lq = True

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        config = self._common_config(state_dict)
        num_down = self._down_blocks(state_dict)
        upscale = 2 ** (CODE_LEVEL - num_down)
        if upscale not in (2, 4):
            raise ConversionError(
                f"{self.name}: {num_down} encoder down blocks mean x{upscale}; only x2 and x4 "
                "are supported"
            )
        layers = sorted(int(m.group(1)) for k in state_dict if (m := _SWIN_LAYER.match(k)))
        depth = sorted(int(m.group(1)) for k in state_dict if (m := _SWIN_BLOCK.match(k)))
        if not layers or not depth:
            raise ConversionError(f"{self.name}: no complete Swin layer (swin_blks.0) found")
        prefix = f"{ENCODER}.blocks.{num_down}.swin_blks.0.residual_group.blocks.0"
        table = require(state_dict, f"{prefix}.attn.relative_position_bias_table", self.name)
        table_side = math.isqrt(int(table.shape[0]))  # (2 * window - 1)^2 rows
        if table_side * table_side != table.shape[0] or table_side % 2 == 0:
            raise ConversionError(
                f"{self.name}: relative_position_bias_table has {table.shape[0]} rows, "
                "not (2 * window_size - 1)^2"
            )
        fc1 = require(state_dict, f"{prefix}.mlp.fc1.weight", self.name)
        return {
            **config,
            "upscale": upscale,
            "num_swin_layers": max(layers) + 1,
            "swin_depth": max(depth) + 1,
            "swin_num_heads": int(table.shape[1]),
            "window_size": (table_side + 1) // 2,
            "swin_mlp_ratio": float(fc1.shape[0]) / float(fc1.shape[1]),
        }

    def build(self, config: dict) -> keras.Model:
        return FeMaSR(**config)


@register_converter
class FeMaSRHQConverter(_FeMaSRConverterBase):
    """The HQ stage VQGAN (FeMaSR_HRP_model_g.pth), the prior for training the LQ stage."""

    name = "femasr_hq"
    lq = False

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        num_down = self._down_blocks(state_dict)
        if num_down != CODE_LEVEL:
            raise ConversionError(
                f"{self.name}: the HQ encoder has {num_down} down blocks, expected {CODE_LEVEL}"
            )
        return self._common_config(state_dict)

    def build(self, config: dict) -> keras.Model:
        return FeMaSRHQ(**config)


def _resblock_targets(block, torch_name: str) -> dict[str, WeightTarget]:
    """ResBlock: conv = Sequential(NormLayer, act, conv, NormLayer, act, conv)."""
    targets = norm_targets(block.norm1, f"{torch_name}.conv.0.norm")
    targets.update(conv_targets(block.conv1, f"{torch_name}.conv.2"))
    targets.update(norm_targets(block.norm2, f"{torch_name}.conv.3.norm"))
    targets.update(conv_targets(block.conv2, f"{torch_name}.conv.5"))
    return targets


def _stage_targets(model, prefix: str, torch_name: str, conv_index: int):
    """A conv followed by two ResBlocks at Sequential indices conv_index, +1, +2 (down blocks:
    conv at 0; upsamplers and decoder blocks: nn.Upsample at 0, conv at 1)."""
    targets = conv_targets(model.get_layer(f"{prefix}_conv"), f"{torch_name}.{conv_index}")
    for k in (0, 1):
        targets.update(_resblock_targets(model.get_layer(f"{prefix}_res_{k}"),
                                         f"{torch_name}.{conv_index + 1 + k}"))
    return targets


def _rstb_targets(rstb, torch_name: str) -> dict[str, WeightTarget]:
    targets = conv_targets(rstb.conv, f"{torch_name}.conv")
    for k, block in enumerate(rstb.blocks):
        prefix = f"{torch_name}.residual_group.blocks.{k}"
        targets[f"{prefix}.attn.relative_position_bias_table"] = WeightTarget(
            block.attn.relative_position_bias_table
        )
        targets.update(norm_targets(block.norm1, f"{prefix}.norm1"))
        targets.update(norm_targets(block.norm2, f"{prefix}.norm2"))
        targets.update(dense_targets(block.attn.qkv, f"{prefix}.attn.qkv"))
        targets.update(dense_targets(block.attn.proj, f"{prefix}.attn.proj"))
        targets.update(dense_targets(block.fc1, f"{prefix}.mlp.fc1"))
        targets.update(dense_targets(block.fc2, f"{prefix}.mlp.fc2"))
    return targets
