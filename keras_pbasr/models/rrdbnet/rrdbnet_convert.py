"""Converters from PyTorch RRDBNet checkpoints: BasicSR / Real-ESRGAN key names (`rrdbnet`)
and the older ESRGAN / BSRGAN names (`rrdbnet_esrgan`)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import keras
import numpy as np

from keras_pbasr.convert.registry import (
    ArchitectureConverter,
    ConversionError,
    WeightTarget,
    conv_targets,
    register_converter,
)
from keras_pbasr.convert.tensors import pixel_unshuffle_in_channels
from keras_pbasr.models.rrdbnet.rrdbnet_backbone import UNSHUFFLE_FOR_SCALE, RRDBNet


@register_converter
class RRDBNetConverter(ArchitectureConverter):
    """BasicSR names: conv_first, body.{i}.rdb{1,2,3}.conv{1..5}, conv_body, conv_up1,
    conv_up2, conv_hr, conv_last."""

    name = "rrdbnet"
    # torch name of each non-body conv, in the order of the Keras layer names below.
    torch_names = {
        "conv_first": "conv_first",
        "conv_body": "conv_body",
        "conv_up1": "conv_up1",
        "conv_up2": "conv_up2",
        "conv_hr": "conv_hr",
        "conv_last": "conv_last",
    }
    block_pattern = re.compile(r"^body\.(\d+)\.")

    def block_conv_name(self, block: int, rdb: int, conv: int) -> str:
        return f"body.{block}.rdb{rdb}.conv{conv}"

    def matches(self, keys: Collection[str]) -> bool:
        return "conv_first.weight" in keys and self.block_conv_name(0, 1, 1) + ".weight" in keys

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        first = self.torch_names["conv_first"] + ".weight"
        last = self.torch_names["conv_last"] + ".weight"
        growth = self.block_conv_name(0, 1, 1) + ".weight"
        for key in (first, last, growth):
            if key not in state_dict:
                raise ConversionError(f"{self.name}: {key} is missing, cannot infer the config")
        num_out_ch = int(state_dict[last].shape[0])
        in_ch = int(state_dict[first].shape[1])
        # Real-ESRGAN x2 / x1 models see a 3-channel image pixel-unshuffled by 2 / 4.
        scale, num_in_ch = 4, in_ch
        for candidate in (2, 1):
            unshuffle = UNSHUFFLE_FOR_SCALE[candidate]
            if in_ch == num_out_ch * unshuffle**2:
                scale, num_in_ch = candidate, num_out_ch
        blocks = {int(m.group(1)) for k in state_dict if (m := self.block_pattern.match(k))}
        return {
            "num_in_ch": num_in_ch,
            "num_out_ch": num_out_ch,
            "scale": scale,
            "num_feat": int(state_dict[first].shape[0]),
            "num_block": max(blocks) + 1 if blocks else 0,
            "num_grow_ch": int(state_dict[growth].shape[0]),
        }

    def build(self, config: dict) -> keras.Model:
        return RRDBNet(**config)

    def weight_targets(self, model: keras.Model, config: dict) -> dict[str, WeightTarget]:
        targets = {}
        unshuffle = UNSHUFFLE_FOR_SCALE[config["scale"]]
        for layer_name, torch_name in self.torch_names.items():
            kernel_transform = None
            if layer_name == "conv_first" and unshuffle > 1:
                def kernel_transform(w, c=config["num_in_ch"], r=unshuffle):
                    return pixel_unshuffle_in_channels(w, c, r)
            targets.update(conv_targets(model.get_layer(layer_name), torch_name, kernel_transform))
        for block in range(config["num_block"]):
            for rdb in (1, 2, 3):
                for conv in range(1, 6):
                    layer = model.get_layer(f"body_{block}_rdb{rdb}_conv{conv}")
                    targets.update(conv_targets(layer, self.block_conv_name(block, rdb, conv)))
        return targets


@register_converter
class ESRGANRRDBNetConverter(RRDBNetConverter):
    """Original ESRGAN and BSRGAN names: conv_first, RRDB_trunk.{i}.RDB{1,2,3}.conv{1..5},
    trunk_conv, upconv1, upconv2, HRconv, conv_last (usually a bare state dict)."""

    name = "rrdbnet_esrgan"
    torch_names = {
        "conv_first": "conv_first",
        "conv_body": "trunk_conv",
        "conv_up1": "upconv1",
        "conv_up2": "upconv2",
        "conv_hr": "HRconv",
        "conv_last": "conv_last",
    }
    block_pattern = re.compile(r"^RRDB_trunk\.(\d+)\.")

    def block_conv_name(self, block: int, rdb: int, conv: int) -> str:
        return f"RRDB_trunk.{block}.RDB{rdb}.conv{conv}"

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        if "upconv1.weight" in state_dict and "upconv2.weight" not in state_dict:
            raise ConversionError(
                "this is a BSRGAN x2 RRDBNet (one upsampling conv, no pixel unshuffle); only "
                "the x4 layout and Real-ESRGAN's pixel-unshuffle x2/x1 layouts are supported"
            )
        return super().config_from_state_dict(state_dict)
