"""FeMaSR (VQGAN-prior SR; LQ stage and HQ stage): backbones, checkpoint converters, presets."""

from keras_pbasr.models.femasr.femasr_backbone import FeMaSR, FeMaSRHQ
from keras_pbasr.models.femasr.femasr_convert import FeMaSRConverter, FeMaSRHQConverter
from keras_pbasr.models.femasr.femasr_presets import PRESETS
from keras_pbasr.models.registry import register_backbone, register_presets

register_backbone("femasr", FeMaSR, converters=(FeMaSRConverter.name,))
register_backbone("femasr_hq", FeMaSRHQ, converters=(FeMaSRHQConverter.name,))
register_presets(PRESETS, FeMaSR)

__all__ = ["FeMaSR", "FeMaSRHQ"]
