"""SSIM and MS-SSIM (pyiqa conventions), optionally restricted to a region."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_pbasr.metrics.color import luma_255
from keras_pbasr.metrics.compilation import compiled_metric
from keras_pbasr.metrics.functional import (
    avg_pool2x2_zero_pad,
    filter2d,
    mean_pool,
    pad2d,
    weighted_mean,
)
from keras_pbasr.metrics.regions import nan_if_empty, prepare_pair

WINDOW_SIZE = 11
WINDOW_RADIUS = WINDOW_SIZE // 2
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_1d(size: int = WINDOW_SIZE, sigma: float = 1.5) -> np.ndarray:
    """The 1-D factor of fspecial('gaussian', size, sigma), which is separable."""
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def ssim_maps(x, y, data_range: float = 255.0):
    """'valid' SSIM and contrast-structure maps of two (N, H, W, C) images (11x11 Gaussian,
    sigma 1.5, applied as two 1-D passes); the cs map is clipped at 0 as in pyiqa."""
    g = gaussian_1d()
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    channels = x.shape[-1]
    # The five local moments in one filtering call (channels are filtered independently).
    stacked = ops.concatenate([x, y, x * x, y * y, x * y], axis=-1)
    moments = filter2d(filter2d(stacked, g[:, None]), g[None, :])
    mu1, mu2, xx, yy, xy = (moments[..., i * channels : (i + 1) * channels] for i in range(5))
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = xx - mu1_sq
    sigma2_sq = yy - mu2_sq
    sigma12 = xy - mu1_mu2
    cs_map = ops.relu((2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2))
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return ssim_map, cs_map


def valid_weight(weight):
    """The region weight aligned with a 'valid' 11x11 map: the weight of each window centre."""
    r = WINDOW_RADIUS
    return weight[:, r:-r, r:-r, :]


def _gray_255(rgb, y_channel: bool, color_space: str):
    if y_channel:
        return luma_255(rgb, color_space)
    return ops.cast(ops.round(rgb * 255.0), "float64")


def _check_min_size(h: int, w: int, minimum: int, metric: str, why: str) -> None:
    if min(h, w) < minimum:
        raise ValueError(f"{metric} needs images of at least {minimum}x{minimum} px ({why}), "
                         f"got {h}x{w}")


def ssim(
    sr,
    hr,
    weight=None,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    color_space: str = "yiq",
):
    """SSIM per image: luma*255 rounded, float64, 11x11 Gaussian 'valid' maps, no automatic
    downsampling. A region weight (N, H, W, 1) weights each window by its centre pixel.

    Returns (N,) float64.
    """
    sr, hr, weight = prepare_pair(sr, hr, weight, crop_border, "SSIM")
    _check_min_size(sr.shape[1], sr.shape[2], WINDOW_SIZE, "SSIM", "one 11x11 window")
    return _ssim(sr, hr, weight, y_channel=y_channel, color_space=color_space)


@compiled_metric(static=("y_channel", "color_space"))
def _ssim(sr, hr, weight, *, y_channel: bool, color_space: str):
    x = _gray_255(sr, y_channel, color_space)
    y = _gray_255(hr, y_channel, color_space)
    ssim_map, _ = ssim_maps(x, y)
    w = valid_weight(ops.cast(weight, "float64"))
    return nan_if_empty(weighted_mean(ssim_map, w), w)


def ms_ssim_min_size(levels: int = len(MS_SSIM_WEIGHTS)) -> int:
    """Smallest side for which every scale still holds one 11x11 window (161 for 5 scales)."""
    size = WINDOW_SIZE
    for _ in range(levels - 1):
        size = 2 * size - 1  # the smallest n with ceil(n / 2) == size
    return size


def ms_ssim(
    sr,
    hr,
    weight=None,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    color_space: str = "yiq",
):
    """MS-SSIM per image (5 scales, weights 0.0448 ... 0.1333, 2x2 average pooling with
    torch's zero padding of odd sizes). The region weight is area-averaged like the image
    (padding by edge replication so an all-ones weight stays all ones) and, at each
    scale, weights the windows by their centre pixel. Returns (N,) float64."""
    sr, hr, weight = prepare_pair(sr, hr, weight, crop_border, "MS-SSIM")
    _check_min_size(sr.shape[1], sr.shape[2], ms_ssim_min_size(), "MS-SSIM",
                    "an 11x11 window at the 5th scale")
    return _ms_ssim(sr, hr, weight, y_channel=y_channel, color_space=color_space)


@compiled_metric(static=("y_channel", "color_space"))
def _ms_ssim(sr, hr, weight, *, y_channel: bool, color_space: str):
    x = _gray_255(sr, y_channel, color_space)
    y = _gray_255(hr, y_channel, color_space)
    w = ops.cast(weight, "float64")
    region_present = w
    pair = ops.concatenate([x, y], axis=-1)  # pooled together, as two channels
    cs_values = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        ssim_map, cs_map = ssim_maps(pair[..., :1], pair[..., 1:])
        wv = valid_weight(w)
        cs_values.append(weighted_mean(cs_map, wv))
        if level == len(MS_SSIM_WEIGHTS) - 1:
            ssim_value = weighted_mean(ssim_map, wv)
            break
        pair = avg_pool2x2_zero_pad(pair)
        w = pool_weight_2x2(w)
    exps = np.asarray(MS_SSIM_WEIGHTS)
    value = ssim_value ** exps[-1]
    for cs, e in zip(cs_values[:-1], exps[:-1]):
        value = value * cs**e
    return nan_if_empty(value, region_present)


def pool_weight_2x2(w):
    """2x2 area average of a weight map to the size avg_pool2x2_zero_pad gives the image."""
    ph, pw = w.shape[1] % 2, w.shape[2] % 2
    return mean_pool(pad2d(w, ph, ph, pw, pw, mode="edge"), 2)
