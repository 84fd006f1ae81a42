"""Image files with their bit depth: reading (the package's one reader) and writing.

Reading is `keras_pbasr.utils.image_files.read_image_array`, re-exported under its own name
(its policy: uint8 or uint16, (H, W) grayscale or (H, W, 3 | 4), alpha kept, EXIF
orientation applied). Pillow
writes 8-bit images and 16-bit grayscale; 16-bit colour PNG goes through pypng (pure Python,
`pip install pypng`), because Pillow cannot hold it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_pbasr.utils.atomic_files import atomic_output
from keras_pbasr.utils.image_files import (
    UnsupportedImageError,
    check_image_suffix,
    pypng_module,
    read_image_array,
)

__all__ = ["UnsupportedImageError", "check_image_suffix", "read_image_array", "write_image"]


def write_image(path: str | Path, array: np.ndarray) -> None:
    """Writes a uint8 or uint16 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array.

    16-bit colour goes to PNG via pypng; 16-bit grayscale via Pillow (PNG or TIFF). The file
    is written through `atomic_output`: an interrupted write leaves the previous file or none.
    """
    path = Path(path)
    check_image_suffix(path)
    suffix = path.suffix.lower()
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint16:
        if array.ndim == 3:
            if suffix != ".png":
                raise UnsupportedImageError(f"16-bit colour output must be .png, not {path.name}")
            png = pypng_module(f"writing 16-bit colour {path.name}")
            height, width, planes = array.shape
            writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
            with atomic_output(path) as tmp, open(tmp, "wb") as f:
                writer.write(f, array.reshape(height, width * planes))
            return
        if suffix not in (".png", ".tif", ".tiff"):
            raise UnsupportedImageError(f"16-bit output must be .png or .tif, not {path.name}")
    elif array.dtype != np.uint8:
        raise UnsupportedImageError(f"cannot write {array.dtype} pixels to {path}")
    elif array.ndim == 3 and array.shape[-1] == 4 and suffix in (".jpg", ".jpeg"):
        raise UnsupportedImageError(f"JPEG has no alpha channel: write {path.stem}.png instead")
    from PIL import Image

    image = Image.fromarray(array)  # uint16 (H, W) is mode I;16
    with atomic_output(path) as tmp:
        image.save(tmp, format=Image.registered_extensions()[suffix])

