"""Pretrained feature networks for perceptual losses and metrics: VGG16, VGG19 and AlexNet
features, and the LPIPS and DISTS networks built on them."""

from keras_pbasr.models.feature_nets.dists import DISTS
from keras_pbasr.models.feature_nets.feature_extractor import FeatureExtractor
from keras_pbasr.models.feature_nets.lpips import LPIPS
from keras_pbasr.models.feature_nets.pooling import L2Pooling2D, area_resize
from keras_pbasr.models.registry import register_preset_class

register_preset_class(FeatureExtractor)

__all__ = ["DISTS", "FeatureExtractor", "L2Pooling2D", "LPIPS", "area_resize"]
