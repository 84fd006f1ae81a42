"""The metrics by name, with what the evaluation needs to know about each."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
from keras import ops

from keras_pbasr.metrics import gmsd, niqe, perceptual, psnr, ssim, vif, vsi
from keras_pbasr.metrics.regions import REGIONS, region_weight
from keras_pbasr.utils.image_files import check_float_pixels


def _lpips_vgg(sr, hr, weight=None, **kwargs):
    return perceptual.lpips(sr, hr, weight, net="vgg", **kwargs)


def _niqe_of_sr(sr, hr=None, weight=None, **kwargs):
    return niqe.niqe(sr, **kwargs)


def _niqe_of_hr(sr, hr, weight=None, **kwargs):
    return niqe.niqe(hr, **kwargs)


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable
    higher_is_better: bool
    full_reference: bool = True
    # How far a pixel's influence reaches: "pixel" (only itself), "window" (a few pixels),
    # "global" (whole image, e.g. VSI's saliency normalisation), "deep" (CNN receptive field).
    locality: str = "window"
    uses_luma: bool = False
    description: str = ""


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("psnr", psnr.psnr, True, locality="pixel", uses_luma=True,
                   description="PSNR on YIQ luma (dB)"),
        MetricSpec("psnr_rgb", functools.partial(psnr.psnr, y_channel=False), True,
                   locality="pixel", description="PSNR on RGB (dB)"),
        MetricSpec("ssim", ssim.ssim, True, uses_luma=True, description="SSIM on luma"),
        MetricSpec("ms_ssim", ssim.ms_ssim, True, uses_luma=True,
                   description="MS-SSIM on luma (5 scales)"),
        MetricSpec("gmsd", gmsd.gmsd, False, uses_luma=True, description="GMSD on luma"),
        MetricSpec("vif", vif.vif, True, uses_luma=True,
                   description="VIF (steerable-pyramid GSM, pyiqa 'vif')"),
        MetricSpec("vsi", vsi.vsi, True, locality="global", description="VSI"),
        MetricSpec("lpips", perceptual.lpips, False, locality="deep",
                   description="LPIPS v0.1, AlexNet"),
        MetricSpec("lpips_vgg", _lpips_vgg, False, locality="deep",
                   description="LPIPS v0.1, VGG16"),
        MetricSpec("dists", perceptual.dists, False, locality="deep", description="DISTS"),
        MetricSpec("niqe", _niqe_of_sr, False, full_reference=False, uses_luma=True,
                   description="NIQE of the SR image"),
        MetricSpec("niqe_hr", _niqe_of_hr, False, full_reference=False, uses_luma=True,
                   description="NIQE of the HR image"),
    )
}
DEFAULT_METRICS = ("psnr", "ssim", "ms_ssim", "gmsd", "vif", "vsi", "lpips", "dists")


def check_metric_names(names) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; available: {sorted(METRICS)}")
    return names


def _checked_pixels(images, clip: bool, what: str):
    """Float images checked (and clipped) by `check_float_pixels`; others unchanged."""
    array = np.asarray(ops.convert_to_numpy(images))
    if not np.issubdtype(array.dtype, np.floating):
        return images
    return check_float_pixels(array, clip, f"the {what} images")


def compute_metric(
    name: str,
    sr,
    hr=None,
    *,
    mask=None,
    region: str = "all",
    crop_border: int = 0,
    color_space: str = "yiq",
    clip: bool = False,
) -> np.ndarray:
    """One metric for a batch (N, H, W, 3) in [0, 1] -> float64 numpy (N,).

    region "blur"/"sharp" restricts full-reference metrics with the blur map `mask`
    (0 = blurred, 255 = sharp; (N, H, W) or (N, H, W, 1) at HR size). No-reference metrics
    (NIQE) ignore regions: they are defined on the whole image only.

    Float `sr` / `hr` with NaN or infinite values raise ValueError with their count; values
    outside [0, 1] raise ValueError unless `clip=True`, which clips them.

    Example:
    >>> x = np.full((1, 16, 16, 3), 0.5, np.float32)
    >>> float(compute_metric("psnr", x * 0.9, x)[0]) > 20
    True
    """
    sr = _checked_pixels(sr, clip, "sr")
    hr = None if hr is None else _checked_pixels(hr, clip, "hr")
    spec = METRICS[check_metric_names([name])[0]]
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    kwargs = {"crop_border": crop_border}
    if spec.uses_luma:
        kwargs["color_space"] = color_space
    if not spec.full_reference:
        if region != "all":
            raise ValueError(f"{name} is a no-reference metric: it has no region version")
        return np.asarray(ops.convert_to_numpy(spec.fn(sr, hr, **kwargs)), np.float64)
    if hr is None:
        raise ValueError(f"{name} is a full-reference metric: it needs the HR image")
    weight = None
    if region != "all":
        if mask is None:
            raise ValueError(f"{name} on region {region!r} needs a blur mask")
        weight = region_weight(mask, region)
    return np.asarray(ops.convert_to_numpy(spec.fn(sr, hr, weight, **kwargs)), np.float64)
