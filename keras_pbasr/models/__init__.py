"""Generator backbones and discriminators, one folder per model family."""

from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact

__all__ = ["SRVGGNetCompact"]
