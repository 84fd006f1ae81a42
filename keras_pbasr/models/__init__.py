"""Generator backbones and discriminators, one folder per model family.

Every generator subclasses `SRBackbone` (the contract the trainer, `upscale`, presets and
converters read). Each family package registers its backbone, converters and built-in presets
in `keras_pbasr.models.registry` when imported: `BACKBONES` ({short name: Architecture}),
`BUILTIN_PRESETS` and `PRESET_CLASSES` (the classes a preset's config.json may name).
"""

from keras_pbasr.models.backbone import SRBackbone
from keras_pbasr.models.discriminators import (
    ConditionalUNetDiscriminatorSN,
    UNetDiscriminatorSN,
)
from keras_pbasr.models.feature_nets import FeatureExtractor
from keras_pbasr.models.femasr import FeMaSR, FeMaSRHQ
from keras_pbasr.models.registry import (
    BACKBONES,
    BUILTIN_PRESETS,
    PRESET_CLASSES,
    backbone_by_class_name,
)
from keras_pbasr.models.rrdbnet import RRDBNet
from keras_pbasr.models.srformer import SRFormer
from keras_pbasr.models.srvgg import SRVGGNetCompact

__all__ = [
    "BACKBONES",
    "BUILTIN_PRESETS",
    "PRESET_CLASSES",
    "ConditionalUNetDiscriminatorSN",
    "FeMaSR",
    "FeMaSRHQ",
    "FeatureExtractor",
    "RRDBNet",
    "SRBackbone",
    "SRFormer",
    "SRVGGNetCompact",
    "UNetDiscriminatorSN",
    "backbone_by_class_name",
]
