"""SRVGGNetCompact (Real-ESRGAN compact generator): backbone, checkpoint converter, presets."""

from keras_pbasr.models.registry import register_backbone, register_presets
from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact
from keras_pbasr.models.srvgg.srvgg_convert import SRVGGNetCompactConverter
from keras_pbasr.models.srvgg.srvgg_presets import PRESETS

register_backbone("srvgg", SRVGGNetCompact, converters=(SRVGGNetCompactConverter.name,))
register_presets(PRESETS, SRVGGNetCompact)

__all__ = ["SRVGGNetCompact"]
