"""Writing files so that an interrupted run leaves the old file or none, never half a file.

Every file keras_pbasr writes goes through `atomic_output`: the content goes to a temporary file
in the destination folder (same file system, so the final `os.replace` is atomic), which is
flushed, fsynced and renamed over the destination only when the writer finished without an
exception. On any error (including KeyboardInterrupt) the temporary file is removed and the
destination is untouched.

`refuse_same_file` guards the other way to lose data: an output path that is the same file as an
input (same path, a symlink, or a hard link: `os.path.samefile` compares device and inode).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


class SameFileError(ValueError):
    """An output path names the same file as one of the inputs."""


def refuse_same_file(output: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Raise `SameFileError` if `output` exists and is the same file as any of `inputs`.

    Example:
    >>> refuse_same_file("out.png", ["photo.png"])  # fine when they are different files
    """
    output = Path(output)
    if not output.exists():
        return
    for source in inputs:
        source = Path(source)
        if source.exists() and os.path.samefile(output, source):
            raise SameFileError(
                f"{output}: output is the same file as the input {source}; choose another output"
            )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    The temporary name keeps the destination's extension (or `suffix`), so writers that pick
    a format from the extension (Pillow, Keras' `.weights.h5`, numpy's `.npy`) still work.

    Example:
    >>> with atomic_output("report.json") as tmp:          # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    path = Path(path)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through `atomic_output`; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through `atomic_output`; returns the path.

    Example:
    >>> write_text_atomic("notes.txt", "hello")            # doctest: +SKIP
    """
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    """`json.dumps(obj)` written through `atomic_output`, with a final newline."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")
