"""Preset directories in the keras-hub layout.

A preset directory holds:
- config.json: `keras.saving.serialize_keras_object(model)` (class_name, config, registered_name);
- model.weights.h5: `model.save_weights(...)`;
- metadata.json: keras_pbasr and Keras versions, the backend that wrote it, the parameter count,
  the sha256 of model.weights.h5, and caller metadata (e.g. the source checkpoint and its sha256).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import keras

from keras_pbasr.models import PRESET_CLASSES
from keras_pbasr.utils.atomic_files import atomic_output, write_json_atomic
from keras_pbasr.utils.file_hash import file_sha256
from keras_pbasr.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


class PresetError(ValueError):
    """A preset directory is missing, incomplete or corrupt."""


def save_to_preset(
    model: keras.Model,
    preset_dir: str | Path,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes `model` as a preset directory and returns its path.

    Refuses to write into a non-empty directory unless `overwrite=True`. Each file is
    written atomically (temporary file, then rename); metadata.json, written last, records the
    sha256 of model.weights.h5, so a preset whose writing was interrupted fails that check on
    loading instead of loading mismatched weights.
    """
    preset_dir = Path(preset_dir)
    if preset_dir.exists() and any(preset_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{preset_dir} exists and is not empty; pass --overwrite (overwrite=True) to "
            "replace its preset"
        )
    preset_dir.mkdir(parents=True, exist_ok=True)
    if not model.built:
        raise PresetError("build the model (call it once) before saving it as a preset")

    config = keras.saving.serialize_keras_object(model)
    write_json_atomic(preset_dir / CONFIG_FILE, config)
    weights_path = preset_dir / WEIGHTS_FILE
    with atomic_output(weights_path) as tmp:
        model.save_weights(tmp)

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
    write_json_atomic(preset_dir / METADATA_FILE, meta)
    return preset_dir


def read_metadata(preset_dir: str | Path) -> dict:
    path = Path(preset_dir) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path} is not valid JSON: {exc}") from exc


def registered_preset_class(config: object, source: str | Path) -> type:
    """The keras_pbasr class a preset's config.json names, from the model registry's
    allow-list (`keras_pbasr.models.PRESET_CLASSES`, by registered name).

    Nothing is imported on the preset's say-so: a config naming any other class or module
    (even one inside keras_pbasr) raises PresetError.

    Example:
    >>> registered_preset_class({"registered_name": "keras_pbasr>RRDBNet"}, "config.json")
    <class 'keras_pbasr.models.rrdbnet.rrdbnet_backbone.RRDBNet'>
    """
    name = config.get("registered_name") if isinstance(config, dict) else None
    cls = PRESET_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None or config.get("class_name") not in (None, cls.__name__):
        module = config.get("module") if isinstance(config, dict) else None
        raise PresetError(
            f"{source} names class {name!r} (module {module!r}), which is not a keras_pbasr "
            f"model; nothing was imported. Presets may only hold "
            f"{', '.join(sorted(PRESET_CLASSES))}"
        )
    return cls


def deserialize_preset_model(config: dict, source: str | Path) -> keras.Model:
    """Builds the allowed class of `config` with Keras, resolving no other module."""
    cls = registered_preset_class(config, source)
    safe_config = {**config, "module": cls.__module__}
    try:
        return keras.saving.deserialize_keras_object(
            safe_config, custom_objects={config["registered_name"]: cls}
        )
    except Exception as exc:
        raise PresetError(f"cannot build the model described by {source}: {exc}") from exc


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
    model = deserialize_preset_model(config, config_path)
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
