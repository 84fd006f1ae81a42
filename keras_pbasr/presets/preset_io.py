"""Preset directories in the keras-hub layout.

A preset directory holds:
- config.json: `keras.saving.serialize_keras_object(model)` (class_name, config, registered_name);
- model.weights.h5: `model.save_weights(...)`;
- metadata.json: keras_pbasr and Keras versions, the backend that wrote it, the parameter count,
  the sha256 of model.weights.h5, and caller metadata (e.g. the source checkpoint and its sha256).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from datetime import datetime, timezone
from pathlib import Path

import keras

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


class PresetError(ValueError):
    """A preset directory is missing, incomplete or corrupt."""


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def save_to_preset(
    model: keras.Model,
    preset_dir: str | Path,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes `model` as a preset directory and returns its path.

    Refuses to write into a non-empty directory unless `overwrite=True`.
    """
    preset_dir = Path(preset_dir)
    if preset_dir.exists() and any(preset_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{preset_dir} exists and is not empty; pass overwrite=True to replace its preset"
        )
    preset_dir.mkdir(parents=True, exist_ok=True)
    if not model.built:
        raise PresetError("build the model (call it once) before saving it as a preset")

    config = keras.saving.serialize_keras_object(model)
    (preset_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    weights_path = preset_dir / WEIGHTS_FILE
    model.save_weights(weights_path)

    from keras_pbasr.version import __version__

    meta = {
        "keras_pbasr_version": __version__,
        "keras_version": keras.__version__,
        "saved_with_backend": keras.backend.backend(),
        "class_name": config.get("class_name"),
        "registered_name": config.get("registered_name"),
        "parameter_count": int(model.count_params()),
        "weights_sha256": file_sha256(weights_path),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(metadata or {}),
    }
    (preset_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    return preset_dir


def read_metadata(preset_dir: str | Path) -> dict:
    path = Path(preset_dir) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path} is not valid JSON: {exc}") from exc


def import_class_module(config: dict, source: str | Path) -> None:
    """Imports the module that defines the preset's class, so it is registered with Keras.

    This is the hook that lets a preset hold any keras_pbasr class (a backbone, a trainer):
    config.json names it (`module`, `registered_name`) and loading returns that class.
    """
    import keras_pbasr.models  # noqa: F401  (the backbones, for configs without `module`)

    module = config.get("module") if isinstance(config, dict) else None
    if isinstance(module, str) and module.split(".")[0] == "keras_pbasr":
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise PresetError(
                f"{source} names {config.get('registered_name')} from module {module}, "
                f"which this installation cannot import: {exc}"
            ) from exc


def load_preset_dir(preset_dir: str | Path, load_weights: bool = True) -> keras.Model:
    """Builds the model that `preset_dir/config.json` names and loads its weights."""
    preset_dir = Path(preset_dir)
    config_path = preset_dir / CONFIG_FILE
    if not preset_dir.is_dir():
        raise PresetError(f"preset directory {preset_dir} does not exist")
    if not config_path.is_file():
        raise PresetError(f"{preset_dir} is not a preset: {CONFIG_FILE} is missing")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise PresetError(f"{config_path} is not valid JSON: {exc}") from exc
    import_class_module(config, config_path)
    try:
        model = keras.saving.deserialize_keras_object(config)
    except Exception as exc:
        raise PresetError(f"cannot build the model described by {config_path}: {exc}") from exc
    if load_weights:
        weights_path = preset_dir / WEIGHTS_FILE
        if not weights_path.is_file():
            raise PresetError(f"{preset_dir} has no {WEIGHTS_FILE}")
        expected = read_metadata(preset_dir).get("weights_sha256")
        if expected and file_sha256(weights_path) != expected:
            raise PresetError(
                f"{weights_path} does not match the sha256 in {METADATA_FILE}: the file is "
                "corrupt or was changed after the preset was written"
            )
        try:
            model.load_weights(weights_path)
        except Exception as exc:
            raise PresetError(f"cannot load {weights_path}: {exc}") from exc
    return model
