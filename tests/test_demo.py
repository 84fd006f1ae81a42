"""The end-to-end demo (examples/demo.py) and the preset it trained, shipped in the package."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_pbasr import presets, upscale

REPO = Path(__file__).resolve().parent.parent
SHIPPED_PRESET = "pbasr_srvgg_demo_x4"


def load_demo():
    spec = importlib.util.spec_from_file_location("pbasr_demo", REPO / "examples" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(255.0**2 / mse))


def test_shipped_demo_preset_loads_by_name_and_upscales():
    from PIL import Image

    model = presets.from_preset(SHIPPED_PRESET)
    assert type(model).__name__ == "SRVGGNetCompact"
    demo = load_demo()
    hr = demo.read_rgb(demo.skimage_data_dir() / "chelsea.png")[100:184, 200:284]
    lr = np.asarray(Image.fromarray(hr).resize((21, 21), Image.BICUBIC))  # odd size
    sr = upscale(model, lr)
    assert sr.shape == (84, 84, 3) and sr.dtype == np.uint8
    # The trained weights are applied (a fresh model of the same config is close to nearest
    # upsampling), and the result stays a faithful enlargement. The preset is trained for
    # BSRGAN-degraded input, so on this clean bicubic LR it is not expected to beat nearest.
    untrained = type(model).from_config(model.get_config())
    assert np.mean(np.abs(sr.astype(float) - upscale(untrained, lr).astype(float))) > 1.0
    assert psnr_uint8(sr, hr) > 22.0
    preset_dir = presets.PACKAGED_PRESETS_DIR / SHIPPED_PRESET
    assert sum(p.stat().st_size for p in preset_dir.iterdir()) < 2_000_000
    metadata = json.loads((preset_dir / "metadata.json").read_text())
    assert "demo quality" in metadata["description"]


@pytest.mark.backend_agnostic
def test_demo_options_and_output_folder(tmp_path):
    demo = load_demo()
    quick = demo.parse_args(["--quick"])
    assert quick.gan_steps <= 10 and quick.eval_size % 16 == 0
    assert quick.start == "pbasr_srvgg_demo_x4"  # the offline toy; the default is x4plus
    assert demo.parse_args([]).start == "realesrgan_x4plus"
    with pytest.raises(SystemExit):
        demo.parse_args(["--batch-size", "5"])
    out = tmp_path / "out"
    demo.prepare_output(out, overwrite=False)
    (out / "old.txt").write_text("x")
    with pytest.raises(SystemExit, match="not empty"):
        demo.prepare_output(out, overwrite=False)
    demo.prepare_output(out, overwrite=True)
    assert not (out / "old.txt").exists()


@pytest.mark.backend_agnostic
def test_demo_blur_kept_rendering_and_eval_set(tmp_path):
    pytest.importorskip("tensorflow")
    demo = load_demo()
    photo = demo.read_rgb(demo.skimage_data_dir() / "chelsea.png")[:64, :64]
    hr, mask = demo.render_blur_kept(photo, (0, 1))
    assert hr.shape == photo.shape and mask.shape == photo.shape[:2]
    blurred = mask == 0
    assert set(np.unique(mask)) == {0, 255} and 0.1 < blurred.mean() < 0.9
    # Blur lives in the blurred region; far from its boundary the sharp pixels are untouched.
    difference = np.abs(hr.astype(int) - photo.astype(int)).mean(axis=-1)
    assert difference[blurred].mean() > 2.0 * difference[~blurred].mean()
    lr = demo.bsrgan_lr(hr, (1, 2))
    assert lr.shape == (16, 16, 3) and lr.dtype == np.uint8
    # Round trip through the eval folder layout.
    for kind, image in (("HR", hr), ("mask", mask), ("LR", lr)):
        demo.write_png(tmp_path / "eval" / kind / "cat_0.png", image)
    eval_set = demo.load_eval_set(tmp_path)
    assert list(eval_set["names"]) == ["cat_0"]
    np.testing.assert_allclose(eval_set["hr"][0], hr / 255.0, atol=1e-6)
    np.testing.assert_array_equal(eval_set["mask"][0], mask)


def test_region_scores_tell_regions_apart(rng):
    demo = load_demo()
    hr = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    mask = np.full((2, 32, 32), 255, np.uint8)
    mask[:, :, :16] = 0
    sr = hr.copy()
    sr[:, :, :16] = np.clip(sr[:, :, :16] + 0.1, 0.0, 1.0)  # error only in the blurred half
    scores = demo.region_scores({"pbasr": sr}, {"hr": hr, "mask": mask}, ["psnr"])
    assert scores["pbasr"]["sharp"]["psnr"]["mean"] > 60.0
    assert scores["pbasr"]["blur"]["psnr"]["mean"] < 25.0


@pytest.mark.backend_agnostic
def test_texture_window_finds_painted_texture_inside_the_blurred_region(rng):
    demo = load_demo()
    hr = np.full((96, 96, 3), 0.5, np.float32)
    mask = np.full((96, 96), 255, np.uint8)
    mask[:, :64] = 0                                  # left two thirds intentionally blurred
    sr = hr.copy()
    sr[40:56, 8:24] += rng.uniform(-0.2, 0.2, (16, 16, 3)).astype(np.float32)  # painted
    sr[0:16, 72:88] += rng.uniform(-0.4, 0.4, (16, 16, 3)).astype(np.float32)  # sharp: ignored
    top, left = demo.texture_window(sr, hr, mask, size=32)
    assert top <= 40 and top + 32 >= 56 and left <= 8 and left + 32 >= 24
    assert demo.texture_window(sr, hr, np.full_like(mask, 255), size=32) is None


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py"), "--quick", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"demo output: {out.resolve()}" in result.stdout
    for name in ("report.md", "metrics.json", "log.txt", "history.json",
                 "plots/loss_curves.png", "plots/branch_cosine.png",
                 "export/saved_model/saved_model.pb",
                 "preset/config.json", "preset/model.weights.h5"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "PBaSR fine-tuning (CDM + CFM, merged)" in report and "unified fine-tuning" in report
    metrics = json.loads((out / "metrics.json").read_text())
    first_set = next(iter(metrics["scores"].values()))
    assert set(first_set) == {"x4plus", "unified", "pbasr"}
    assert np.isfinite(first_set["pbasr"]["blur"]["psnr"]["mean"])
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history["cfm"]] == [2, 4]  # every fusion, with cos and lambda
    # A second run into the same folder is refused.
    again = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py"), "--quick", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode != 0 and "not empty" in again.stderr
