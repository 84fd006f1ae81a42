"""Blur-map estimation for images that have no hand-labelled blur mask.

>>> from keras_pbasr import blurmap
>>> result = blurmap.estimate("photo.jpg")  # doctest: +SKIP
>>> result.mask  # uint8, 0 = blurred, 255 = sharp  # doctest: +SKIP

`area_class` (ReBlurSR's area class of a blurred fraction) lives in keras_pbasr.data.reblursr.
"""

from keras_pbasr.blurmap.estimator import BlurMap, KerasBlurDetector, estimate, load_rgb
from keras_pbasr.blurmap.scores import f_measure, mean_absolute_error, mean_iou
from keras_pbasr.data.reblursr import area_class

__all__ = [
    "BlurMap",
    "KerasBlurDetector",
    "area_class",
    "estimate",
    "f_measure",
    "load_rgb",
    "mean_absolute_error",
    "mean_iou",
]
