"""Converter from Real-ESRGAN SRVGGNetCompact checkpoints (realesr-general-x4v3,
realesr-animevideov3): keys body.{i}.weight / bias, convs and PReLUs interleaved."""

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
    register_converter,
)
from keras_pbasr.convert.tensors import pixel_shuffle_out_channels
from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact

_BODY_KEY = re.compile(r"^body\.(\d+)\.weight$")


def _prelu_slopes_to_keras(weight: np.ndarray) -> np.ndarray:
    """nn.PReLU(num_feat).weight (C,) -> Keras PReLU alpha with shared_axes [1, 2]: (1, 1, C)."""
    if weight.ndim != 1:
        raise ValueError(f"PReLU weight must be 1-D, got {weight.shape}")
    return weight.reshape(1, 1, -1)


@register_converter
class SRVGGNetCompactConverter(ArchitectureConverter):
    name = "srvgg"

    def matches(self, keys: Collection[str]) -> bool:
        return "body.0.weight" in keys and all(k.startswith("body.") for k in keys)

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        body = {
            int(m.group(1)): state_dict[k] for k in state_dict if (m := _BODY_KEY.match(k))
        }
        convs = sorted(i for i, w in body.items() if w.ndim == 4)
        if len(convs) < 2 or convs[0] != 0:
            raise ConversionError(f"{self.name}: body.0.weight and the last conv are required")
        first, last = body[convs[0]], body[convs[-1]]
        num_in_ch, num_feat = int(first.shape[1]), int(first.shape[0])
        prelu = any(w.ndim == 1 for w in body.values())
        # The last conv makes num_out_ch * upscale^2 channels; num_out_ch = num_in_ch upstream.
        upscale = math.isqrt(int(last.shape[0]) // num_in_ch)
        if upscale * upscale * num_in_ch != last.shape[0]:
            raise ConversionError(
                f"{self.name}: last conv body.{convs[-1]} has {last.shape[0]} outputs, not "
                f"{num_in_ch} * upscale^2"
            )
        config = {
            "num_in_ch": num_in_ch,
            "num_out_ch": num_in_ch,
            "num_feat": num_feat,
            "num_conv": len(convs) - 2,
            "upscale": upscale,
        }
        if prelu:
            config["act_type"] = "prelu"
        return config

    def convert(self, state_dict, strict=True, config_overrides=None):
        overrides = config_overrides or {}
        if "act_type" not in overrides and not any(
            np.ndim(state_dict[k]) == 1 for k in state_dict if _BODY_KEY.match(k)
        ):
            # leakyrelu and relu have no weights: the file cannot tell them apart.
            raise ConversionError(
                f"{self.name}: the checkpoint has no PReLU weights, so the activation is "
                "leakyrelu or relu; say which with config_overrides={'act_type': ...} "
                "(CLI: --set act_type=leakyrelu)"
            )
        return super().convert(state_dict, strict, config_overrides)

    def build(self, config: dict) -> keras.Model:
        return SRVGGNetCompact(**config)

    def weight_targets(self, model: keras.Model, config: dict) -> dict[str, WeightTarget]:
        num_conv, upscale = config["num_conv"], config["upscale"]
        last_index = 2 * num_conv + 2
        targets = {}
        for index in range(0, last_index + 1, 2):
            layer = model.get_layer(f"body_{index}")
            if index == last_index:
                # This conv feeds PixelShuffle: reorder its outputs into Keras' order.
                def to_keras_order(array, c=config["num_out_ch"], r=upscale):
                    return pixel_shuffle_out_channels(array, c, r)

                targets.update(
                    conv_targets(layer, f"body.{index}", to_keras_order, to_keras_order)
                )
            else:
                targets.update(conv_targets(layer, f"body.{index}"))
            if config.get("act_type", "prelu") == "prelu" and index != last_index:
                act = model.get_layer(f"body_{index + 1}")
                targets[f"body.{index + 1}.weight"] = WeightTarget(
                    act.alpha, _prelu_slopes_to_keras
                )
        return targets

