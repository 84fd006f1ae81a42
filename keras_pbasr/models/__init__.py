"""Generator backbones and discriminators, one folder per model family.

PRESET_CLASSES is the model registry's allow-list for presets: {registered name: class}. A
preset's config.json may only name one of these (`keras_pbasr.presets.preset_io`).
"""

import keras

from keras_pbasr.models.discriminators import (
    ConditionalUNetDiscriminatorSN,
    UNetDiscriminatorSN,
)
from keras_pbasr.models.feature_nets import FeatureExtractor
from keras_pbasr.models.femasr.femasr_backbone import FeMaSR, FeMaSRHQ
from keras_pbasr.models.rrdbnet.rrdbnet_backbone import RRDBNet
from keras_pbasr.models.srformer.srformer_backbone import SRFormer
from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact

PRESET_CLASSES = {
    keras.saving.get_registered_name(cls): cls
    for cls in (
        ConditionalUNetDiscriminatorSN,
        FeMaSR,
        FeMaSRHQ,
        FeatureExtractor,
        RRDBNet,
        SRFormer,
        SRVGGNetCompact,
        UNetDiscriminatorSN,
    )
}

__all__ = [
    "PRESET_CLASSES",
    "ConditionalUNetDiscriminatorSN",
    "FeMaSR",
    "FeMaSRHQ",
    "FeatureExtractor",
    "RRDBNet",
    "UNetDiscriminatorSN",
    "SRFormer",
    "SRVGGNetCompact",
]
