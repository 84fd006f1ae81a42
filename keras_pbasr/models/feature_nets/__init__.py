"""Pretrained feature networks (VGG16, VGG19, AlexNet) for perceptual losses and metrics."""

from keras_pbasr.models.feature_nets.feature_extractor import FeatureExtractor
from keras_pbasr.models.feature_nets.pooling import L2Pooling2D, area_resize
from keras_pbasr.models.registry import register_preset_class

register_preset_class(FeatureExtractor)

__all__ = ["FeatureExtractor", "L2Pooling2D", "area_resize"]
