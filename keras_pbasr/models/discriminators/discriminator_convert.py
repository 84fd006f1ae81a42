"""Converters from official U-Net discriminator checkpoints (Real-ESRGAN's UNetDiscriminatorSN,
PBaSR's ConditionalUNetDiscriminatorSN / ...SNv2): spectral-normalised convs as
convN.weight_orig / weight_u / weight_v, plain convs conv0, conv9, pred_conv, pred_conv_cond,
concat_layer as .weight / .bias.

torch's spectral_norm orders weight_v as (in, kh, kw), which SpectralNormConv2D keeps, so u and
v copy unchanged and the converted model continues the power iteration where torch stopped.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import keras
import numpy as np

from keras_pbasr.convert.registry import (
    ArchitectureConverter,
    WeightTarget,
    conv_targets,
    register_converter,
    require,
)
from keras_pbasr.convert.tensors import torch_conv_to_keras
from keras_pbasr.models.discriminators.conditional_unet_discriminator import (
    ConditionalUNetDiscriminatorSN,
)
from keras_pbasr.models.discriminators.unet_discriminator import UNetDiscriminatorSN

SN_CONVS = tuple(f"conv{i}" for i in range(1, 9))


def _sn_targets(model: keras.Model) -> dict[str, WeightTarget]:
    targets = {}
    for name in SN_CONVS:
        layer = model.get_layer(name)
        targets[f"{name}.weight_orig"] = WeightTarget(layer.weight_orig, torch_conv_to_keras)
        targets[f"{name}.weight_u"] = WeightTarget(layer.weight_u)
        targets[f"{name}.weight_v"] = WeightTarget(layer.weight_v)
    return targets


def _is_unet_discriminator(keys: Collection[str]) -> bool:
    return "conv1.weight_orig" in keys and "conv9.weight" in keys


@register_converter
class UNetDiscriminatorSNConverter(ArchitectureConverter):
    name = "unet_discriminator_sn"

    def matches(self, keys: Collection[str]) -> bool:
        return _is_unet_discriminator(keys) and "pred_conv_cond.weight" not in keys

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        conv0 = require(state_dict, "conv0.weight", self.name)
        # skip_connection has no weights; pass it as a config override if it was False.
        return {"num_in_ch": int(conv0.shape[1]), "num_feat": int(conv0.shape[0])}

    def build(self, config: dict) -> keras.Model:
        return UNetDiscriminatorSN(**config)

    def weight_targets(self, model: keras.Model, config: dict) -> dict[str, WeightTarget]:
        return {
            **conv_targets(model.get_layer("conv0"), "conv0"),
            **_sn_targets(model),
            **conv_targets(model.get_layer("conv9"), "conv9"),
        }


@register_converter
class ConditionalUNetDiscriminatorSNConverter(ArchitectureConverter):
    """Both official variants: `pred_conv` present means v1, absent means v2."""

    name = "conditional_unet_discriminator_sn"

    def matches(self, keys: Collection[str]) -> bool:
        return _is_unet_discriminator(keys) and "pred_conv_cond.weight" in keys

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        cond = require(state_dict, "pred_conv_cond.weight", self.name)
        variant = "v1" if "pred_conv.weight" in state_dict else "v2"
        image_conv = require(
            state_dict, "pred_conv.weight" if variant == "v1" else "conv0.weight", self.name
        )
        return {
            "num_in_ch": int(image_conv.shape[1]),
            "num_cond_ch": int(cond.shape[1]),
            "num_feat": int(require(state_dict, "conv1.weight_orig", self.name).shape[1]),
            "variant": variant,
        }

    def build(self, config: dict) -> keras.Model:
        return ConditionalUNetDiscriminatorSN(**config)

    def weight_targets(self, model: keras.Model, config: dict) -> dict[str, WeightTarget]:
        plain = ["conv0", "pred_conv_cond", "concat_layer", "conv9"]
        if config.get("variant", "v2") == "v1":
            plain.append("pred_conv")
        targets = _sn_targets(model)
        for name in plain:
            targets.update(conv_targets(model.get_layer(name), name))
        return targets
