"""Inference on real images: tiled upscaling and image I/O with bit depth."""

from keras_pbasr.inference.image_io import UnsupportedImageError, read_image_array, write_image
from keras_pbasr.inference.upscale import upscale

__all__ = ["UnsupportedImageError", "read_image_array", "upscale", "write_image"]
