"""PBaSR training: the two-branch GAN trainer, the Cross Fusion Module and their helpers."""

from keras_pbasr.trainer.callbacks import NonFiniteLossError, StopOnNonFiniteLoss
from keras_pbasr.trainer.cross_fusion import (
    CrossFusion,
    branch_cosine,
    cross_fuse,
    cross_fusion_ratio,
)
from keras_pbasr.trainer.multi_optimizer import MultiOptimizer
from keras_pbasr.trainer.pbasr_trainer import PBaSRTrainer, default_adam
from keras_pbasr.trainer.usm import usm_sharpen

__all__ = [
    "CrossFusion",
    "MultiOptimizer",
    "NonFiniteLossError",
    "PBaSRTrainer",
    "StopOnNonFiniteLoss",
    "branch_cosine",
    "cross_fuse",
    "cross_fusion_ratio",
    "default_adam",
    "usm_sharpen",
]
