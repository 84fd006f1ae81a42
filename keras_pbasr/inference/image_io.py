"""Reading and writing images with their bit depth: 8-bit via Pillow, 16-bit too.

Pillow reads 16-bit grayscale PNG/TIFF but silently reduces 16-bit RGB(A) PNG to 8 bits, so those
go through pypng (pure Python, `pip install pypng`). Arrays are (H, W) for grayscale or (H, W, C)
with C = 3 (RGB) or 4 (RGBA), dtype uint8 or uint16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class UnsupportedImageError(ValueError):
    """A file is not an image this package can read or write faithfully."""


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None for other files."""
    with open(path, "rb") as f:
        head = f.read(33)
    if not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _pypng():
    try:
        import png
    except ImportError as exc:
        raise UnsupportedImageError(
            "16-bit colour PNG needs pypng (Pillow would drop it to 8 bits): pip install pypng"
        ) from exc
    return png


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as uint8 or uint16, (H, W) grayscale or (H, W, 3|4).

    Palette images become RGB or RGBA; grayscale with alpha becomes RGBA.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input image {path} does not exist")
    header = _png_header(path)
    if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
        png = _pypng()
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        planes = info["planes"]
        array = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
        array = array.reshape(height, width, planes)
        if planes == 2:  # gray + alpha
            array = np.concatenate([np.repeat(array[..., :1], 3, -1), array[..., 1:]], -1)
        return array

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(img, dtype=np.uint16).copy()
            if mode == "I":
                return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
            if mode == "L":
                return np.asarray(img, dtype=np.uint8).copy()
            if mode == "1":
                return (np.asarray(img, dtype=np.uint8) * 255).copy()
            has_alpha = mode in ("RGBA", "LA", "PA") or (
                mode == "P" and "transparency" in img.info
            )
            converted = img.convert("RGBA" if has_alpha else "RGB")
            return np.asarray(converted, dtype=np.uint8).copy()
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError(f"{path} is not an image file Pillow can read") from exc
    except OSError as exc:
        raise UnsupportedImageError(f"cannot decode {path}: {exc}") from exc


def write_image(path: str | Path, array: np.ndarray) -> None:
    """Writes a uint8 or uint16 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array.

    16-bit colour goes to PNG via pypng; 16-bit grayscale via Pillow (PNG or TIFF).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UnsupportedImageError(
            f"cannot write {path}: unknown image suffix (use one of {', '.join(IMAGE_SUFFIXES)})"
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint16:
        if array.ndim == 3:
            if suffix != ".png":
                raise UnsupportedImageError(f"16-bit colour output must be .png, not {path.name}")
            png = _pypng()
            height, width, planes = array.shape
            writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
            with open(path, "wb") as f:
                writer.write(f, array.reshape(height, width * planes))
            return
        if suffix not in (".png", ".tif", ".tiff"):
            raise UnsupportedImageError(f"16-bit output must be .png or .tif, not {path.name}")
        from PIL import Image

        Image.fromarray(array).save(path)  # uint16 (H, W) is mode I;16
        return
    if array.dtype != np.uint8:
        raise UnsupportedImageError(f"cannot write {array.dtype} pixels to {path}")
    from PIL import Image

    if array.ndim == 3 and array.shape[-1] == 4 and suffix in (".jpg", ".jpeg"):
        raise UnsupportedImageError(f"JPEG has no alpha channel: write {path.stem}.png instead")
    Image.fromarray(array).save(path)
