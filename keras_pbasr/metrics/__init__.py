"""Image-quality metrics, restricted to blur or sharp regions, and their catalog.

Full-reference metrics take SR and HR batches (N, H, W, 3) RGB in [0, 1] and an optional
region weight (N, H, W, 1) (see `region_weight`), and return (N,) tensors; they follow
pyiqa's conventions (luma = YIQ Y by default, BT.601 with color_space="bt601"). Metrics the
reference computes in float64 run in float64 on every backend (JAX inside jax.enable_x64).
"""

from keras_pbasr.metrics.catalog import DEFAULT_METRICS, METRICS, MetricSpec, compute_metric
from keras_pbasr.metrics.gmsd import gmsd
from keras_pbasr.metrics.niqe import niqe

# Named *_score: LPIPS and DISTS are also the networks (keras_pbasr.models.feature_nets).
from keras_pbasr.metrics.perceptual import dists as dists_score
from keras_pbasr.metrics.perceptual import lpips as lpips_score
from keras_pbasr.metrics.psnr import psnr
from keras_pbasr.metrics.regions import REGIONS, region_weight
from keras_pbasr.metrics.ssim import ms_ssim, ssim
from keras_pbasr.metrics.vif import vif
from keras_pbasr.metrics.vsi import vsi

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "MetricSpec",
    "REGIONS",
    "compute_metric",
    "dists_score",
    "gmsd",
    "lpips_score",
    "ms_ssim",
    "niqe",
    "psnr",
    "region_weight",
    "ssim",
    "vif",
    "vsi",
]
