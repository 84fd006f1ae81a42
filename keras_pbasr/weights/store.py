"""The local cache of converted weights.

Each entry NAME is `NAME.npz` (Keras-layout numpy arrays, e.g. `conv1_1/kernel` of shape
(kh, kw, in, out)) plus `NAME.json` (where it came from, the sha256 of the source and of the
npz). The cache directory is $PBASR_WEIGHTS_DIR, by default ~/.keras/keras_pbasr/weights.
"""

from __future__ import annotations

import json
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from keras_pbasr.utils.atomic_files import atomic_output, write_json_atomic
from keras_pbasr.utils.file_hash import file_sha256

WEIGHTS_DIR_ENV = "PBASR_WEIGHTS_DIR"

# How to obtain each entry, for error messages.
HOW_TO_GET = {
    "alexnet": "pbasr weights fetch alexnet",
    "vgg16": "pbasr weights fetch vgg16",
    "lpips_alex": "pbasr weights fetch lpips_alex",
    "lpips_vgg": "pbasr weights fetch lpips_vgg",
    "dists": "pbasr weights fetch dists",
    "vgg19": "pbasr weights import vgg19-dcbb9e9d.pth --name vgg19  "
    "(a torchvision VGG19 state_dict; no package registry ships VGG19 weights)",
    "niqe_pris_params": "python -m keras_pbasr.weights.niqe_params",
}


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not in the cache; the message names the command that gets them."""


class CorruptWeightsError(ValueError):
    """A cached entry fails its sha256 or archive check; the message names the repair command."""


def weights_dir() -> Path:
    """$PBASR_WEIGHTS_DIR, else $KERAS_HOME (default ~/.keras)/keras_pbasr/weights."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "keras_pbasr" / "weights"


def cached_weights_path(name: str) -> Path:
    return weights_dir() / f"{name}.npz"


def is_cached(name: str) -> bool:
    return cached_weights_path(name).is_file() and _sidecar(name).is_file()


def save_weights_arrays(
    name: str, arrays: dict[str, np.ndarray], source: dict, dtype: np.dtype = np.float32
) -> Path:
    """Writes NAME.npz and NAME.json into the cache (atomically: temp file + rename).

    `dtype`: what the arrays are stored as; float32 for network weights, float64 where the
    values feed float64 statistics (the NIQE model).
    """
    directory = weights_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = cached_weights_path(name)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.ascontiguousarray(v, dtype) for k, v in arrays.items()})
    record = {
        "name": name,
        "sha256": file_sha256(path),
        "arrays": {k: list(v.shape) for k, v in arrays.items()},
        "source": source,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(_sidecar(name), record)
    return path


def load_weights_arrays(name: str) -> dict[str, np.ndarray]:
    """Reads a cached entry, checking the npz against the sha256 recorded when it was written.

    Raises MissingWeightsError naming the command that obtains the weights.
    """
    path = cached_weights_path(name)
    if not path.is_file() or not _sidecar(name).is_file():
        how = HOW_TO_GET.get(name, f"pbasr weights fetch {name}")
        raise MissingWeightsError(
            f"pretrained weights {name!r} are not in {weights_dir()} "
            f"(set ${WEIGHTS_DIR_ENV} to use another cache); get them with: {how}"
        )
    problem = cache_problem(name)
    if problem:
        raise CorruptWeightsError(
            f"{path} is corrupt ({problem}); repair it with: "
            f"{HOW_TO_GET.get(name, f'pbasr weights fetch {name}')}"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise CorruptWeightsError(
            f"{path} is corrupt (unreadable npz: {error}); repair it with: "
            f"{HOW_TO_GET.get(name, f'pbasr weights fetch {name}')}"
        ) from error


def cache_problem(name: str) -> str | None:
    """What is wrong with cached entry `name` (None when it is sound): a missing file, a
    sha256 that differs from its record, or an npz whose zip CRCs fail (a file changed
    together with its record).

    Example:
    >>> cache_problem("alexnet") in (None, "not cached")  # doctest: +SKIP
    True
    """
    path, sidecar = cached_weights_path(name), _sidecar(name)
    if not path.is_file() or not sidecar.is_file():
        return "not cached"
    try:
        record = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return f"unreadable record {sidecar.name}: {error}"
    actual = file_sha256(path)
    if actual != record.get("sha256"):
        return f"sha256 {actual} differs from {record.get('sha256')} recorded in {sidecar}"
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        return f"not a valid npz archive: {error}"
    if bad_member is not None:
        return f"member {bad_member} fails its CRC check"
    return None


def require_cached(names: list[str], purpose: str) -> None:
    """Raises one MissingWeightsError naming a single command for all missing `names`."""
    missing = [n for n in names if not is_cached(n)]
    if missing:
        raise MissingWeightsError(
            f"{purpose} needs pretrained weights {missing}, not in {weights_dir()} "
            f"(${WEIGHTS_DIR_ENV} sets the cache); get them with: "
            f"pbasr weights fetch {' '.join(missing)}"
        )


def list_cached_weights() -> list[dict]:
    """Records (name, path, sha256, source, ...) of every cached entry; "problem" says what
    is wrong with an entry (`cache_problem`), None when it is sound."""
    directory = weights_dir()
    if not directory.is_dir():
        return []
    records = []
    for sidecar in sorted(directory.glob("*.json")):
        try:
            record = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = {"name": sidecar.stem, "sha256": None, "source": {}}
        npz = directory / f"{sidecar.stem}.npz"
        record["path"] = str(npz)
        record["present"] = npz.is_file()
        record["problem"] = cache_problem(sidecar.stem) if npz.is_file() else "npz missing"
        records.append(record)
    return records


def _sidecar(name: str) -> Path:
    return weights_dir() / f"{name}.json"
