"""Blur-map estimation: the pure pieces, synthetic images blurred in a known mask, the CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from keras_pbasr import blurmap
from keras_pbasr.blurmap.sharpness import (
    box_mean,
    guided_filter,
    lbp_riu2_codes,
    otsu_threshold,
)
from keras_pbasr.cli import main

# backend_agnostic: every test but the Keras detector's (marked one by one below).


def _texture(rng, h=160, w=200):
    """A sharp, richly textured RGB image."""
    noise = rng.random((h, w, 3))
    return np.clip(ndimage.gaussian_filter(noise, (0.6, 0.6, 0)) * 1.6 - 0.3, 0, 1)


def _blur_inside(image, blurred_region, sigma):
    blurred = ndimage.gaussian_filter(image, (sigma, sigma, 0))
    return np.where(blurred_region[..., None], blurred, image)


@pytest.mark.backend_agnostic
def test_box_mean_matches_uniform_filter(rng):
    x = rng.random((23, 31))
    np.testing.assert_allclose(box_mean(x, 3), ndimage.uniform_filter(x, 7, mode="nearest"),
                               atol=1e-12)


@pytest.mark.backend_agnostic
def test_lbp_codes_flat_and_isolated_dark_pixel():
    flat = np.full((9, 9), 0.5)
    assert (lbp_riu2_codes(flat) == 0).all()
    dark_centre = flat.copy()
    dark_centre[4, 4] = 0.0  # every neighbour is brighter: all 8 bits set, uniform
    assert lbp_riu2_codes(dark_centre)[4, 4] == 8


@pytest.mark.backend_agnostic
def test_otsu_splits_two_modes(rng):
    values = np.concatenate([rng.normal(0.2, 0.02, 500), rng.normal(0.7, 0.02, 500)])
    assert 0.25 < otsu_threshold(values) < 0.65


@pytest.mark.backend_agnostic
def test_guided_filter_keeps_constant_and_follows_edges():
    guide = np.zeros((40, 40))
    guide[:, 20:] = 1.0
    src = np.full((40, 40), 0.3)
    np.testing.assert_allclose(guided_filter(guide, src, 4, 1e-3), 0.3, atol=1e-9)
    step = guided_filter(guide, guide.copy(), 4, 1e-4)
    assert step[:, :18].max() < 0.05 and step[:, 22:].min() > 0.95


@pytest.mark.backend_agnostic
def test_scores_by_hand():
    true = np.array([[True, True, False, False]])
    pred = np.array([[True, False, False, False]])
    # sharp: inter 1 / union 2; blurred: inter 2 / union 3
    assert blurmap.mean_iou(pred, true) == pytest.approx((0.5 + 2 / 3) / 2)
    # precision 1, recall 0.5
    assert blurmap.f_measure(pred, true) == pytest.approx(1.3 * 0.5 / (0.3 + 0.5))
    assert blurmap.mean_absolute_error(np.array([[1.0, 0.5, 0.0, 0.25]]), true) == 0.1875
    assert [blurmap.area_class(f) for f in (0.2, 0.5, 0.8)] == ["small", "medium", "large"]


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("sigma", [2.0, 4.0])
def test_synthetic_blur_region_found(rng, sigma):
    image = _texture(rng)
    yy, xx = np.mgrid[:160, :200]
    region = (yy - 70) ** 2 / 60**2 + (xx - 120) ** 2 / 75**2 < 1  # an off-centre ellipse
    result = blurmap.estimate(_blur_inside(image, region, sigma))
    predicted_blur = result.mask == 0
    iou = (predicted_blur & region).sum() / (predicted_blur | region).sum()
    assert iou >= 0.8, iou
    assert result.sharpness.shape == region.shape and result.sharpness.dtype == np.float32
    assert abs(result.blurred_fraction - region.mean()) < 0.1


@pytest.mark.backend_agnostic
def test_sharp_everywhere_is_not_split(rng):
    result = blurmap.estimate(_texture(rng))
    assert result.blurred_fraction < 0.05


@pytest.mark.backend_agnostic
def test_large_image_uses_working_size(rng):
    image = _texture(rng, 300, 420)
    region = np.zeros((300, 420), bool)
    region[:, :200] = True
    result = blurmap.estimate(_blur_inside(image, region, 3.0), max_side=200)
    assert result.mask.shape == (300, 420)
    assert (result.mask[:, :180] == 0).mean() > 0.9 and (result.mask[:, 230:] == 255).mean() > 0.9


@pytest.mark.backend_agnostic
def test_inputs_of_every_kind(tmp_path, rng):
    rgb8 = (_texture(rng, 40, 48) * 255).astype(np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgb8).save(path)
    expected = blurmap.estimate(rgb8).mask
    np.testing.assert_array_equal(blurmap.estimate(path).mask, expected)
    np.testing.assert_array_equal(blurmap.estimate(Image.open(path)).mask, expected)
    gray16 = (rgb8[..., 0].astype(np.uint16) * 257)
    assert blurmap.estimate(gray16).mask.shape == (40, 48)
    with pytest.raises(ValueError, match="too small"):
        blurmap.estimate(np.zeros((5, 40, 3), np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match="broken.png"):
        blurmap.estimate(broken)


def test_learned_detector_interface(tmp_path, rng):
    import keras

    inputs = keras.Input((None, None, 3))
    # A "detector" that calls the left half sharp: mean of the red channel, thresholded.
    outputs = keras.layers.Lambda(lambda x: x[..., :1])(inputs)
    detector = blurmap.KerasBlurDetector(keras.Model(inputs, outputs), size_multiple=8)
    image = np.zeros((21, 30, 3), np.float32)
    image[:, :15, 0] = 1.0
    result = blurmap.estimate(image, detector=detector)
    assert (result.mask[:, :15] == 255).all() and (result.mask[:, 15:] == 0).all()
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        blurmap.KerasBlurDetector(tmp_path / "missing.keras")


@pytest.mark.backend_agnostic
def test_cli_writes_masks_and_stats(tmp_path, rng, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("one", "two"):
        Image.fromarray((_texture(rng, 48, 64) * 255).astype(np.uint8)).save(src / f"{name}.jpg")
    out = tmp_path / "out"
    assert main(["blurmap", str(src), str(out), "--stats", "--soft"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "one.png", "one_soft.png", "stats.csv", "two.png", "two_soft.png"
    ]
    rows = list(csv.DictReader(open(out / "stats.csv")))
    assert [r["image"] for r in rows] == ["one.jpg", "two.jpg"]
    assert all(r["area_class"] in ("small", "medium", "large") for r in rows)
    capsys.readouterr()
    assert main(["blurmap", str(src), str(out)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["blurmap", str(src), str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["blurmap", str(tmp_path / "missing"), str(out)]) == 1
    assert "neither an image file nor a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["blurmap", str(tmp_path / "empty"), str(out)]) == 1
    assert "no images" in capsys.readouterr().err


@pytest.mark.backend_agnostic
def test_cuhk_blur_quality(shared_data):
    ious = []
    for image in sorted((shared_data / "cuhk_blur" / "image").iterdir()):
        true = np.asarray(Image.open(shared_data / "cuhk_blur" / "mask" / f"{image.stem}.png"))
        ious.append(blurmap.mean_iou(blurmap.estimate(image).mask > 127, true > 127))
    assert np.mean(ious) >= 0.6, ious
