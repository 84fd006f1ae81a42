"""Generator backbones and discriminators, one folder per model family."""

from keras_pbasr.models.discriminators import (
    ConditionalUNetDiscriminatorSN,
    UNetDiscriminatorSN,
)
from keras_pbasr.models.feature_nets import FeatureExtractor
from keras_pbasr.models.femasr.femasr_backbone import FeMaSR, FeMaSRHQ
from keras_pbasr.models.rrdbnet.rrdbnet_backbone import RRDBNet
from keras_pbasr.models.srformer.srformer_backbone import SRFormer
from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact

__all__ = [
    "ConditionalUNetDiscriminatorSN",
    "FeMaSR",
    "FeMaSRHQ",
    "FeatureExtractor",
    "RRDBNet",
    "UNetDiscriminatorSN",
    "SRFormer",
    "SRVGGNetCompact",
]
