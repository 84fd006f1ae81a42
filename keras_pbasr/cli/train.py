"""`pbasr train CONFIG`: PBaSR two-branch GAN training from a YAML or JSON config.

The config is checked completely (keys, types, ranges, files) before anything is built; a bad
value stops with one line naming the key. Writes into the config's `output_dir`:
backup/ (BackupAndRestore checkpoints: both branches, both discriminators, EMA, every optimizer
state; re-running the same command resumes), steps.csv (every step's logs, including
cfm_lambda / cfm_cosine on fusion steps), tensorboard/ (keras.callbacks.TensorBoard, per step;
needs the tensorboard package),
config.json (the resolved config) and merged_preset/ (the deployable (W_G + W_B) / 2 model).
"""

from __future__ import annotations

import argparse
import copy
import csv
import inspect
import json
import math
from pathlib import Path

from keras_pbasr.utils.atomic_files import write_json_atomic, write_text_atomic

DEFAULTS = {
    "output_dir": None,
    "seed": 0,
    "preset": None,
    "backbone": {"class": "SRVGGNetCompact", "num_feat": 64, "num_conv": 32, "upscale": 4},
    "discriminator": {
        "num_feat": 64,
        "conditional_variant": "v2",
        "general": None,
        "blur": None,
    },
    "data": {
        "general": None,
        "blur_hr": None,
        "blur_mask": None,
        "batch_size": 4,
        "patch_size": 128,
        "degradation": "bsrgan",
        "blur_ratio": 0.5,
        "seed": None,
        "on_error": "raise",
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
    "tensorboard": True,
    "steps": 1000,
    "checkpoint_every": 100,
}

FROM_GENERAL = "from_general"
# Keras' own constructor arguments, accepted beside a backbone's named parameters.
KERAS_MODEL_KWARGS = ("name", "dtype", "trainable")


class TrainConfigError(ValueError):
    """A training config value is missing, unknown, of the wrong type or out of range."""


# ---- value checks (one per kind; each returns the normalised value) ---------------------------


def _number(where: str, value, kind: type):
    """An int or float; YAML strings such as "1e-4" (PyYAML reads 1e-4 without a dot as a
    string) are accepted when they parse completely."""
    if isinstance(value, bool):
        raise TrainConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            message = f"{where}: expected a number, got the string {value!r}"
            raise TrainConfigError(message) from None
        value = parsed
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TrainConfigError(f"{where}: expected a finite number, got {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise TrainConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    return float(value)


def check_int(where: str, value, minimum: int) -> int:
    value = _number(where, value, int)
    if value < minimum:
        raise TrainConfigError(f"{where}: must be >= {minimum}, got {value}")
    return value


def check_float(where: str, value, low: float, high: float, low_open=False, high_open=False):
    value = _number(where, value, float)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise TrainConfigError(f"{where}: must be in {interval}, got {value:g}")
    return value


def check_bool(where: str, value) -> bool:
    if not isinstance(value, bool):
        raise TrainConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def check_choice(where: str, value, choices) -> str:
    if value not in choices:
        raise TrainConfigError(f"{where}: must be one of {list(choices)}, got {value!r}")
    return value


def check_str(where: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise TrainConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def check_dir(where: str, value) -> str:
    value = check_str(where, value)
    if not Path(value).is_dir():
        raise TrainConfigError(f"{where}: folder {value} not found")
    return value


def check_model_source(where: str, value) -> str:
    """A built-in preset name, a preset folder, or a .keras / .weights.h5 file."""
    from keras_pbasr.presets import list_presets

    value = check_str(where, value)
    path = Path(value)
    if value.endswith((".keras", ".weights.h5")):
        if not path.is_file():
            raise TrainConfigError(f"{where}: file {value} not found")
    elif not path.is_dir() and value not in list_presets():
        raise TrainConfigError(
            f"{where}: {value!r} is neither a preset folder, a built-in preset name, nor a "
            ".keras / .weights.h5 file"
        )
    return value


def _merge_section(path: Path, key: str, default: dict, value) -> dict:
    if not isinstance(value, dict):
        raise TrainConfigError(f"{path}: {key} must be a mapping, got {value!r}")
    _refuse_unknown_keys(path, f"keys in {key}:", value, default)
    return {**default, **value}


def _refuse_unknown_keys(path: Path, what: str, given, valid) -> None:
    unknown = set(given) - set(valid)
    if unknown:
        raise TrainConfigError(
            f"{path}: unknown {what} {sorted(unknown)} (valid: {sorted(valid)})"
        )


def _check_backbone(where: str, backbone) -> dict:
    from keras_pbasr.models import BACKBONES, backbone_by_class_name

    if not isinstance(backbone, dict) or "class" not in backbone:
        raise TrainConfigError(f"{where}: a mapping with 'class' and its arguments expected")
    class_name = backbone["class"]
    try:
        cls = backbone_by_class_name(class_name)
    except ValueError:
        known = sorted(a.cls.__name__ for a in BACKBONES.values())
        raise TrainConfigError(
            f"{where}.class: unknown backbone {class_name!r}; use one of {known}"
        ) from None
    parameters = inspect.signature(cls.__init__).parameters
    valid = [n for n, p in parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    unknown = sorted(set(backbone) - {"class", *valid, *KERAS_MODEL_KWARGS})
    if unknown:
        raise TrainConfigError(
            f"{where}: unknown arguments of {class_name}: {unknown} (valid: {valid})"
        )
    return dict(backbone)


def validate_config(config: dict, where: str = "config") -> dict:
    """Checks every value of a config merged over DEFAULTS and returns it normalised (numbers
    given as strings become numbers). Raises TrainConfigError naming the key."""
    from keras_pbasr.data.degradations import DEGRADATIONS
    from keras_pbasr.data.sources import ON_ERROR
    from keras_pbasr.losses import GAN_TYPES, PIXEL_CRITERIA
    from keras_pbasr.models.discriminators.conditional_unet_discriminator import VARIANTS
    from keras_pbasr.trainer.cross_fusion import COSINE_MODES, FUSION_FORMS
    from keras_pbasr.trainer.pbasr_trainer import MERGE_SOURCES

    c = copy.deepcopy(config)
    c["output_dir"] = check_str(f"{where}: output_dir", c["output_dir"])
    c["seed"] = check_int(f"{where}: seed", c["seed"], 0)
    if c["preset"] is not None:
        c["preset"] = check_model_source(f"{where}: preset", c["preset"])
    else:
        c["backbone"] = _check_backbone(f"{where}: backbone", c["backbone"])

    d = c["discriminator"]
    d["num_feat"] = check_int(f"{where}: discriminator.num_feat", d["num_feat"], 2)
    if d["num_feat"] % 2:
        raise TrainConfigError(f"{where}: discriminator.num_feat must be even, got {d['num_feat']}")
    check_choice(f"{where}: discriminator.conditional_variant", d["conditional_variant"], VARIANTS)
    if d["general"] is not None:
        check_model_source(f"{where}: discriminator.general", d["general"])
    if d["blur"] == FROM_GENERAL:
        if d["conditional_variant"] != "v2":
            raise TrainConfigError(
                f"{where}: discriminator.blur: {FROM_GENERAL} needs conditional_variant v2 (only "
                "v2 contains the unconditional D's layers)"
            )
    elif d["blur"] is not None:
        check_model_source(f"{where}: discriminator.blur", d["blur"])

    data = c["data"]
    data["blur_ratio"] = check_float(f"{where}: data.blur_ratio", data["blur_ratio"], 0.0, 1.0)
    if data["blur_ratio"] < 1.0:
        check_dir(f"{where}: data.general", data["general"])
    if data["blur_ratio"] > 0.0:
        check_dir(f"{where}: data.blur_hr", data["blur_hr"])
        check_dir(f"{where}: data.blur_mask", data["blur_mask"])
    data["batch_size"] = check_int(f"{where}: data.batch_size", data["batch_size"], 1)
    data["patch_size"] = check_int(f"{where}: data.patch_size", data["patch_size"], 8)
    if data["patch_size"] % 8:
        raise TrainConfigError(
            f"{where}: data.patch_size must be a multiple of 8 (the U-Net discriminators), got "
            f"{data['patch_size']}"
        )
    check_choice(f"{where}: data.degradation", data["degradation"], sorted(DEGRADATIONS))
    if data["seed"] is not None:
        data["seed"] = check_int(f"{where}: data.seed", data["seed"], 0)
    check_choice(f"{where}: data.on_error", data["on_error"], ON_ERROR)

    loss = c["loss"]
    for key in ("pixel_weight", "perceptual_weight", "gan_weight"):
        loss[key] = check_float(f"{where}: loss.{key}", loss[key], 0.0, math.inf)
    check_choice(f"{where}: loss.pixel_criterion", loss["pixel_criterion"], PIXEL_CRITERIA)
    check_choice(f"{where}: loss.gan_type", loss["gan_type"], GAN_TYPES)
    if loss["blur_gan_type"] is not None:
        check_choice(f"{where}: loss.blur_gan_type", loss["blur_gan_type"], GAN_TYPES)
    for key in ("usm_general", "usm_blur"):
        check_bool(f"{where}: loss.{key}", loss[key])
    loss["d_warmup_steps"] = check_int(f"{where}: loss.d_warmup_steps", loss["d_warmup_steps"], 0)
    if loss["perceptual_weight"]:
        from keras_pbasr.weights.store import is_cached

        if not (is_cached("vgg19") or is_cached("vgg16")):
            raise TrainConfigError(
                f"{where}: loss.perceptual_weight is {loss['perceptual_weight']:g} but no VGG "
                "weights are cached: run `pbasr weights fetch vgg16` (or supply VGG19), or set "
                "loss.perceptual_weight: 0"
            )

    opt = c["optimizer"]
    opt["learning_rate"] = check_float(
        f"{where}: optimizer.learning_rate", opt["learning_rate"], 0.0, math.inf, low_open=True
    )
    for key in ("beta_1", "beta_2"):
        opt[key] = check_float(f"{where}: optimizer.{key}", opt[key], 0.0, 1.0, high_open=True)
    opt["epsilon"] = check_float(
        f"{where}: optimizer.epsilon", opt["epsilon"], 0.0, math.inf, low_open=True
    )
    if c["ema_decay"] is not None:
        c["ema_decay"] = check_float(
            f"{where}: ema_decay", c["ema_decay"], 0.0, 1.0, high_open=True
        )
    if c["cfm"] is not None:
        cfm = c["cfm"]
        cfm["interval"] = check_int(f"{where}: cfm.interval", cfm["interval"], 1)
        cfm["lambda0"] = check_float(f"{where}: cfm.lambda0", cfm["lambda0"], 0.0, 1.0)
        check_choice(f"{where}: cfm.cosine", cfm["cosine"], COSINE_MODES)
        check_choice(f"{where}: cfm.form", cfm["form"], FUSION_FORMS)
    check_choice(f"{where}: merge_source", c["merge_source"], MERGE_SOURCES)
    if c["merge_source"] == "ema" and c["ema_decay"] is None:
        raise TrainConfigError(f"{where}: merge_source is ema but ema_decay is null (no EMA)")
    if check_bool(f"{where}: tensorboard", c["tensorboard"]):
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise TrainConfigError(
                f"{where}: tensorboard is true but the tensorboard package is not installed: "
                "pip install tensorboard==2.21.0 (or keras-pbasr[train]), or set tensorboard: false"
            )
    c["steps"] = check_int(f"{where}: steps", c["steps"], 1)
    c["checkpoint_every"] = check_int(f"{where}: checkpoint_every", c["checkpoint_every"], 1)
    if c["steps"] % c["checkpoint_every"]:
        raise TrainConfigError(
            f"{where}: steps ({c['steps']}) must be a multiple of checkpoint_every "
            f"({c['checkpoint_every']})"
        )
    return c


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """The config file merged over DEFAULTS (one level deep), fully validated; errors name the
    file and the key.

    Example:
    >>> # config = load_config("examples/train_srvgg.yaml", {"steps": 100})
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            loaded = json.loads(text)
        else:
            import yaml

            loaded = yaml.safe_load(text)
    except (ValueError, ImportError) as exc:
        raise TrainConfigError(f"{path}: cannot parse: {exc}") from None
    except Exception as exc:  # yaml.YAMLError (imported lazily)
        raise TrainConfigError(f"{path}: cannot parse: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise TrainConfigError(f"{path}: the config must be a mapping")
    _refuse_unknown_keys(path, "config keys", loaded, DEFAULTS)
    config = {}
    for key, default in DEFAULTS.items():
        value = loaded.get(key, copy.deepcopy(default))
        # Sections merge over their defaults; a given backbone replaces the default one, and
        # `cfm: null` disables the CFM.
        if isinstance(default, dict) and key != "backbone" and not (key == "cfm" and value is None):
            value = _merge_section(path, key, default, value)
        config[key] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            config[key] = value
    return validate_config(config, str(path))


# ---- building (only after validation) ----------------------------------------------------------


def build_generator(config: dict):
    from keras_pbasr.models import backbone_by_class_name

    if config["preset"]:
        from keras_pbasr.presets import from_preset

        return from_preset(config["preset"])
    backbone = dict(config["backbone"])
    return backbone_by_class_name(backbone.pop("class"))(**backbone)


def load_model_source(source: str, template=None):
    """A model from a preset (name or folder) or a .keras file, or `template` with the weights
    of a .weights.h5 file."""
    import keras

    if source.endswith(".weights.h5"):
        template.load_weights(source)
        return template
    if source.endswith(".keras"):
        return keras.saving.load_model(source)
    from keras_pbasr.presets import from_preset

    return from_preset(source)


def build_discriminators(config: dict, channels: int):
    from keras_pbasr.models import ConditionalUNetDiscriminatorSN, UNetDiscriminatorSN
    from keras_pbasr.models.discriminators import conditional_from_unconditional

    disc = config["discriminator"]
    d_general = UNetDiscriminatorSN(channels, num_feat=disc["num_feat"],
                                    name="discriminator_general")
    if disc["general"]:
        d_general = load_model_source(disc["general"], d_general)
    if disc["blur"] == FROM_GENERAL:
        d_blur = conditional_from_unconditional(d_general)
    else:
        d_blur = ConditionalUNetDiscriminatorSN(
            channels, num_feat=disc["num_feat"], variant=disc["conditional_variant"],
            name="discriminator_blur",
        )
        if disc["blur"]:
            d_blur = load_model_source(disc["blur"], d_blur)
    return d_general, d_blur


def build_trainer(config: dict):
    """Generator (preset or backbone), discriminators and the compiled PBaSRTrainer; model
    initialisation is seeded with config["seed"], so two builds of one config are equal."""
    import keras

    from keras_pbasr.trainer import PBaSRTrainer

    keras.utils.set_random_seed(config["seed"])
    generator = build_generator(config)
    d_general, d_blur = build_discriminators(config, generator.output_shape[-1])
    trainer = PBaSRTrainer(
        generator,
        discriminator_general=d_general,
        discriminator_blur=d_blur,
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
    if data["patch_size"] % scale:
        raise TrainConfigError(
            f"data.patch_size {data['patch_size']} is not a multiple of the model's scale {scale}"
        )
    blur = (data["blur_hr"], data["blur_mask"]) if data["blur_ratio"] > 0 else None
    return mixed_dataset(
        general=data["general"] if data["blur_ratio"] < 1 else None,
        blur=blur,
        batch_size=data["batch_size"],
        patch_size=data["patch_size"],
        scale=scale,
        degradation=data["degradation"],
        blur_ratio=data["blur_ratio"],
        seed=config["seed"] if data["seed"] is None else data["seed"],
        on_error=data["on_error"],
    )


def step_csv_logger(path: str | Path):
    """A keras callback writing one CSV row per training step: the global step and every
    logged value (cfm_lambda / cfm_cosine are empty on steps without a fusion; list it after
    CrossFusion). On a resumed run, rows past the restored step are dropped first, so the file
    holds each step once. Rows are appended and flushed one by one (a crash loses at most the
    row being written); the resume trim is an atomic rewrite."""
    import keras

    class StepCSVLogger(keras.callbacks.Callback):
        FIXED = ("step", "cfm_lambda", "cfm_cosine")

        def __init__(self):
            super().__init__()
            self.path = Path(path)
            self._file = self._writer = self._columns = self._step = None

        def on_train_batch_begin(self, batch, logs=None):
            if self._step is not None:
                return
            self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            if self.path.is_file():
                with open(self.path, newline="") as f:
                    rows = list(csv.reader(f))
                if rows:
                    self._columns = rows[0]
                    kept = [r for r in rows[1:] if r and int(r[0]) <= self._step]
                    lines = [",".join(r) for r in [rows[0], *kept]]
                    write_text_atomic(self.path, "\n".join(lines) + "\n")

        def on_train_batch_end(self, batch, logs=None):
            self._step += 1
            values = {k: float(keras.ops.convert_to_numpy(v)) for k, v in (logs or {}).items()}
            if self._writer is None:
                if self._columns is None:
                    others = sorted(k for k in values if k not in self.FIXED)
                    self._columns = [*self.FIXED, *others]
                    write_text_atomic(self.path, ",".join(self._columns) + "\n")
                self._file = open(self.path, "a", newline="")  # closed in on_train_end
                self._writer = csv.writer(self._file)
            values["step"] = self._step
            self._writer.writerow([_csv_cell(values.get(c)) for c in self._columns])
            self._file.flush()

        def on_train_end(self, logs=None):
            if self._file is not None:
                self._file.close()
            self._file = self._writer = None
            self._step = None

    return StepCSVLogger()


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def train(config: dict) -> Path:
    """Run the training a validated config describes; returns the merged preset directory."""
    import keras

    from keras_pbasr.presets.preset_io import save_to_preset
    from keras_pbasr.trainer import CrossFusion, StopOnNonFiniteLoss

    output = Path(config["output_dir"])
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / "config.json", config)
    trainer = build_trainer(config)
    dataset = build_dataset(config, trainer.generator(trainer.branches[0]).scale)
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
    callbacks.append(step_csv_logger(output / "steps.csv"))
    if config["tensorboard"]:
        callbacks.append(keras.callbacks.TensorBoard(str(output / "tensorboard"), update_freq=1))
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
        metadata={
            "trained_with": "pbasr train",
            "steps": config["steps"],
            "cfm": config["cfm"],
            "merge_source": config["merge_source"],
            "start": config["preset"] or config["backbone"],
        },
        overwrite=True,
    )
    return preset


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


def run(args: argparse.Namespace) -> int:
    # Config, weights, preset and image errors are ValueError / OSError subclasses: the CLI
    # prints them as one line (`pbasr: error: ...`, exit 1; --debug for the traceback).
    config = load_config(args.config, {"steps": args.steps, "output_dir": args.output_dir})
    preset = train(config)
    print(f"merged model saved as a preset in {preset}")
    return 0
