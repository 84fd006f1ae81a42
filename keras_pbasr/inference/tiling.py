"""Pure numpy geometry for tiled inference: edge padding, tile positions, feathered weights.

A tile of `tile` LR pixels is run through the network with `overlap` pixels shared with each
neighbour. Tiles lie inside the image (the last one ends at its edge), so a tile's context
comes from the image itself and stops at the image border exactly where the whole-image
forward pass stops, as in Real-ESRGAN's tile mode (`tile_pad` context clipped to the image).
Within a shared strip, the outer quarter next to each tile's inner edge is discarded (it saw
zero padding instead of the neighbouring pixels), and the middle half is cross-faded
linearly, so seams vanish whenever overlap/4 covers the network's effective receptive field.
Tile weights are outer products of 1D weights over a regular grid, hence blending needs no
full-size weight map: the 1D weight sums normalise each tile before it is added.
"""

from __future__ import annotations

import math

import numpy as np


def symmetric_pad_amount(size: int, multiple: int) -> int:
    """Pixels to add after `size` so it becomes a multiple of `multiple` (0 if it is one).

    Only models that need a size multiple are padded: any padding changes what a network
    computes near (and, through its receptive field, far inside) the border, so an image
    the model accepts as it is runs unpadded, as Real-ESRGAN's plain forward does.

    Example:
    >>> [symmetric_pad_amount(s, 4) for s in (7, 8, 9)]
    [1, 0, 3]
    """
    if multiple <= 1:
        return 0
    return -size % multiple


def pad_symmetric(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pads an (H, W, C) array at the bottom and right by mirroring (numpy 'symmetric')."""
    pad_h = symmetric_pad_amount(image.shape[0], multiple)
    pad_w = symmetric_pad_amount(image.shape[1], multiple)
    if pad_h == 0 and pad_w == 0:
        return image
    # 'symmetric' needs pad <= size per application; repeat for tiny images.
    while pad_h or pad_w:
        step_h, step_w = min(pad_h, image.shape[0]), min(pad_w, image.shape[1])
        image = np.pad(image, ((0, step_h), (0, step_w), (0, 0)), mode="symmetric")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return image


def tile_starts(size: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of length `tile` covering [0, size) with at least `overlap` shared.

    Starts are multiples of `multiple` (the network's size constraint) and the last tile ends
    exactly at `size`, which must itself be a multiple of `multiple`.
    """
    if tile >= size:
        return [0]
    stride = (tile - overlap) // multiple * multiple
    if stride < 1:
        raise ValueError(
            f"tile ({tile}) minus tile_overlap ({overlap}) must be at least {multiple} pixels"
        )
    count = math.ceil((size - tile) / stride) + 1
    starts = [min(i * stride, size - tile) for i in range(count)]
    return sorted(set(starts))


def feather_weights(starts: list[int], tile: int, size: int, overlap: int) -> list[np.ndarray]:
    """Normalised 1D blending weights (one array of length `tile` per start).

    Sides at the image border keep weight 1; inner sides are zero over overlap/4 pixels and
    ramp linearly to 1 over the next overlap/2. The weights at each position sum to 1.
    """
    margin, ramp = overlap / 4.0, max(overlap / 2.0, 1.0)
    position = np.arange(tile, dtype=np.float64) + 0.5
    raw = []
    for start in starts:
        w = np.ones(tile, dtype=np.float64)
        if start > 0:
            w = np.minimum(w, np.clip((position - margin) / ramp, 0.0, 1.0))
        if start + tile < size:
            w = np.minimum(w, np.clip((tile - position - margin) / ramp, 0.0, 1.0))
        raw.append(w)
    total = np.zeros(size, dtype=np.float64)
    for start, w in zip(starts, raw):
        total[start : start + tile] += w
    if np.any(total <= 0):
        raise ValueError(f"tiles {starts} of {tile} px leave part of {size} px without weight")
    return [(w / total[s : s + tile]).astype(np.float32) for s, w in zip(starts, raw)]


# tile="auto": the whole image in one forward pass up to this many input pixels (what
# Real-ESRGAN's inference does by default, tile=0, so the output is the official one; x4plus
# peaks at about 3 GB on a 512x512 input), tiles of AUTO_TILE_SIZE above it.
AUTO_WHOLE_IMAGE_PIXELS = 512 * 512
AUTO_TILE_SIZE = 256


def resolve_tile(tile: int | str | None, height: int, width: int) -> int | None:
    """The tile size to use for an image: None (whole image) or a size in input pixels.

    `tile` is a size, None / 0 (whole image) or "auto" (whole image up to
    AUTO_WHOLE_IMAGE_PIXELS input pixels, else AUTO_TILE_SIZE tiles).

    Example:
    >>> resolve_tile("auto", 480, 320), resolve_tile("auto", 1000, 1500), resolve_tile(0, 9, 9)
    (None, 256, None)
    """
    if tile == "auto":
        return None if height * width <= AUTO_WHOLE_IMAGE_PIXELS else AUTO_TILE_SIZE
    if isinstance(tile, str) or (tile is not None and tile < 0):
        raise ValueError(f"tile must be 'auto', None or a size >= 0, got {tile!r}")
    return tile or None


# Tiles per forward pass on a GPU under batch_size="auto" (the former fixed default; not
# re-measured, as no GPU was available when the CPU choice below was measured).
GPU_TILE_BATCH = 4


def resolve_batch_size(batch_size: int | str, gpu: bool, devices: int) -> int:
    """Tiles per forward pass: `batch_size` itself, or for "auto" one tile per device on a
    CPU and GPU_TILE_BATCH on a GPU.

    On a CPU a batch of tiles is slower than one tile at a time for x4plus (2 cores, 160-px
    tiles: TensorFlow +8 %, torch +6-26 %, peak memory up to 2x; notes/issue-19-speed.md),
    except where the batch is split over several devices (JAX with one CPU device per core:
    -17 % against one device), so "auto" gives each device one tile.

    Example:
    >>> resolve_batch_size("auto", gpu=False, devices=1), resolve_batch_size("auto", False, 2)
    (1, 2)
    >>> resolve_batch_size("auto", gpu=True, devices=1), resolve_batch_size(3, gpu=True, devices=1)
    (4, 3)
    """
    if batch_size == "auto":
        return GPU_TILE_BATCH if gpu else max(devices, 1)
    if isinstance(batch_size, str) or batch_size < 1:
        raise ValueError(f"batch_size must be 'auto' or a number >= 1, got {batch_size!r}")
    return batch_size
