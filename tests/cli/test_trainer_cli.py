"""`pbasr train`: config validation (fast, before anything is built), seeded building, D_B from
D_G, and a short end-to-end run on real images (slow)."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from keras_pbasr.cli import main
from keras_pbasr.cli.train import TrainConfigError, build_trainer, load_config


def write_config(tmp_path, **overrides):
    """A small valid config (data folders that exist) with overrides; returns its path."""
    data = tmp_path / "data"
    for sub in ("general", "blur_hr", "blur_mask"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    config = {
        "output_dir": str(tmp_path / "run"),
        "backbone": {"class": "SRVGGNetCompact", "num_feat": 8, "num_conv": 2, "upscale": 2},
        "discriminator": {"num_feat": 4},
        "data": {"general": str(data / "general"), "blur_hr": str(data / "blur_hr"),
                 "blur_mask": str(data / "blur_mask"), "batch_size": 4, "patch_size": 32},
        "loss": {"perceptual_weight": 0.0},
        "steps": 4,
        "checkpoint_every": 2,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(config))  # JSON is valid YAML
    return path


@pytest.mark.backend_agnostic
def test_config_is_merged_over_defaults_and_normalised(tmp_path):
    config = load_config(write_config(tmp_path, loss={"gan_weight": 0.2}))
    assert config["loss"]["gan_weight"] == 0.2 and config["loss"]["pixel_weight"] == 1.0
    assert config["cfm"] == {"interval": 20, "lambda0": 0.99, "cosine": "global",
                             "form": "printed"}
    assert config["loss"]["usm_general"] and not config["loss"]["usm_blur"]
    assert config["merge_source"] == "raw" and config["data"]["on_error"] == "raise"
    # YAML reads 1e-4 (no dot) as a string: numeric strings are accepted and converted.
    path = tmp_path / "strings.yaml"
    text = write_config(tmp_path).read_text()
    loaded = json.loads(text)
    path.write_text(json.dumps(loaded)[:-1] + ', "optimizer": {"learning_rate": "1e-4"}}')
    assert load_config(path)["optimizer"]["learning_rate"] == 1e-4
    yaml_path = tmp_path / "plain.yaml"
    yaml_path.write_text(f"output_dir: {tmp_path / 'o'}\nsteps: 2\ncheckpoint_every: 1\n"
                         "optimizer: {learning_rate: 1e-4}\ndata: {blur_ratio: 0, general: "
                         f"{tmp_path / 'data' / 'general'}}}\nloss: {{perceptual_weight: 0}}\n")
    config = load_config(yaml_path)
    assert config["optimizer"]["learning_rate"] == 1e-4
    assert load_config(write_config(tmp_path, cfm=None))["cfm"] is None


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("overrides, message", [
    ({"optimizer": {"learning_rate": -1e-4}}, r"optimizer.learning_rate: must be in \(0, inf\]"),
    ({"optimizer": {"learning_rate": "fast"}}, r"optimizer.learning_rate: expected a number, "
                                               r"got the string 'fast'"),
    ({"checkpoint_every": 0}, "checkpoint_every: must be >= 1, got 0"),
    ({"steps": 7, "checkpoint_every": 5}, r"steps \(7\) must be a multiple of checkpoint_every"),
    ({"steps": 2.5}, "steps: expected an integer, got 2.5"),
    ({"data": {"blur_ratio": 1.5}}, r"data.blur_ratio: must be in \[0, 1\], got 1.5"),
    ({"data": {"on_error": "ignore"}}, r"data.on_error: must be one of \['raise', 'skip'\]"),
    ({"data": {"general": "/nonexistent/folder"}}, "data.general: folder /nonexistent/folder"),
    ({"data": {"patch_size": 36}}, "data.patch_size must be a multiple of 8"),
    ({"cfm": {"interval": 0}}, "cfm.interval: must be >= 1"),
    ({"cfm": {"lambda0": 1.2}}, r"cfm.lambda0: must be in \[0, 1\]"),
    ({"cfm": {"halve": True}}, r"unknown keys in cfm: \['halve'\]"),
    ({"cfm": {"form": "halved"}}, r"cfm.form: must be one of \['printed', 'unhalved', "),
    ({"loss": {"usm_targets": True}}, r"unknown keys in loss: \['usm_targets'\]"),
    ({"loss": {"usm_blur": "no"}}, "loss.usm_blur: expected true or false, got 'no'"),
    ({"ema_decay": 1.0}, r"ema_decay: must be in \[0, 1\)"),
    ({"ema_decay": None, "merge_source": "ema"}, "merge_source is ema but ema_decay is null"),
    ({"merge_source": "average"}, r"merge_source: must be one of \['raw', 'ema'\]"),
    ({"backbone": {"class": "SRVGGNetCompact", "num_convs": 4}},
     r"unknown arguments of SRVGGNetCompact: \['num_convs'\]"),
    ({"backbone": {"class": "Bicubic"}}, "backbone.class: unknown backbone 'Bicubic'"),
    ({"preset": "no_such_preset"}, "preset: 'no_such_preset' is neither a preset folder"),
    ({"discriminator": {"general": "missing.weights.h5"}},
     "discriminator.general: file missing.weights.h5 not found"),
    ({"discriminator": {"blur": "from_general", "conditional_variant": "v1"}},
     "from_general needs conditional_variant v2"),
    ({"seed": -1}, "seed: must be >= 0"),
    ({"lr": 1}, r"unknown config keys \['lr'\]"),
])
def test_bad_config_values_are_refused_naming_the_key(tmp_path, overrides, message):
    path = write_config(tmp_path, **overrides)
    with pytest.raises(TrainConfigError, match=message):
        load_config(path)


@pytest.mark.backend_agnostic
def test_missing_vgg_weights_and_bad_values_are_one_line_cli_errors(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("PBASR_WEIGHTS_DIR", str(tmp_path / "empty_weights"))
    path = write_config(tmp_path, loss={"perceptual_weight": 1.0})
    assert main(["train", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "loss.perceptual_weight is 1 but no VGG weights are cached" in err
    assert err.startswith("pbasr: error: ") and "pbasr weights fetch vgg16" in err
    assert main(["train", str(write_config(tmp_path, checkpoint_every=0))]) == 1
    assert "checkpoint_every: must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing was built or written
    assert main(["train", str(path), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_seed_makes_initialisation_reproducible_and_blur_d_can_start_from_general(tmp_path):
    config = load_config(write_config(tmp_path, seed=3,
                                      discriminator={"blur": "from_general"}))
    first, second = build_trainer(config), build_trainer(config)
    for name in ("generator_general", "discriminator_general", "discriminator_blur"):
        for a, b in zip(_weights(getattr(first, name)), _weights(getattr(second, name))):
            np.testing.assert_array_equal(a, b)
    other = build_trainer(load_config(write_config(tmp_path, seed=4)))
    assert not np.array_equal(_weights(other.generator_general)[0],
                              _weights(first.generator_general)[0])
    # D_B from D_G: same output as D_G on any image at the start (the fusion passes the
    # image features through and ignores the blur map).
    image = np.random.default_rng(0).random((1, 32, 32, 3), dtype="float32")
    mask = np.zeros((1, 32, 32, 1), "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(first.discriminator_blur([image, mask])),
        keras.ops.convert_to_numpy(first.discriminator_general(image)), atol=1e-5)


@pytest.mark.slow
def test_train_command_writes_checkpoint_step_logs_and_merged_preset(shared_data, tmp_path):
    from keras_pbasr.presets.preset_io import load_preset_dir

    data = {"general": str(shared_data / "bsd100" / "HR"),
            "blur_hr": str(shared_data / "cuhk_blur" / "image"),
            "blur_mask": str(shared_data / "cuhk_blur" / "mask"),
            "batch_size": 4, "patch_size": 32}
    path = write_config(tmp_path, data=data, cfm={"interval": 2},
                        discriminator={"blur": "from_general"})
    assert main(["train", str(path)]) == 0
    run = tmp_path / "run"
    assert (run / "backup" / "latest.weights.h5").is_file()
    with open(run / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert {"branch_cosine", "general_pixel", "blur_gan"} <= set(rows[0])
    assert rows[0]["cfm_lambda"] == "" and rows[1]["cfm_lambda"] != ""  # fusions at 2 and 4
    cos, lam = float(rows[3]["cfm_cosine"]), float(rows[3]["cfm_lambda"])
    assert lam == pytest.approx(0.99 + 0.01 * cos / 2, abs=1e-6)
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    merged = load_preset_dir(run / "merged_preset")
    assert merged.__class__.__name__ == "SRVGGNetCompact"
    # Re-running resumes from the finished checkpoint: nothing left to train, no duplicate rows.
    assert main(["train", str(path)]) == 0
    with open(run / "steps.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
