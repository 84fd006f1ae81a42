"""The package's one image-file reader, shared by training data, inference and evaluation.

Policy of `read_image_array` (what every reader in the package builds on):

- Formats: the suffixes in IMAGE_EXTENSIONS (PNG, JPEG, WebP, BMP, TIFF), decoded by Pillow.
- Bit depth is kept: 8-bit files give uint8; 16-bit grayscale PNG/TIFF and 16-bit colour PNG
  give uint16 (Pillow silently reduces 16-bit colour PNG to 8 bits, so those are decoded with
  pypng); 32-bit integer images are clipped to uint16; 32-bit float TIFF gives float32
  clipped to [0, 1] (NaN or infinite values make it unreadable: ImageReadError).
- Channels: grayscale stays (H, W) (1-bit images become 0 / 255); colour is (H, W, 3) RGB;
  palette, CMYK and other modes are converted to RGB.
- Alpha (RGBA, LA, palette with transparency) is kept as a 4th channel, with gray+alpha
  expanded to RGBA. What to do with it is the caller's policy: `image_to_float_rgb`
  composites over white or drops it (training data, metrics), `keras_pbasr.upscale` keeps it.
- EXIF orientation is applied: the pixels come out as a viewer shows them. A malformed EXIF
  block is ignored (the pixels are returned unrotated) rather than hiding the image.
- Size limit: an image of more than `max_image_pixels()` pixels (default
  DEFAULT_MAX_IMAGE_PIXELS = 32 million; $PBASR_MAX_IMAGE_PIXELS or `max_pixels=` change it)
  is refused with `ImageTooLargeError`, from the header, before any pixel is decoded; so are
  Pillow's decompression-bomb errors. The default is sized to x4 upscaling, the package's
  largest use: about 315 bytes of memory per input pixel (the float32 x16 output buffer is
  192 of them), so 32 MP (a 6500x4900 photo) peaks near 10 GB.
- Errors name the file: `ImageNotFoundError` (also a FileNotFoundError) for a missing file,
  `ImageReadError` for an unreadable, corrupt or truncated one, `ImageTooLargeError` for one
  over the pixel limit; all are ValueErrors and `UnsupportedImageError`s.

`read_rgb(path, alpha)` is the same reader's pixels as float32 (H, W, 3) RGB in [0, 1]
(`image_to_float_rgb`), for training data and metrics.

Folders are listed one way (`find_image_files`, and on top of it `collect_inputs` for a file
or a folder of inputs and `images_by_stem` for folders paired by file stem), with one
recursion rule: a folder means the images in it; sub-folders are searched only with
`recursive=True` (`--recursive` in `pbasr upscale`, `blurmap` and `evaluate`).

Folder runs (`pbasr upscale`, `blurmap`, `evaluate`, the training data) share one policy,
`SkippedFiles`: a bad image is skipped with one line on stderr naming it and why, the run goes
on, a summary line counts the skipped files, and the command exits with status 1.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

# The image files the package lists in folders (lower-case suffixes).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALPHA_POLICIES = ("white", "drop")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
EXIF_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS_ENV = "PBASR_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 32_000_000
# PNG colour types that Pillow reduces to 8 bits at bit depth 16: RGB, gray+alpha, RGBA.
_PYPNG_COLOUR_TYPES = (2, 4, 6)


class UnsupportedImageError(ValueError):
    """A file is not an image this package can read or write faithfully."""


class ImageReadError(UnsupportedImageError):
    """An image file could not be read (unreadable, corrupt, truncated); the message names it."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """An image file does not exist; the message names it."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than `max_image_pixels()` (or is a decompression bomb)."""


def max_image_pixels() -> int:
    """The pixel limit of `read_image_array`: $PBASR_MAX_IMAGE_PIXELS, else
    DEFAULT_MAX_IMAGE_PIXELS.

    Example:
    >>> max_image_pixels() >= 1
    True
    """
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"${MAX_PIXELS_ENV} must be a positive number of pixels, got {text!r}")
    return value


def check_pixel_count(path: str | os.PathLike, width: int, height: int,
                      max_pixels: int | None = None) -> None:
    """Raises ImageTooLargeError when width x height exceeds the limit."""
    limit = max_image_pixels() if max_pixels is None else max_pixels
    if width * height > limit:
        raise ImageTooLargeError(
            f"{path}: {width}x{height} is {width * height:,} pixels, over the limit of "
            f"{limit:,} (about 315 bytes of memory per pixel for x4 upscaling); set "
            f"${MAX_PIXELS_ENV} to allow more"
        )


T = TypeVar("T")


class SkippedFiles:
    """The shared per-file policy of folder runs: skip a bad file, say so, count it.

    `attempt(path, action)` runs `action()`; an error of a type in `skip_types` (bad image
    files by default) prints one line `TASK: skipped PATH: REASON` and returns None.
    `summary(total)` is the closing line; `exit_code` is 1 when anything was skipped.

    Example:
    >>> skipped = SkippedFiles("upscale")
    >>> skipped.attempt("a.png", lambda: read_image_array("missing.png")) is None  # doctest: +SKIP
    True
    >>> skipped.exit_code  # doctest: +SKIP
    1
    """

    def __init__(self, task: str, skip_types: tuple[type[BaseException], ...] = (
            UnsupportedImageError,), stream=None):
        self.task = task
        self.skip_types = skip_types
        self.stream = stream
        self._lock = threading.Lock()
        self.files: list[tuple[str, str]] = []

    def skip(self, path: str | os.PathLike, reason: object) -> None:
        """Records one skipped file and prints its line."""
        reason = str(reason)
        # The reason usually starts with the path already; say it once.
        if reason.startswith(f"{path}: "):
            reason = reason[len(f"{path}: "):]
        with self._lock:
            self.files.append((str(path), reason))
        print(f"{self.task}: skipped {path}: {reason}", file=self.stream or sys.stderr,
              flush=True)

    def attempt(self, path: str | os.PathLike, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except self.skip_types as error:
            self.skip(path, error)
            return None

    def __len__(self) -> int:
        with self._lock:
            return len(self.files)

    def summary(self, total: int) -> str:
        count = len(self)
        if not count:
            return f"{self.task}: all {total} file(s) done"
        return f"{self.task}: skipped {count} of {total} file(s) (listed above); exit status 1"

    @property
    def exit_code(self) -> int:
        return 1 if len(self) else 0


def find_image_files(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Sorted files in `folder` (and its sub-folders when `recursive`) whose suffix is one of
    IMAGE_EXTENSIONS, in any letter case."""
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in Path(folder).glob(pattern)
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


def collect_inputs(path: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The images a command runs on: `[path]` for a file, the sorted image files of a folder
    (and of its sub-folders when `recursive`). Raises FileNotFoundError when `path` is
    neither, or when a folder holds no image.

    Example:
    >>> collect_inputs("photos", recursive=True)  # doctest: +SKIP
    [PosixPath('photos/a.png'), PosixPath('photos/trip/b.jpg')]
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither an image file nor a folder")
    files = find_image_files(path, recursive)
    if not files:
        where = "under" if recursive else "in"
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) {where} {path}")
    return files


def images_by_stem(folder: str | os.PathLike, recursive: bool = False) -> dict[str, Path]:
    """{file stem: path} of the image files in `folder` (sorted by path), for folders that are
    paired by stem (SR / HR / masks / LR). Two images with one stem are an error; an empty
    folder gives {}; a missing one raises FileNotFoundError.

    Example:
    >>> images_by_stem("data/HR")  # doctest: +SKIP
    {'0001': PosixPath('data/HR/0001.png')}
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    found: dict[str, Path] = {}
    for path in find_image_files(folder, recursive):
        if path.stem in found:
            raise ValueError(f"{folder}: two images share the stem {path.stem!r} "
                             f"({found[path.stem]}, {path})")
        found[path.stem] = path
    return found


def check_image_suffix(path: str | os.PathLike) -> None:
    """Raises UnsupportedImageError unless `path` ends with an image suffix this package
    writes (IMAGE_EXTENSIONS, any letter case); callers check outputs before inference.

    Example:
    >>> check_image_suffix("out.png")
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UnsupportedImageError(
            f"{path}: unknown image extension {path.suffix or '(none)'!r}; use one of "
            f"{', '.join(IMAGE_EXTENSIONS)}"
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


def read_image_array(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Reads an image file with its bit depth and channels (see the module policy).

    `max_pixels` overrides `max_image_pixels()`; larger images raise ImageTooLargeError
    before their pixels are decoded.

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
            check_pixel_count(path, *image.size, max_pixels=max_pixels)
            orientation = exif_orientation(image)
            header = png_header(path) if image.format == "PNG" else None
            if header is not None and header[0] == 16 and header[1] in _PYPNG_COLOUR_TYPES:
                array = _read_sixteen_bit_colour_png(path)
            else:
                image.load()
                array = _pillow_pixels(image)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{path}: refused as a decompression bomb ({error})") from error
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
        values = np.asarray(image, dtype=np.float32)
        finite = np.isfinite(values)
        if not finite.all():
            raise UnsupportedImageError(
                f"{values.size - np.count_nonzero(finite):,} NaN or infinite pixel value(s)"
            )
        return np.clip(values, 0.0, 1.0)
    if mode == "L":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode == "1":
        return np.asarray(image, dtype=np.uint8) * np.uint8(255)
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info)
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8).copy()


def check_float_pixels(image: np.ndarray, clip: bool = False, what: str = "image") -> np.ndarray:
    """Checks float pixels meant to be in [0, 1]; returns them (clipped with `clip=True`).

    NaN or infinite values raise ValueError with their count (they would spread through a
    network or a metric); values outside [0, 1] raise ValueError unless `clip` is True.
    Integer inputs never get here: they are scaled by their dtype's range.

    Example:
    >>> check_float_pixels(np.array([0.0, 1.5]), clip=True)
    array([0., 1.])
    """
    finite = np.isfinite(image)
    if not finite.all():
        bad = int(image.size - np.count_nonzero(finite))
        raise ValueError(f"{what}: {bad:,} NaN or infinite value(s) of {image.size:,}")
    if not image.size:
        return image
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        if not clip:
            outside = int(np.count_nonzero((image < 0.0) | (image > 1.0)))
            raise ValueError(
                f"{what}: {outside:,} value(s) outside [0, 1] (min {low:.4g}, max "
                f"{high:.4g}); float pixels must be in [0, 1]: rescale them, or pass "
                "clip=True (CLI: --clip) to clip"
            )
        image = np.clip(image, 0.0, 1.0)
    return image


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


def read_rgb(path: str | os.PathLike, alpha: str = "white") -> np.ndarray:
    """Reads an image file as float32 (H, W, 3) RGB in [0, 1]: `read_image_array`, then
    `image_to_float_rgb` (alpha composited over white, or dropped with alpha="drop").

    Raises ImageReadError naming the file when it is missing, unreadable, corrupt or truncated.

    Example:
    >>> read_rgb("photo.png").dtype  # doctest: +SKIP
    dtype('float32')
    """
    return image_to_float_rgb(read_image_array(path), alpha)
