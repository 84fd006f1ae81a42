"""Image and mask reading with Pillow alone (no TensorFlow).

Policies, shared with the tf.data decoders in `keras_pbasr.data.sources`:

- Output: float32 (H, W, 3) RGB in [0, 1].
- Bit depth: 8-bit files are divided by 255, 16-bit grayscale (Pillow modes I;16*, I) by 65535.
  Pillow reduces 16-bit RGB(A) PNGs to 8 bits on open; those keep 8-bit precision.
- Grayscale and palette images are expanded to RGB.
- Alpha (RGBA, LA, palette with transparency): composited over a white background by default
  (`alpha="white"`), because transparent pixels hold arbitrary colours that would otherwise
  leak into HR patches; `alpha="drop"` ignores the alpha channel instead.
- EXIF orientation is applied (the pixels come out as a viewer shows them).
- Masks (blur maps): single channel, 1 = sharp, 0 = blurred after binarisation with
  `value / max_value >= threshold` (default threshold 0.5). `polarity="sharp_high"` is the
  ReBlurSR convention (0 = blurred, 255 = sharp); `polarity="blur_high"` reads the original
  CUHK blur-detection masks (255 = blurred) and inverts them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALPHA_POLICIES = ("white", "drop")
MASK_POLARITIES = ("sharp_high", "blur_high")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_EXIF_ORIENTATION_TAG = 0x0112


class ImageReadError(ValueError):
    """An image or mask file could not be read; the message names the file."""


def _open(path: str | os.PathLike):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError as error:
        raise ImageReadError(f"{path}: file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: unreadable or corrupt image ({error})") from error
    return image


def _exif_transpose(image):
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not hide the pixels
        return image


def _to_float_array(image, alpha: str) -> np.ndarray:
    """float32 (H, W, C) in [0, 1]; C is 1 for grayscale, 3 for colour, 4 with alpha kept."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow gives 16-bit grayscale as int32 values in [0, 65535].
        return (np.asarray(image, dtype=np.float32) / 65535.0)[..., None]
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)[..., None]
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        image = image.convert("RGBA")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    if has_alpha:
        rgb, weight = array[..., :3], array[..., 3:4]
        if alpha == "white":
            rgb = rgb * weight + (1.0 - weight)
        array = rgb
    return array


def read_image(path: str | os.PathLike, alpha: str = "white") -> np.ndarray:
    """Reads an image file as float32 (H, W, 3) RGB in [0, 1] (see the module policies).

    Raises ImageReadError naming the file when it is missing, unreadable, corrupt or truncated.
    """
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {ALPHA_POLICIES}, got {alpha!r}")
    image = _exif_transpose(_open(path))
    array = _to_float_array(image, alpha)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array, dtype=np.float32)


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
    image = _exif_transpose(_open(path))
    return binarize_mask(_to_float_array(image, alpha="drop"), threshold, polarity)


def image_header(path: str | os.PathLike) -> dict:
    """Cheap facts about an image file without decoding its pixels.

    Returns {"format", "mode", "width", "height", "orientation", "sixteen_bit"} (width and
    height as displayed, i.e. after EXIF orientation). Raises ImageReadError naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            orientation = 1
            try:
                orientation = int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
            except Exception:  # noqa: BLE001 - broken EXIF: treat as unrotated
                orientation = 1
            width, height = image.size
            # 16-bit RGB PNGs are opened by Pillow as 8-bit RGB; their header says bit depth 16.
            sixteen_bit = image.mode in _SIXTEEN_BIT_MODES or (
                image.format == "PNG" and _png_bit_depth(path) == 16
            )
            fmt, mode = image.format, image.mode
    except FileNotFoundError as error:
        raise ImageReadError(f"{path}: file not found") from error
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


def _png_bit_depth(path: str | os.PathLike) -> int:
    with open(path, "rb") as handle:
        head = handle.read(26)
    # Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4) + bit depth (1).
    return head[24] if len(head) >= 25 and head[12:16] == b"IHDR" else 8


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


def list_images(
    folder: str | os.PathLike, recursive: bool = True, file_list: str | os.PathLike | None = None
) -> list[Path]:
    """Sorted image files under `folder` (by extension), or those named in `file_list`.

    `file_list` is a text file with one path per line, relative to `folder` (blank lines and
    lines starting with # are ignored). Raises FileNotFoundError / ValueError with the path
    when the folder is missing, a listed file is missing, or nothing is found.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    if file_list is not None:
        names = [
            line.strip() for line in Path(file_list).read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        files = [folder / name for name in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} file(s) from {file_list} are missing, e.g. {missing[:3]}"
            )
    else:
        pattern = "**/*" if recursive else "*"
        files = sorted(
            p for p in folder.glob(pattern)
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
    if not files:
        raise ValueError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}"
            + (f" from {file_list}" if file_list else "")
        )
    return files
