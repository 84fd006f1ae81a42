"""`evaluate` / `pbasr evaluate` end to end, bad input, and the discriminator analysis."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_pbasr.data.reblursr import mask_area_class
from keras_pbasr.evaluation import evaluation
from keras_pbasr.evaluation.discriminator_analysis import (
    analyze_discriminator,
    mask_to_map,
    pixel_loss,
    region_means,
)


def _bicubic_baseline(image_dir, out_root, limit=None):
    """x4 bicubic LR, then a bicubic upscale back to the HR size (the baseline SR)."""
    lr_dir, sr_dir = out_root / "lr", out_root / "sr"
    lr_dir.mkdir(parents=True)
    sr_dir.mkdir(parents=True)
    for path in sorted(image_dir.iterdir())[:limit]:
        image = Image.open(path).convert("RGB")
        w, h = image.size
        lr = image.resize((w // 4, h // 4), Image.BICUBIC)
        lr.save(lr_dir / f"{path.stem}.png")
        lr.resize((w, h), Image.BICUBIC).save(sr_dir / f"{path.stem}.png")
    return lr_dir, sr_dir


def test_full_evaluation_on_cuhk_blur(shared_data, tmp_path):
    hr_dir = shared_data / "cuhk_blur" / "image"
    mask_dir = shared_data / "cuhk_blur" / "mask"
    lr_dir, sr_dir = _bicubic_baseline(hr_dir, tmp_path)
    labels = tmp_path / "labels"
    labels.mkdir()
    # CUHK names tell the blur type; intensity is not labelled there: give one for the test.
    (labels / "labels.json").write_text(json.dumps({
        p.stem: {"blur_type": "motion" if p.stem.startswith("motion") else "defocus",
                 "intensity": "heavy" if i % 2 else "little"}
        for i, p in enumerate(sorted(hr_dir.iterdir()))
    }))
    out = tmp_path / "eval"
    from keras_pbasr.cli import main

    code = main(["evaluate", "--sr", str(sr_dir), "--hr", str(hr_dir), "--mask", str(mask_dir),
                 "--labels", str(labels), "--lr", str(lr_dir), "--metrics", "psnr,ssim,gmsd",
                 "--out", str(out), "--quiet"])
    assert code == 0
    for name in ("results.json", "results.csv", "aggregates.csv", "report.md",
                 "plots/bars_all.png", "plots/bars_blur.png", "plots/bars_sharp.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "plots").glob("best_*.png"))) == 1
    assert len(list((out / "plots").glob("worst_*.png"))) == 1
    report = json.loads((out / "results.json").read_text())
    stems = sorted(p.stem for p in hr_dir.iterdir())
    assert sorted(report["images"]) == stems
    one = report["images"][stems[0]]
    assert set(one) == {"all", "blur", "sharp"} and set(one["all"]) == {"psnr", "ssim", "gmsd"}
    # the bicubic baseline loses more where the image is sharp than where it is blurred
    agg = report["aggregates"]["all"]
    assert agg["blur"]["psnr"]["mean"] > agg["sharp"]["psnr"]["mean"]
    assert agg["all"]["psnr"]["count"] == len(stems)
    assert {"defocus", "motion", "defocus/heavy", "motion/little"} <= set(report["aggregates"])
    assert report["labels"][stems[0]]["area"] in ("small", "medium", "large")
    assert "| subset | n |" in (out / "report.md").read_text()


def _write(path, array):
    Image.fromarray(array).save(path)


@pytest.fixture
def tiny_dataset(tmp_path, rng):
    hr, sr, mask = tmp_path / "hr", tmp_path / "sr", tmp_path / "mask"
    for d in (hr, sr, mask):
        d.mkdir()
    for i, stem in enumerate(["a", "b"]):
        image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        noisy = np.clip(image.astype(int) + rng.integers(-20, 21, image.shape), 0, 255)
        _write(hr / f"{stem}.png", image)
        _write(sr / f"{stem}.png", noisy.astype(np.uint8))
        m = np.full((40, 48), 255, np.uint8)
        if i == 0:
            m[:, :20] = 0  # "a" has a blur region, "b" is all sharp
        _write(mask / f"{stem}.png", m)
    return hr, sr, mask


def test_empty_region_is_nan_and_counted(tiny_dataset, tmp_path):
    hr, sr, mask = tiny_dataset
    report = evaluation.evaluate(sr_dir=sr, hr_dir=hr, mask_dir=mask, out_dir=tmp_path / "o",
                                 metrics=["psnr", "ssim"], plots=False, progress=False)
    assert np.isnan(report["images"]["b"]["blur"]["psnr"])
    assert np.isfinite(report["images"]["a"]["blur"]["psnr"])
    assert report["nan_counts"]["blur"] == {"psnr": 1, "ssim": 1}
    assert report["aggregates"]["all"]["blur"]["psnr"] == {
        "mean": report["images"]["a"]["blur"]["psnr"], "count": 1, "nan": 1}
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["images"]["b"]["blur"]["psnr"] is None  # JSON has no NaN
    assert "blur / psnr: 1 image(s)" in (tmp_path / "o" / "report.md").read_text()


def test_size_mismatch_error_names_the_image_or_crops(tiny_dataset, tmp_path):
    hr, sr, _ = tiny_dataset
    _write(sr / "b.png", np.zeros((36, 48, 3), np.uint8))
    with pytest.raises(ValueError, match=r"b: SR is 48x36 but HR is 48x40"):
        evaluation.evaluate(sr_dir=sr, hr_dir=hr, metrics=["psnr"], progress=False)
    report = evaluation.evaluate(sr_dir=sr, hr_dir=hr, metrics=["psnr"], progress=False,
                                 size_policy="crop")
    assert np.isfinite(report["images"]["b"]["all"]["psnr"])


def test_region_metrics_without_masks_are_rejected(tiny_dataset):
    hr, sr, _ = tiny_dataset
    with pytest.raises(ValueError, match="need blur masks"):
        evaluation.evaluate(sr_dir=sr, hr_dir=hr, metrics=["psnr"], regions=["all", "blur"],
                            progress=False)


def test_too_small_images_error_names_the_image(tiny_dataset):
    hr, sr, _ = tiny_dataset
    with pytest.raises(ValueError, match=r"^a: MS-SSIM needs images of at least 161x161"):
        evaluation.evaluate(sr_dir=sr, hr_dir=hr, metrics=["ms_ssim"], progress=False)
    with pytest.raises(ValueError, match=r"^a: VIF needs images of at least 65x65"):
        evaluation.evaluate(sr_dir=sr, hr_dir=hr, metrics=["vif"], progress=False)


def test_cli_reports_bad_input(tiny_dataset, tmp_path, capsys):
    from keras_pbasr.cli import main

    hr, sr, _ = tiny_dataset
    code = main(["evaluate", "--sr", str(sr), "--hr", str(hr), "--regions", "blur",
                 "--out", str(tmp_path / "o"), "--quiet", "--metrics", "psnr"])
    assert code == 2
    assert "need blur masks" in capsys.readouterr().err


@pytest.mark.backend_agnostic
def test_reblursr_npy_labels(tmp_path):
    np.save(tmp_path / "defocus_motion_class.npy", np.array([0, 1]))
    np.save(tmp_path / "degree_class.npy", np.array([2, 0]))
    np.save(tmp_path / "area_class.npy", np.array([1, 2]))
    labels = evaluation.load_labels(tmp_path, ["y", "x"])  # sorted order: x, y
    assert labels == {"x": {"blur_type": "defocus", "intensity": "middle", "area": "medium"},
                      "y": {"blur_type": "motion", "intensity": "heavy", "area": "small"}}
    assert evaluation.subsets_of(labels["y"]) == [
        "all", "motion", "heavy", "small", "motion/heavy", "motion/small"]


@pytest.mark.backend_agnostic
def test_area_class_thresholds():
    mask = np.full((10, 10), 255.0)
    mask[:, :4] = 0
    assert mask_area_class(mask) == "small"  # 40% blurred
    mask[:, :5] = 0
    assert mask_area_class(mask) == "medium"
    mask[:, :6] = 0
    assert mask_area_class(mask) == "large"


# ---- discriminator analysis ------------------------------------------------------------


@pytest.mark.backend_agnostic
def test_pixel_losses_and_region_means():
    logits = np.array([[2.0, -1.0], [0.0, 0.5]])
    np.testing.assert_allclose(pixel_loss(logits, real=True), [[0, 2], [1, 0.5]])
    np.testing.assert_allclose(pixel_loss(logits, real=False), [[3, 0], [1, 1.5]])
    np.testing.assert_allclose(pixel_loss(logits, True, "bce"), np.log1p(np.exp(-logits)))
    sharp = np.array([[1.0, 0.0], [1.0, 0.0]])
    means = region_means(pixel_loss(logits, real=True), sharp)
    assert means == {"blur": 1.25, "sharp": 0.5, "all": 0.875}
    assert np.isnan(region_means(logits, np.ones_like(sharp))["blur"])
    np.testing.assert_allclose(mask_to_map(np.array([[0, 255], [255, 255]]), (1, 1)), [[0.75]])


def test_discriminator_analysis_blur_vs_sharp(tmp_path):
    """A 'discriminator' whose logit is the local gradient energy minus a threshold judges
    blurred pixels as fake: its real-sample loss must be higher on the blur region."""
    rng = np.random.default_rng(0)
    sharp_img = rng.random((32, 32, 3)).astype(np.float32)
    blurred = sharp_img.copy()
    blurred[:, :16] = blurred[:, :16].mean()
    mask = np.full((32, 32), 255.0)
    mask[:, :16] = 0

    inputs = keras.Input((None, None, 3))
    grad = keras.layers.Conv2D(1, 3, padding="same", use_bias=False,
                               kernel_initializer=keras.initializers.Constant(
                                   np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]] * 1,
                                            np.float32)[:, :, None, None].repeat(3, 2)))(inputs)
    logits = keras.layers.Lambda(lambda t: keras.ops.abs(t) * 10.0 - 1.0)(grad)
    disc = keras.Model(inputs, logits)
    result = analyze_discriminator(disc, [blurred], [mask], sr_images=[sharp_img],
                                   names=["img"], out_dir=tmp_path)
    real = result["images"]["img"]["real"]
    assert real["blur"] > real["sharp"]
    assert result["conditional"] is False and "fake" in result["mean"]
    assert (tmp_path / "img_real_loss.npy").is_file()
    assert (tmp_path / "img_real_loss.png").is_file()
    assert (tmp_path / "discriminator_report.json").is_file()


def test_evaluate_runs_a_model_on_lr_first(tiny_dataset, tmp_path, rng):
    from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact

    hr, _, mask = tiny_dataset
    lr = tmp_path / "lr"
    lr.mkdir()
    for stem in ("a", "b"):
        _write(lr / f"{stem}.png", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    model = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4)
    out = tmp_path / "o"
    report = evaluation.evaluate(hr_dir=hr, mask_dir=mask, out_dir=out, model=model, lr_dir=lr,
                                 metrics=["psnr"], plots=False, progress=False)
    assert sorted(p.name for p in (out / "sr").iterdir()) == ["a.png", "b.png"]
    assert np.isfinite(report["images"]["a"]["all"]["psnr"])
