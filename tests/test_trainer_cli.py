"""`pbasr train`: config checks (fast) and a short end-to-end run on real images (slow)."""

from __future__ import annotations

import json

import pytest

from keras_pbasr.cli import main
from keras_pbasr.cli.train import load_config


@pytest.mark.backend_agnostic
def test_config_is_merged_over_defaults_and_checked(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"output_dir": "out", "loss": {"gan_weight": 0.2}, "steps": 10,
                                "checkpoint_every": 5}))
    config = load_config(path)
    assert config["loss"]["gan_weight"] == 0.2 and config["loss"]["pixel_weight"] == 1.0
    assert config["cfm"] == {"interval": 20, "lambda0": 0.99, "cosine": "global",
                             "form": "printed"}
    path.write_text(json.dumps({"output_dir": "out", "loss": {"gan_wieght": 0.2}}))
    with pytest.raises(ValueError, match=r"c.json: unknown keys in loss: \['gan_wieght'\]"):
        load_config(path)
    path.write_text(json.dumps({"output_dir": "out", "steps": 7, "checkpoint_every": 5}))
    with pytest.raises(ValueError, match="multiple of checkpoint_every"):
        load_config(path)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.slow
def test_train_command_writes_checkpoint_logs_and_merged_preset(shared_data, tmp_path):
    from keras_pbasr.presets.preset_io import load_preset_dir

    config = {
        "output_dir": str(tmp_path / "run"),
        "backbone": {"class": "SRVGGNetCompact", "num_feat": 8, "num_conv": 2, "upscale": 2},
        "discriminator": {"num_feat": 4},
        "data": {"general": str(shared_data / "bsd100" / "HR"),
                 "blur_hr": str(shared_data / "cuhk_blur" / "image"),
                 "blur_mask": str(shared_data / "cuhk_blur" / "mask"),
                 "batch_size": 4, "patch_size": 32},
        "loss": {"perceptual_weight": 0.0},
        "cfm": {"interval": 2},
        "steps": 4,
        "checkpoint_every": 2,
    }
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(config))  # JSON is valid YAML
    assert main(["train", str(path)]) == 0
    run = tmp_path / "run"
    assert (run / "backup" / "latest.weights.h5").is_file()
    rows = (run / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and "branch_cosine" in rows[0]
    merged = load_preset_dir(run / "merged_preset")
    assert merged.__class__.__name__ == "SRVGGNetCompact"
    # Re-running resumes from the finished checkpoint: nothing left to train.
    assert main(["train", str(path)]) == 0
