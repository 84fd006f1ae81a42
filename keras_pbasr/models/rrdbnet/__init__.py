"""RRDBNet (ESRGAN / Real-ESRGAN generator): backbone, checkpoint converters, built-in presets."""

from keras_pbasr.models.registry import register_backbone, register_presets
from keras_pbasr.models.rrdbnet.rrdbnet_backbone import RRDBNet
from keras_pbasr.models.rrdbnet.rrdbnet_convert import ESRGANRRDBNetConverter, RRDBNetConverter
from keras_pbasr.models.rrdbnet.rrdbnet_presets import PRESETS

register_backbone("rrdbnet", RRDBNet,
                  converters=(RRDBNetConverter.name, ESRGANRRDBNetConverter.name))
register_presets(PRESETS, RRDBNet)

__all__ = ["RRDBNet"]
