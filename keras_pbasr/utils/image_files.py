"""The package's one image-file reader, shared by training data, inference and evaluation.

Policy of `read_image_array` (what every reader in the package builds on):

- Formats: the suffixes in IMAGE_EXTENSIONS (PNG, JPEG, WebP, BMP, TIFF), decoded by Pillow.
- Bit depth is kept: 8-bit files give uint8; 16-bit grayscale PNG/TIFF and 16-bit colour PNG
  give uint16 (Pillow silently reduces 16-bit colour PNG to 8 bits, so those are decoded with
  pypng); 32-bit integer images are clipped to uint16; 32-bit float TIFF gives float32
  clipped to [0, 1].
- Channels: grayscale stays (H, W) (1-bit images become 0 / 255); colour is (H, W, 3) RGB;
  palette, CMYK and other modes are converted to RGB.
- Alpha (RGBA, LA, palette with transparency) is kept as a 4th channel, with gray+alpha
  expanded to RGBA. What to do with it is the caller's policy: `image_to_float_rgb`
  composites over white or drops it (training data, metrics), `keras_pbasr.upscale` keeps it.
- EXIF orientation is applied: the pixels come out as a viewer shows them. A malformed EXIF
  block is ignored (the pixels are returned unrotated) rather than hiding the image.
- Errors name the file: `ImageNotFoundError` (also a FileNotFoundError) for a missing file,
  `ImageReadError` for an unreadable, corrupt or truncated one; both are ValueErrors and
  `UnsupportedImageError`s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# The image files the package lists in folders (lower-case suffixes).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALPHA_POLICIES = ("white", "drop")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
EXIF_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types that Pillow reduces to 8 bits at bit depth 16: RGB, gray+alpha, RGBA.
_PYPNG_COLOUR_TYPES = (2, 4, 6)


class UnsupportedImageError(ValueError):
    """A file is not an image this package can read or write faithfully."""


class ImageReadError(UnsupportedImageError):
    """An image file could not be read (unreadable, corrupt, truncated); the message names it."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """An image file does not exist; the message names it."""


def find_image_files(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Sorted files in `folder` (and its sub-folders when `recursive`) whose suffix is one of
    IMAGE_EXTENSIONS, in any letter case."""
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in Path(folder).glob(pattern)
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


def png_header(path: str | os.PathLike) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk, or None for other files."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR" or len(head) < 26:
        return None
    # Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4), then the two.
    return head[24], head[25]


def pypng_module(purpose: str):
    """The pypng module, or UnsupportedImageError saying that `purpose` needs it."""
    try:
        import png
    except ImportError as exc:
        raise UnsupportedImageError(
            f"{purpose} needs pypng (Pillow would drop it to 8 bits): pip install pypng"
        ) from exc
    return png


def apply_exif_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turns stored pixels (H, W[, C]) into displayed ones for an EXIF orientation 1..8
    (the same transposes as PIL.ImageOps.exif_transpose); other values change nothing."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return np.swapaxes(array, 0, 1)
    if orientation == 6:
        return np.rot90(array, k=-1)
    if orientation == 7:
        return np.swapaxes(array[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.rot90(array, k=1)
    return array


def exif_orientation(image) -> int:
    """The EXIF orientation of an open PIL image (1 when absent or unreadable)."""
    try:
        return int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not hide the pixels
        return 1


def read_image_array(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file with its bit depth and channels (see the module policy).

    Returns uint8 or uint16 (float32 for float TIFF), shaped (H, W) for grayscale or
    (H, W, 3 | 4) for RGB / RGBA, EXIF orientation applied.

    Example:
    >>> read_image_array("photo.jpg").shape  # doctest: +SKIP
    (480, 640, 3)
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageNotFoundError(f"{path}: file not found")
    try:
        with Image.open(path) as image:
            orientation = exif_orientation(image)
            header = png_header(path) if image.format == "PNG" else None
            if header is not None and header[0] == 16 and header[1] in _PYPNG_COLOUR_TYPES:
                array = _read_sixteen_bit_colour_png(path)
            else:
                image.load()
                array = _pillow_pixels(image)
    except ImageReadError:
        raise
    except UnsupportedImageError as error:
        raise ImageReadError(f"{path}: {error}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: unreadable or corrupt image ({error})") from error
    return np.ascontiguousarray(apply_exif_orientation(array, orientation))


def _read_sixteen_bit_colour_png(path: Path) -> np.ndarray:
    png = pypng_module("16-bit colour PNG")
    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except png.Error as error:
        raise ImageReadError(f"{path}: corrupt 16-bit PNG ({error})") from error
    planes = info["planes"]
    array = array.reshape(height, width, planes)
    if planes == 2:  # gray + alpha
        array = np.concatenate([np.repeat(array[..., :1], 3, -1), array[..., 1:]], -1)
    return array


def _pillow_pixels(image) -> np.ndarray:
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES:
        return np.asarray(image, dtype=np.uint16).copy()
    if mode == "I":
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    if mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if mode == "L":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode == "1":
        return np.asarray(image, dtype=np.uint8) * np.uint8(255)
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info)
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8).copy()


def to_unit_float(array: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float pixels -> float32 in [0, 1] (same shape)."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    return array.astype(np.float32)


def image_to_float_rgb(array: np.ndarray, alpha: str = "white") -> np.ndarray:
    """A `read_image_array` result -> float32 (H, W, 3) RGB in [0, 1].

    Grayscale is repeated to RGB. Alpha is composited over a white background
    (`alpha="white"`: transparent pixels hold arbitrary colours that would otherwise leak
    into training patches and metrics) or ignored (`alpha="drop"`).
    """
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {ALPHA_POLICIES}, got {alpha!r}")
    image = to_unit_float(array)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 4:
        rgb, weight = image[..., :3], image[..., 3:]
        image = rgb * weight + (1.0 - weight) if alpha == "white" else rgb
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image, dtype=np.float32)
