"""Pre-generated batches in an .npz file, for machines without TensorFlow.

`write_batch_cache(dataset, path, num_batches)` (needs TensorFlow) stores batches of
`mixed_dataset` as uint8 (lr, hr rounded to 1/255; mask 0/1) to keep the file small;
`numpy_batches(path)` (numpy only) yields the same dicts as `mixed_dataset` again, float32.
Note: HR patches that went through the random resize are rounded to 8 bits by the cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from keras_pbasr.utils.atomic_files import atomic_output

BATCH_KEYS = ("lr", "hr", "mask", "is_blur")


def write_batch_cache(batches: Iterable, path: str | os.PathLike, num_batches: int) -> Path:
    """Writes the first `num_batches` batches of a dataset (or any iterable of batch dicts)."""
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    stored: dict[str, list[np.ndarray]] = {key: [] for key in BATCH_KEYS}
    for index, batch in enumerate(batches):
        if index == num_batches:
            break
        for key in BATCH_KEYS:
            value = np.asarray(batch[key])
            if key in ("lr", "hr"):
                value = np.round(np.clip(value, 0.0, 1.0) * 255.0).astype(np.uint8)
            else:
                value = (value > 0.5).astype(np.uint8)
            stored[key].append(value)
    if len(stored["hr"]) < num_batches:
        raise ValueError(f"the dataset ended after {len(stored['hr'])} of {num_batches} batches")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{key: np.stack(values) for key, values in stored.items()})
    return path


def numpy_batches(
    cache: str | os.PathLike, shuffle: bool = True, seed: int | None = None, repeat: bool = True
) -> Iterator[dict[str, np.ndarray]]:
    """Yields {"lr", "hr", "mask", "is_blur"} float32 batches from a `write_batch_cache` file,
    in a new random order each pass (shuffle=True), forever (repeat=True) or once."""
    path = Path(cache)
    if not path.is_file():
        raise FileNotFoundError(
            f"batch cache not found: {path} (make one with keras_pbasr.data.write_batch_cache)"
        )
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in BATCH_KEYS if key not in data]
        if missing:
            raise ValueError(f"{path} is not a batch cache: missing {missing}")
        arrays = {key: data[key] for key in BATCH_KEYS}
    rng = np.random.default_rng(seed)
    count = len(arrays["hr"])
    while True:
        order = rng.permutation(count) if shuffle else np.arange(count)
        for index in order:
            yield {
                "lr": arrays["lr"][index].astype(np.float32) / 255.0,
                "hr": arrays["hr"][index].astype(np.float32) / 255.0,
                "mask": arrays["mask"][index].astype(np.float32),
                "is_blur": arrays["is_blur"][index].astype(np.float32),
            }
        if not repeat:
            return
