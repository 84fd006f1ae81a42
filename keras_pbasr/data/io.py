"""Image and mask reading for training and evaluation data (Pillow, no TensorFlow).

Files are decoded by `keras_pbasr.utils.image_files.read_image_array`, the package's one
reader (its docstring states the policy for bit depth, grayscale, alpha and EXIF orientation);
the tf.data decoders in `keras_pbasr.data.sources` follow the same policy. On top of it:

- Images: `keras_pbasr.utils.image_files.read_rgb`, float32 (H, W, 3) RGB in [0, 1];
  grayscale is expanded to RGB; alpha is composited over a white background by default
  (`alpha="white"`), because transparent pixels hold arbitrary colours that would otherwise
  leak into HR patches; `alpha="drop"` ignores the alpha channel instead.
- Masks (blur maps): single channel, 1 = sharp, 0 = blurred after binarisation with
  `value / max_value >= threshold` (default threshold 0.5), colour masks averaged over RGB.
  `polarity="sharp_high"` is the ReBlurSR convention (0 = blurred, 255 = sharp);
  `polarity="blur_high"` reads the original CUHK blur-detection masks (255 = blurred) and
  inverts them. `read_blur_mask` gives the map unbinarised in [0, 255] (evaluation).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_pbasr.utils.image_files import (
    SIXTEEN_BIT_MODES,
    ImageNotFoundError,
    ImageReadError,
    ImageTooLargeError,
    check_pixel_count,
    exif_orientation,
    png_header,
    read_image_array,
    to_unit_float,
)

MASK_POLARITIES = ("sharp_high", "blur_high")


def binarize_mask(
    values: np.ndarray, threshold: float = 0.5, polarity: str = "sharp_high"
) -> np.ndarray:
    """(H, W[, C]) values in [0, 1] -> float32 (H, W, 1), 1 = sharp, 0 = blurred."""
    if polarity not in MASK_POLARITIES:
        raise ValueError(f"polarity must be one of {MASK_POLARITIES}, got {polarity!r}")
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 3:
        values = values.mean(axis=-1)
    sharp = values >= threshold
    if polarity == "blur_high":
        sharp = ~sharp
    return sharp.astype(np.float32)[..., None]


def read_mask(
    path: str | os.PathLike, threshold: float = 0.5, polarity: str = "sharp_high"
) -> np.ndarray:
    """Reads a blur map as float32 (H, W, 1): 1 = sharp, 0 = blurred (see the module policies)."""
    values = to_unit_float(read_image_array(path))
    if values.ndim == 3:
        values = values[..., :3]  # an alpha channel is not part of the map
    return binarize_mask(values, threshold, polarity)


def read_blur_mask(path: str | os.PathLike) -> np.ndarray:
    """Reads a blur map as float32 (H, W) in [0, 255] (0 = blurred, 255 = sharp), not
    binarized: the evaluation's region weights and area classes threshold it themselves."""
    array = read_image_array(path)
    mask = array.astype(np.float32) / (257.0 if array.dtype == np.uint16 else 1.0)
    return mask[..., 0] if mask.ndim == 3 else mask


def image_header(path: str | os.PathLike) -> dict:
    """Cheap facts about an image file without decoding its pixels.

    Returns {"format", "mode", "width", "height", "orientation", "sixteen_bit"} (width and
    height as displayed, i.e. after EXIF orientation). Raises ImageReadError naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            orientation = exif_orientation(image)
            width, height = image.size
            check_pixel_count(path, width, height)
            # 16-bit RGB PNGs are opened by Pillow as 8-bit RGB; their header says bit depth 16.
            # Mode I (32-bit integer) counts too: only the Pillow reader decodes it.
            sixteen_bit = image.mode in (*SIXTEEN_BIT_MODES, "I") or (
                image.format == "PNG" and (png_header(path) or (8,))[0] == 16
            )
            fmt, mode = image.format, image.mode
    except FileNotFoundError as error:
        raise ImageNotFoundError(f"{path}: file not found") from error
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{path}: refused as a decompression bomb ({error})") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: unreadable or corrupt image ({error})") from error
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees
        width, height = height, width
    return {
        "format": fmt,
        "mode": mode,
        "width": width,
        "height": height,
        "orientation": orientation,
        "sixteen_bit": sixteen_bit,
    }


def check_file_integrity(path: str | os.PathLike, header: dict | None = None) -> None:
    """Catches truncated or corrupt files without decoding them fully.

    PNG: every chunk's CRC is checked up to IEND (Pillow's verify). JPEG: the file must end
    with the EOI marker. Other formats: the header must parse. Raises ImageReadError.
    """
    from PIL import Image

    header = header or image_header(path)
    if header["format"] == "PNG":
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as error:  # noqa: BLE001 - any verify failure means a broken file
            raise ImageReadError(f"{path}: corrupt or truncated PNG ({error})") from error
    elif header["format"] in ("JPEG", "MPO"):
        with open(path, "rb") as handle:
            handle.seek(max(0, Path(path).stat().st_size - 64))
            tail = handle.read()
        if b"\xff\xd9" not in tail:
            raise ImageReadError(f"{path}: truncated JPEG (no end-of-image marker)")
