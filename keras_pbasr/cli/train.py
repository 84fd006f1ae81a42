"""`pbasr train CONFIG`: PBaSR two-branch GAN training from a YAML or JSON config.

Writes into the config's `output_dir`: backup/ (BackupAndRestore checkpoints: both branches, both
discriminators, EMA, every optimizer state; re-running the same command resumes), log.csv (one row
per checkpoint interval), tensorboard/ (per-step scalars, when the tensorboard package is
installed), config.json (the resolved config) and merged_preset/ (the deployable
(W_G + W_B) / 2 model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from keras_pbasr.utils.atomic_files import write_json_atomic

DEFAULTS = {
    "output_dir": None,
    "backbone": {"class": "SRVGGNetCompact", "num_feat": 64, "num_conv": 32, "upscale": 4},
    "preset": None,
    "discriminator": {"num_feat": 64, "conditional_variant": "v2"},
    "data": {
        "general": None,
        "blur_hr": None,
        "blur_mask": None,
        "batch_size": 4,
        "patch_size": 128,
        "degradation": "bsrgan",
        "blur_ratio": 0.5,
        "seed": 0,
    },
    "loss": {
        "pixel_weight": 1.0,
        "perceptual_weight": 1.0,
        "gan_weight": 0.1,
        "pixel_criterion": "l1",
        "gan_type": "vanilla",
        "blur_gan_type": "hinge",
        "usm_general": True,
        "usm_blur": False,
        "d_warmup_steps": 0,
    },
    "optimizer": {"learning_rate": 1e-4, "beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-8},
    "ema_decay": 0.999,
    "cfm": {"interval": 20, "lambda0": 0.99, "cosine": "global", "form": "printed"},
    "merge_source": "raw",
    "steps": 1000,
    "checkpoint_every": 100,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a PBaSR model (two branches + CFM) from a YAML/JSON config",
        description="Train general and blur generator branches with their discriminators and "
        "the Cross Fusion Module, then save the merged model as a preset. Re-running the "
        "same command resumes from the last checkpoint in OUTPUT_DIR/backup.",
    )
    p.add_argument("config", help="YAML or JSON config (see examples/train_srvgg.yaml)")
    p.add_argument("--steps", type=int, help="override the config's steps")
    p.add_argument("--output-dir", help="override the config's output_dir")
    p.set_defaults(func=run)


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """The config file merged over DEFAULTS (one level deep), with checks naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} not found")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        loaded = json.loads(text)
    else:
        import yaml

        loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: the config must be a mapping")
    unknown = set(loaded) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
    config = {}
    for key, default in DEFAULTS.items():
        value = loaded.get(key, default)
        # Sections merge over their defaults; a given backbone replaces the default one.
        if isinstance(default, dict) and isinstance(value, dict) and key != "backbone":
            unknown = set(value) - set(default)
            if unknown:
                raise ValueError(f"{path}: unknown keys in {key}: {sorted(unknown)}")
            value = {**default, **value}
        config[key] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            config[key] = value
    if not config["output_dir"]:
        raise ValueError(f"{path}: output_dir is required")
    if config["steps"] % config["checkpoint_every"]:
        raise ValueError(f"{path}: steps must be a multiple of checkpoint_every")
    return config


def build_generator(config: dict):
    import keras_pbasr.models as models

    if config["preset"]:
        from keras_pbasr.presets.preset_io import load_preset_dir

        return load_preset_dir(config["preset"])
    backbone = dict(config["backbone"])
    class_name = backbone.pop("class")
    if not hasattr(models, class_name):
        raise ValueError(f"unknown backbone class {class_name!r}; use one of {models.__all__}")
    return getattr(models, class_name)(**backbone)


def build_trainer(config: dict):
    import keras

    from keras_pbasr.models import ConditionalUNetDiscriminatorSN, UNetDiscriminatorSN
    from keras_pbasr.trainer import PBaSRTrainer

    generator = build_generator(config)
    disc = config["discriminator"]
    channels = generator.output_shape[-1]
    trainer = PBaSRTrainer(
        generator,
        discriminator_general=UNetDiscriminatorSN(channels, num_feat=disc["num_feat"]),
        discriminator_blur=ConditionalUNetDiscriminatorSN(
            channels, num_feat=disc["num_feat"], variant=disc["conditional_variant"]
        ),
        blur_ratio=config["data"]["blur_ratio"],
        ema_decay=config["ema_decay"],
    )
    opt = config["optimizer"]
    adam = keras.optimizers.Adam(
        opt["learning_rate"], beta_1=opt["beta_1"], beta_2=opt["beta_2"], epsilon=opt["epsilon"]
    )
    trainer.compile(g_optimizer=adam, d_optimizer=adam, **config["loss"])
    return trainer


def build_dataset(config: dict, scale: int):
    from keras_pbasr.data import mixed_dataset

    data = config["data"]
    blur = (data["blur_hr"], data["blur_mask"]) if data["blur_hr"] else None
    return mixed_dataset(
        general=data["general"],
        blur=blur,
        batch_size=data["batch_size"],
        patch_size=data["patch_size"],
        scale=scale,
        degradation=data["degradation"],
        blur_ratio=data["blur_ratio"],
        seed=data["seed"],
    )


def train(config: dict) -> Path:
    """Run the training a config describes; returns the merged preset directory."""
    import importlib.util

    import keras

    from keras_pbasr.presets.preset_io import save_to_preset
    from keras_pbasr.trainer import CrossFusion, StopOnNonFiniteLoss

    output = Path(config["output_dir"])
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / "config.json", config)
    trainer = build_trainer(config)
    scale = getattr(trainer.generator(trainer.branches[0]), "scale", None)
    if scale is None:
        raise ValueError("the backbone has no `scale` attribute; cannot size the LR patches")
    dataset = build_dataset(config, scale)
    backup = output / "backup"
    callbacks = [
        StopOnNonFiniteLoss(str(backup)),
        # Kept after the run: re-running the command then resumes (or finds nothing left to do).
        # double_checkpoint: a checkpoint cut short by a crash falls back to the previous one.
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False,
                                         double_checkpoint=True),
    ]
    if config["cfm"] and len(trainer.branches) == 2:
        callbacks.append(CrossFusion(**config["cfm"]))
    callbacks.append(keras.callbacks.CSVLogger(str(output / "log.csv"), append=True))
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(
            keras.callbacks.TensorBoard(str(output / "tensorboard"), update_freq="batch")
        )
    else:
        print("tensorboard is not installed: no TensorBoard logs (log.csv is written)")
    interval = config["checkpoint_every"]
    trainer.fit(
        dataset,
        steps_per_epoch=interval,
        epochs=config["steps"] // interval,
        callbacks=callbacks,
        verbose=2,
    )
    merged = trainer.merged_generator(source=config["merge_source"])
    preset = output / "merged_preset"
    save_to_preset(
        merged,
        preset,
        metadata={"trained_with": "pbasr train", "steps": config["steps"], "cfm": config["cfm"]},
        overwrite=True,
    )
    return preset


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, {"steps": args.steps, "output_dir": args.output_dir})
    preset = train(config)
    print(f"merged model saved as a preset in {preset}")
    return 0
