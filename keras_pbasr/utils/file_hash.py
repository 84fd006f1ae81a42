"""The sha256 of a file, read in chunks (presets, the weights cache, checkpoints)."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of the file at `path`.

    Example:
    >>> file_sha256(__file__) == file_sha256(__file__)
    True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
