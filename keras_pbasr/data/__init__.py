"""Training and evaluation data for PBaSR.

Batch structure (what `mixed_dataset` and `numpy_batches` yield, what the trainer consumes):

    {
      "lr":      float32 (B, H/s, W/s, 3) in [0, 1]   degraded input (BSRGAN or Real-ESRGAN)
      "hr":      float32 (B, H, W, 3)     in [0, 1]   ground truth patch (not USM-sharpened)
      "mask":    float32 (B, H, W, 1)     1 = sharp, 0 = blurred; all ones for general samples
      "is_blur": float32 (B,)             1.0 for blur-branch samples, 0.0 for general ones
    }

General samples come first and blur samples last, with fixed counts per batch:
n_blur = round(B * blur_ratio) (default blur_ratio 0.5), n_general = B - n_blur. The mask stays
at HR resolution and follows HR through every crop, resize, flip and rotation.

Only this package imports TensorFlow, and only when a TensorFlow-backed name is first used:
`keras_pbasr.data.io` (Pillow reading), `keras_pbasr.data.sources` (file builders),
`keras_pbasr.data.reblursr` (the ReBlurSR labels and sources) and
`numpy_batches` (pre-generated .npz batches) work without it.

Example:
>>> from keras_pbasr import data
>>> ds = data.mixed_dataset(                                     # doctest: +SKIP
...     general="DIV2K/HR", blur=data.blur_folder("ReBlurSR/HR", "ReBlurSR/mask"),
...     batch_size=16, patch_size=256, scale=4, degradation="bsrgan", seed=0)
>>> batch = next(iter(ds))                                       # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from keras_pbasr.data.cache import numpy_batches, write_batch_cache
from keras_pbasr.data.errors import DataError, DataErrorCounter, DataErrorReport
from keras_pbasr.data.io import ImageReadError, binarize_mask, read_blur_mask, read_mask
from keras_pbasr.data.reblursr import reblursr, reblursr_validation_pairs
from keras_pbasr.data.sources import (
    ImagePair,
    SampleSource,
    blur_folder,
    general_folder,
    load_pair,
    pair_by_stem,
    paired_folders,
    preflight,
    synthetic_blur,
)

# Names whose modules import TensorFlow: loaded on first use.
_LAZY = {
    "mixed_dataset": "keras_pbasr.data.pipeline",
    "sample_dataset": "keras_pbasr.data.pipeline",
    "random_resize_crop": "keras_pbasr.data.pipeline",
    "random_flip_rotate": "keras_pbasr.data.pipeline",
    "bsrgan_degradation": "keras_pbasr.data.degradations",
    "realesrgan_degradation": "keras_pbasr.data.degradations",
    "RealESRGANConfig": "keras_pbasr.data.degradations",
    "degrade": "keras_pbasr.data.degradations",
    "synthesize_blur_kept": "keras_pbasr.data.synthetic",
    "depth_like_region": "keras_pbasr.data.synthetic",
}

__all__ = [
    "DataError", "DataErrorCounter", "DataErrorReport", "ImagePair", "ImageReadError",
    "SampleSource", "binarize_mask", "blur_folder", "general_folder", "load_pair",
    "numpy_batches", "pair_by_stem", "paired_folders", "preflight", "read_blur_mask", "read_mask",
    "reblursr", "reblursr_validation_pairs", "synthetic_blur", "write_batch_cache", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_pbasr.data' has no attribute {name!r}")
