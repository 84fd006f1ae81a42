"""keras_pbasr: blur-aware blind super-resolution (PBaSR) for Keras 3.

Importing this package never imports TensorFlow; only `keras_pbasr.data` does, lazily.
"""

# ruff: noqa: E402  (the imports below must follow the log set-up)
from keras_pbasr.utils.native_logs import quiet_native_logs_for_cli

# Before Keras (and with it TensorFlow, which reads its log level once) is imported below.
quiet_native_logs_for_cli()

from keras_pbasr import blurmap, evaluation, metrics, presets
from keras_pbasr.evaluation import evaluate
from keras_pbasr.export import export
from keras_pbasr.inference import upscale
from keras_pbasr.models.discriminators import (
    ConditionalUNetDiscriminatorSN,
    UNetDiscriminatorSN,
)
from keras_pbasr.models.femasr.femasr_backbone import FeMaSR, FeMaSRHQ
from keras_pbasr.models.rrdbnet.rrdbnet_backbone import RRDBNet
from keras_pbasr.models.srformer.srformer_backbone import SRFormer
from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact
from keras_pbasr.trainer import CrossFusion, PBaSRTrainer
from keras_pbasr.version import __version__

__all__ = [
    "ConditionalUNetDiscriminatorSN",
    "CrossFusion",
    "FeMaSR",
    "FeMaSRHQ",
    "PBaSRTrainer",
    "RRDBNet",
    "SRFormer",
    "SRVGGNetCompact",
    "UNetDiscriminatorSN",
    "__version__",
    "blurmap",
    "evaluate",
    "evaluation",
    "export",
    "metrics",
    "presets",
    "upscale",
]
