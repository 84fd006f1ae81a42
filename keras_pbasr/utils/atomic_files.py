"""Writing files so that an interrupted run leaves the old file or none, never half a file.

Every file keras_pbasr writes goes through `atomic_output`: the content goes to a temporary file
in the destination folder (same file system, so the final `os.replace` is atomic), which is
flushed, fsynced and renamed over the destination only when the writer finished without an
exception. On any error (including KeyboardInterrupt) the temporary file is removed and the
destination is untouched.

`refuse_same_file` guards the other way to lose data: an output path that is the same file as an
input (same path, a symlink, or a hard link: `os.path.samefile` compares device and inode).

Folders: `check_writable_folder` fails early (before any inference) when files cannot be created
where an output goes; `output_folder` creates an output folder for a run and removes the folders
it created if the run leaves them empty (a failed run leaves no empty folder behind);
`atomic_directory` builds a directory output (a SavedModel) beside its destination and swaps
it in when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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
                f"{output}: output is the same file as the input {source} (refusing to write "
                "over the input); choose another output"
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


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Raises an OSError naming `folder` if files cannot be created in it (for a folder that
    does not exist yet: in its nearest existing parent). Tries a real temporary file, so
    read-only mounts are caught too.

    Example:
    >>> check_writable_folder(tempfile.gettempdir())
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{folder}: cannot create it, {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".pbasr-write-check.", dir=existing)
    except OSError as error:
        raise PermissionError(
            f"{folder}: cannot write into {existing} ({error.strerror or error})"
        ) from error
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def output_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Creates `folder` (and missing parents) for a run's outputs; on leaving, removes the
    folders it created that are still empty, whether the run failed or wrote nothing.

    Example:
    >>> with output_folder("masks") as out:                # doctest: +SKIP
    ...     write_text_atomic(out / "a.txt", "...")
    """
    folder = Path(folder)
    created = []
    missing = folder
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        for path in created:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only succeeds while empty


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; when the block succeeds it takes the place
    of `path` (a previous directory or file there is removed only after the new one is
    complete). On any error the temporary directory is removed and `path` is untouched.

    Example:
    >>> with atomic_directory("export/saved_model") as tmp:  # doctest: +SKIP
    ...     model.export(str(tmp))
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        # mkdtemp makes the folder 0700; give the result the permissions mkdir would.
        tmp.chmod(0o777 & ~_current_umask())
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not path.exists() and not path.is_symlink():
        os.replace(tmp, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old / path.name)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
