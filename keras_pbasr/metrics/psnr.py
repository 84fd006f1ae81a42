"""PSNR, optionally restricted to a region by a weighted MSE."""

from __future__ import annotations

from keras import ops

from keras_pbasr.metrics.color import rgb_to_luma
from keras_pbasr.metrics.compilation import compiled_metric
from keras_pbasr.metrics.functional import weighted_mean
from keras_pbasr.metrics.regions import nan_if_empty, prepare_pair


def psnr(
    sr,
    hr,
    weight=None,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    color_space: str = "yiq",
):
    """PSNR in dB per image, pyiqa's: 10 log10(1 / (mse + 1e-8)) on unrounded luma
    (or on RGB when `y_channel` is False). Inputs (N, H, W, 3) in [0, 1]; returns (N,).

    With a region weight (N, H, W, 1) the MSE is the weighted mean of squared errors.
    """
    sr, hr, weight = prepare_pair(sr, hr, weight, crop_border, "PSNR")
    return _psnr(sr, hr, weight, y_channel=y_channel, color_space=color_space)


@compiled_metric(static=("y_channel", "color_space"))
def _psnr(sr, hr, weight, *, y_channel: bool, color_space: str):
    if y_channel:
        sr, hr = rgb_to_luma(sr, color_space), rgb_to_luma(hr, color_space)
    err = ops.cast(ops.square(sr - hr), "float64")
    mse = weighted_mean(err, ops.cast(weight, "float64"))
    value = 10.0 * ops.log10(1.0 / (mse + 1e-8))
    return nan_if_empty(value, weight)
