"""CLI options and documented error paths that no other test runs, in-process through
`keras_pbasr.cli.main` (a subprocess would pay seconds of imports per call).

Expected errors are checked with `expect_error`: a non-zero exit code whose stderr names the
problem, or, for commands that still let the exception through (before a common handler in
`main`), that exception with the same message.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import zipfile

import keras
import numpy as np
import pytest
import torch
from PIL import Image
from test_trainer_cli import write_config

from keras_pbasr.cli import main as cli_main
from keras_pbasr.models import SRVGGNetCompact
from keras_pbasr.presets import save_to_preset


def expect_error(args: list[str], pattern: str, capsys) -> str:
    """Runs the CLI expecting a failure whose message matches `pattern`; returns it."""
    try:
        code = cli_main(args)
    except (ValueError, OSError) as exc:  # commands without their own error handling
        message = str(exc)
    except SystemExit as exc:  # raise SystemExit("message")
        assert exc.code not in (0, None)
        message = str(exc.code)
    else:
        assert code != 0, f"{args} succeeded"
        message = capsys.readouterr().err
    assert re.search(pattern, message), message
    return message


def tiny_preset(tmp_path, channels: int = 3):
    model = SRVGGNetCompact(num_in_ch=channels, num_out_ch=channels, num_feat=8, num_conv=2)
    model(np.zeros((1, 8, 8, channels), "float32"))
    return save_to_preset(model, tmp_path / f"preset{channels}"), model


def save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# ---- pbasr --version / weights fetch ------------------------------------------------------


def test_version_flag(capsys):
    from keras_pbasr.version import __version__

    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.fixture
def dists_stand_in(tmp_path, monkeypatch):
    """An offline stand-in for the DISTS wheel (its own sha256 pinned), so `weights fetch`
    runs its real locate / sha256 / read / convert / cache path without the network."""
    from keras_pbasr.weights import fetch

    monkeypatch.setenv("PBASR_WEIGHTS_DIR", str(tmp_path / "cache"))
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    source = fetch.FETCHABLE_WEIGHTS["dists"]

    def write_wheel(alpha_value: float) -> fetch.PyPIArtifact:
        blob = tmp_path / "weights.pt"
        torch.save({"alpha": torch.full((1, 1475, 1, 1), alpha_value),
                    "beta": torch.full((1, 1475, 1, 1), 0.5)}, blob)
        wheel = artifacts / source.artifact.filename
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.write(blob, source.member)
        from keras_pbasr.weights.artifacts import file_sha256

        artifact = dataclasses.replace(source.artifact, sha256=file_sha256(wheel))
        monkeypatch.setattr(fetch, "FETCHABLE_WEIGHTS",
                            {"dists": dataclasses.replace(source, artifact=artifact)})
        return artifact

    return artifacts, write_wheel


def test_weights_fetch_name_force_and_all(dists_stand_in, capsys):
    from keras_pbasr.weights import load_weights_arrays

    artifacts, write_wheel = dists_stand_in
    write_wheel(0.25)
    assert cli_main(["weights", "fetch", "dists", "--artifacts", str(artifacts)]) == 0
    assert "dists.npz" in capsys.readouterr().out
    assert np.all(load_weights_arrays("dists")["alpha"] == 0.25)
    write_wheel(0.75)  # a new artifact: cached entries stay unless --force
    assert cli_main(["weights", "fetch", "dists", "--artifacts", str(artifacts)]) == 0
    assert np.all(load_weights_arrays("dists")["alpha"] == 0.25)
    assert cli_main(["weights", "fetch", "dists", "--force", "--artifacts", str(artifacts)]) == 0
    assert np.all(load_weights_arrays("dists")["alpha"] == 0.75)
    write_wheel(0.5)
    assert cli_main(["weights", "fetch", "--all", "--force", "--artifacts", str(artifacts)]) == 0
    assert np.all(load_weights_arrays("dists")["alpha"] == 0.5)


def test_weights_fetch_errors(dists_stand_in, capsys):
    artifacts, write_wheel = dists_stand_in
    write_wheel(0.25)
    (artifacts / "DISTS_pytorch-0.1-py3-none-any.whl").write_bytes(b"not the wheel")
    expect_error(["weights", "fetch", "dists", "--artifacts", str(artifacts)], "sha256", capsys)
    expect_error(["weights", "fetch", "no_such_weights"], "unknown weights", capsys)
    expect_error(["weights", "fetch", "dists", "--all"], "--all", capsys)
    expect_error(["weights", "import", str(artifacts / "missing.pth"), "--name", "vgg16"],
                 "missing.pth", capsys)
    assert cli_main(["weights"]) == 2  # no action: help


# ---- train --steps / --output-dir -----------------------------------------------------------


def test_train_steps_and_output_dir_override_the_config(tmp_path, monkeypatch, capsys):
    from keras_pbasr.cli import train as train_cli

    config = write_config(tmp_path, output_dir="from_config", steps=10, checkpoint_every=5)
    seen = []
    monkeypatch.setattr(train_cli, "train", lambda cfg: seen.append(cfg) or tmp_path / "p")
    out = tmp_path / "from_cli"
    assert cli_main(["train", str(config), "--steps", "15", "--output-dir", str(out)]) == 0
    assert seen[-1]["steps"] == 15 and seen[-1]["output_dir"] == str(out)
    assert cli_main(["train", str(config)]) == 0
    assert seen[-1]["steps"] == 10 and seen[-1]["output_dir"] == "from_config"
    expect_error(["train", str(config), "--steps", "7"], "multiple of checkpoint_every", capsys)
    config = write_config(tmp_path, output_dir=None, steps=10, checkpoint_every=5)
    expect_error(["train", str(config)], "output_dir: expected a non-empty string", capsys)
    assert cli_main(["train", str(config), "--output-dir", str(out)]) == 0
    expect_error(["train", str(tmp_path / "nope.yaml")], "nope.yaml", capsys)


# ---- upscale --precision / --alpha / --ext ------------------------------------------------


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_upscale_precision(tmp_path, rng, precision):
    preset, model = tiny_preset(tmp_path)
    image = (rng.random((12, 10, 3)) * 255).astype(np.uint8)
    source = save_png(tmp_path / "a.png", image)
    assert cli_main(["upscale", str(source), str(tmp_path / "o32.png"), "--preset",
                     str(preset)]) == 0
    assert cli_main(["upscale", str(source), str(tmp_path / "o16.png"), "--preset",
                     str(preset), "--precision", precision]) == 0
    full = np.asarray(Image.open(tmp_path / "o32.png"), np.float64)
    half = np.asarray(Image.open(tmp_path / "o16.png"), np.float64)
    assert half.shape == full.shape == (48, 40, 3)
    # bfloat16 keeps 8 bits of mantissa: a few grey levels, never a different image.
    assert np.abs(half - full).max() <= 8 and np.abs(half - full).mean() < 1.5
    assert keras.config.dtype_policy().name == "float32"  # the policy is restored


def test_upscale_alpha_by_model_or_by_resize(tmp_path, rng):
    preset, _ = tiny_preset(tmp_path)
    rgba = (rng.random((10, 12, 4)) * 255).astype(np.uint8)
    source = save_png(tmp_path / "a.png", rgba)
    outputs = {}
    for mode in ("model", "resize"):
        out = tmp_path / f"{mode}.png"
        assert cli_main(["upscale", str(source), str(out), "--preset", str(preset),
                         "--alpha", mode]) == 0
        outputs[mode] = np.asarray(Image.open(out))
        assert outputs[mode].shape == (40, 48, 4)
    np.testing.assert_array_equal(outputs["model"][..., :3], outputs["resize"][..., :3])
    assert np.abs(outputs["model"][..., 3].astype(int) - outputs["resize"][..., 3]).max() > 0


def test_upscale_ext_and_folder_errors(tmp_path, rng, capsys):
    preset, _ = tiny_preset(tmp_path)
    inputs = tmp_path / "in"
    for name in ("a.png", "b.jpg"):
        save_png(inputs / name, (rng.random((8, 8, 3)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    assert cli_main(["upscale", str(inputs), str(out), "--preset", str(preset),
                     "--ext", "webp"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.webp", "b.webp"]
    with Image.open(out / "b.webp") as img:
        assert img.format == "WEBP" and img.size == (32, 32)
    # Two inputs with one stem would write one output: refused before any work.
    save_png(inputs / "a.jpg", (rng.random((8, 8, 3)) * 255).astype(np.uint8))
    expect_error(["upscale", str(inputs), str(tmp_path / "o2"), "--preset", str(preset),
                  "--ext", "png"], "share a stem", capsys)
    expect_error(["upscale", str(tmp_path / "none"), str(out), "--preset", str(preset)],
                 "neither an image file nor a folder", capsys)
    (tmp_path / "empty").mkdir()
    expect_error(["upscale", str(tmp_path / "empty"), str(out), "--preset", str(preset)],
                 "no images", capsys)
    (tmp_path / "file.png").write_bytes(b"x")
    expect_error(["upscale", str(inputs), str(tmp_path / "file.png"), "--preset",
                  str(preset)], "is a file", capsys)


# ---- blurmap --detector / --threshold -------------------------------------------------------


def _half_sharp_image(rng):
    """Left half: fine texture (sharp); right half: flat (blurred)."""
    image = np.full((64, 64, 3), 120, np.uint8)
    image[:, :32] = (rng.random((64, 32, 3)) * 255).astype(np.uint8)
    return image


def test_blurmap_threshold_replaces_otsu(tmp_path, rng):
    source = save_png(tmp_path / "in" / "a.png", _half_sharp_image(rng))
    fractions = {}
    for label, extra in (("otsu", []), ("low", ["--threshold", "-1"]),
                         ("high", ["--threshold", "2"])):
        out = tmp_path / label
        assert cli_main(["blurmap", str(source), str(out), "--stats", *extra]) == 0
        with open(out / "stats.csv") as f:
            fractions[label] = float(next(csv.DictReader(f))["blurred_fraction"])
    assert 0.2 < fractions["otsu"] < 0.8
    assert fractions["low"] == 0.0 and fractions["high"] == 1.0  # sharpness lies in [0, 1]


def test_blurmap_detector_and_errors(tmp_path, rng, capsys):
    # A learned "detector": the red channel is the sharpness (1 on the left half, 0 right).
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(1, 1, use_bias=False)
    detector = keras.Model(inputs, conv(inputs))
    conv.kernel.assign(np.array([1.0, 0.0, 0.0], "float32").reshape(1, 1, 3, 1))
    detector.save(tmp_path / "detector.keras")
    image = np.zeros((24, 30, 3), np.uint8)
    image[:, :15, 0] = 255
    source = save_png(tmp_path / "in" / "a.png", image)
    out = tmp_path / "masks"
    assert cli_main(["blurmap", str(source), str(out), "--detector",
                     str(tmp_path / "detector.keras")]) == 0
    mask = np.asarray(Image.open(out / "a.png"))
    assert (mask[:, :15] == 255).all() and (mask[:, 15:] == 0).all()
    expect_error(["blurmap", str(source), str(out)], "exists; pass --overwrite", capsys)
    expect_error(["blurmap", str(source), str(tmp_path / "in")],
                 "over its input|same file as the input", capsys)
    expect_error(["blurmap", str(tmp_path / "none"), str(out)], "neither an image", capsys)
    save_png(tmp_path / "in" / "sub" / "a.png", image)
    expect_error(["blurmap", str(tmp_path / "in"), str(tmp_path / "m2"), "--recursive"],
                 "share the stem", capsys)
    expect_error(["blurmap", str(source), str(tmp_path / "m3"), "--detector",
                  str(tmp_path / "missing.keras")], "missing.keras", capsys)


# ---- evaluate --model / --size-policy / --crop-border / --color-space / --no-plots ---------


@pytest.fixture
def eval_folders(tmp_path, rng):
    hr = (rng.random((2, 32, 32, 3)) * 255).astype(np.uint8)
    folders = {k: tmp_path / k for k in ("hr", "lr", "sr", "mask")}
    for i in range(2):
        save_png(folders["hr"] / f"s{i}.png", hr[i])
        lr = hr[i].reshape(8, 4, 8, 4, 3).mean(axis=(1, 3)).astype(np.uint8)
        save_png(folders["lr"] / f"s{i}.png", lr)
        noisy = np.clip(hr[i] + rng.normal(0, 8, hr[i].shape), 0, 255).astype(np.uint8)
        save_png(folders["sr"] / f"s{i}.png", noisy)
        mask = np.full((32, 32), 255, np.uint8)
        mask[:, :16] = 0
        save_png(folders["mask"] / f"s{i}.png", mask)
    return folders


def _psnr_of(out):
    report = json.loads((out / "results.json").read_text())
    return report["aggregates"]["all"]["all"]["psnr"]["mean"]


def test_evaluate_options(tmp_path, eval_folders, capsys):
    f = eval_folders
    base = ["evaluate", "--sr", str(f["sr"]), "--hr", str(f["hr"]), "--metrics", "psnr",
            "--no-plots", "--quiet"]
    assert cli_main([*base, "--out", str(tmp_path / "e0")]) == 0
    assert not list((tmp_path / "e0").rglob("*.png"))  # --no-plots
    assert cli_main([*base, "--out", str(tmp_path / "e1"), "--crop-border", "4"]) == 0
    assert cli_main([*base, "--out", str(tmp_path / "e2"), "--color-space", "bt601"]) == 0
    values = [_psnr_of(tmp_path / e) for e in ("e0", "e1", "e2")]
    assert len(set(values)) == 3  # each option changes what is measured
    # An SR image of another size: refused by default, compared on the common area with crop.
    save_png(f["sr"] / "s1.png", np.zeros((30, 32, 3), np.uint8))
    expect_error([*base, "--out", str(tmp_path / "e3")], "s1", capsys)
    assert cli_main([*base, "--out", str(tmp_path / "e4"), "--size-policy", "crop"]) == 0


def test_evaluate_model_on_lr_and_errors(tmp_path, eval_folders, capsys):
    f = eval_folders
    preset, _ = tiny_preset(tmp_path)
    out = tmp_path / "with_model"
    assert cli_main(["evaluate", "--model", str(preset), "--lr", str(f["lr"]), "--hr",
                     str(f["hr"]), "--mask", str(f["mask"]), "--metrics", "psnr,ssim",
                     "--out", str(out), "--no-plots", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "sr").iterdir()) == ["s0.png", "s1.png"]
    report = json.loads((out / "results.json").read_text())
    assert set(report["aggregates"]["all"]) == {"all", "blur", "sharp"}
    expect_error(["evaluate", "--model", str(preset), "--hr", str(f["hr"]), "--out",
                  str(tmp_path / "x")], "--lr", capsys)
    expect_error(["evaluate", "--hr", str(f["hr"]), "--out", str(tmp_path / "x")],
                 "--sr", capsys)
    expect_error(["evaluate", "--sr", str(f["sr"]), "--hr", str(f["hr"]), "--regions", "blur",
                  "--out", str(tmp_path / "x")], "mask", capsys)


# ---- convert --non-strict / --save-branches, compare-backends --size / --device ------------


def test_convert_non_strict_and_save_branches(tmp_path, capsys):
    from torch_reference.parallel_net import TorchParallelNetNCB
    from torch_reference.srvgg import TorchSRVGGNetCompact

    torch.manual_seed(0)
    net = TorchSRVGGNetCompact(num_feat=8, num_conv=2)
    state = {**net.state_dict(), "extra.weight": torch.zeros(2)}
    torch.save({"params": state}, tmp_path / "extra.pth")
    expect_error(["convert", str(tmp_path / "extra.pth"), str(tmp_path / "strict"), "--arch",
                  "srvgg"], "extra.weight", capsys)
    assert cli_main(["convert", str(tmp_path / "extra.pth"), str(tmp_path / "loose"),
                     "--arch", "srvgg", "--non-strict"]) == 0
    assert "skipped 1 tensors: extra.weight" in capsys.readouterr().out

    parallel = TorchParallelNetNCB(lambda: TorchSRVGGNetCompact(num_feat=8, num_conv=2))
    torch.save({"params": parallel.state_dict()}, tmp_path / "pbasr.pth")
    out = tmp_path / "pbasr"
    assert cli_main(["convert", str(tmp_path / "pbasr.pth"), str(out), "--save-branches"]) == 0
    assert (out / "general_branch" / "config.json").is_file()
    assert (out / "blur_branch" / "config.json").is_file()


def test_compare_backends_rejects_a_bad_size(tmp_path, capsys):
    expect_error(["compare-backends", "--arch", "srvgg", "--size", "64by64", "--out",
                  str(tmp_path / "c")], "64x64", capsys)


@pytest.mark.slow  # one backend subprocess (~10 s of imports)
def test_compare_backends_device_gpu_without_a_gpu(tmp_path):
    from keras_pbasr.utils.environment import gpu_visible

    if gpu_visible():
        pytest.skip("a GPU is visible: the no-GPU report cannot be produced")
    out = tmp_path / "c"
    assert cli_main(["compare-backends", "--arch", "srvgg", "--config",
                     '{"num_feat": 4, "num_conv": 1}', "--backends", "jax", "--size", "8x8",
                     "--repeats", "1", "--device", "gpu", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["backends"]["jax"]["status"] == "no GPU visible to this backend"
