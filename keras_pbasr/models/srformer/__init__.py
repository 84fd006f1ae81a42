"""SRFormer (permuted self-attention transformer): backbone, checkpoint converter, presets."""

from keras_pbasr.models.registry import register_backbone, register_presets
from keras_pbasr.models.srformer.srformer_backbone import SRFormer
from keras_pbasr.models.srformer.srformer_convert import SRFormerConverter
from keras_pbasr.models.srformer.srformer_presets import PRESETS

register_backbone("srformer", SRFormer, converters=(SRFormerConverter.name,))
register_presets(PRESETS, SRFormer)

__all__ = ["SRFormer"]
