"""Blur maps for images that have none: a training-free estimator and a learned-detector hook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from keras_pbasr.blurmap.sharpness import (
    LBP_THRESHOLD,
    WINDOW_RADII,
    guided_filter,
    lbp_sharpness,
    otsu_threshold,
)
from keras_pbasr.utils.image_files import read_image_array

# Otsu's threshold is clamped to this range of LBP sharpness so that an image that is sharp
# (or blurred) everywhere is not split in two: on the CUHK photos Otsu lands in 0.06..0.22.
THRESHOLD_RANGE = (0.06, 0.25)
# The LBP measure looks at one-pixel differences, so it is computed at a bounded working size:
# blur extents in pixels grow with resolution, and the cost stays bounded.
MAX_SIDE = 1024


@dataclass(frozen=True)
class BlurMap:
    """Result of `estimate`.

    sharpness: float32 (H, W) soft map in [0, 1], 1 = sharp, 0.5 at the decision threshold.
    mask: uint8 (H, W), 0 = blurred, 255 = sharp (the ReBlurSR convention).
    """

    sharpness: np.ndarray
    mask: np.ndarray

    @property
    def blurred_fraction(self) -> float:
        return float((self.mask == 0).mean())


def load_rgb(image) -> np.ndarray:
    """Path, PIL image or array -> float64 (H, W, 3) RGB in [0, 1] (alpha dropped, grey
    replicated, 16-bit scaled by 65535). Paths are read with the package's one reader
    (`keras_pbasr.utils.image_files.read_image_array`, EXIF orientation applied)."""
    if isinstance(image, (str, Path)):
        image = read_image_array(image)
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(image, np.float64) / 65535.0
        else:
            arr = np.asarray(image.convert("RGB"), np.float64) / 255.0
    else:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr / 255.0
        elif arr.dtype == np.uint16:
            arr = arr / 65535.0
        else:
            arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.clip(arr[..., :3], 0.0, 1.0)


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float (H, W) map to (h, w)."""
    h, w = size
    return np.asarray(
        Image.fromarray(x.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR),
        np.float64,
    )


class KerasBlurDetector:
    """A learned blur detector for `estimate`: any Keras model mapping (1, H, W, 3) RGB in [0, 1]
    to (1, H, W, 1) sharpness probabilities (1 = sharp). No pretrained detector ships with
    keras_pbasr; train one on (image, mask) pairs from `keras_pbasr.data`.

    Example:
    >>> detector = KerasBlurDetector("my_detector.keras", size_multiple=16)  # doctest: +SKIP
    >>> keras_pbasr.blurmap.estimate("photo.jpg", detector=detector).mask  # doctest: +SKIP
    """

    def __init__(self, model, size_multiple: int = 1, threshold: float = 0.5):
        import keras

        if isinstance(model, (str, Path)):
            if not Path(model).is_file():
                raise FileNotFoundError(f"blur detector model file {model} does not exist")
            model = keras.saving.load_model(model)
        self.model = model
        self.size_multiple = int(size_multiple)
        self.threshold = float(threshold)

    def sharpness(self, rgb: np.ndarray) -> np.ndarray:
        import keras

        h, w = rgb.shape[:2]
        m = self.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        x = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        y = keras.ops.convert_to_numpy(self.model(x[None].astype("float32"), training=False))
        if y.ndim != 4 or y.shape[-1] != 1:
            raise ValueError(f"a blur detector must return (1, H, W, 1), got {y.shape}")
        return np.clip(y[0, :h, :w, 0].astype(np.float64), 0.0, 1.0)


def estimate(
    image,
    *,
    detector: KerasBlurDetector | None = None,
    threshold: float | None = None,
    lbp_threshold: float = LBP_THRESHOLD,
    window_radii: tuple[int, ...] = WINDOW_RADII,
    refine_radius: int = 8,
    refine_eps: float = 1e-2,
    max_side: int = MAX_SIDE,
) -> BlurMap:
    """Estimates where an image is blurred (defocus or motion).

    Without a detector this is the training-free LBP sharpness of Yi & Eramian (IEEE TIP 2016,
    "LBP-based segmentation of defocus blur") at three window sizes, refined edge-aware with
    the guided filter of He et al. (ECCV 2010) in place of the paper's matting, and split by
    Otsu's threshold clamped to THRESHOLD_RANGE (or a fixed `threshold` on the LBP sharpness).
    With `detector`, its probabilities are the soft map and `detector.threshold` splits them.

    Args:
        image: a path, PIL image or (H, W[, C]) array (uint8, uint16 or float in [0, 1]).

    Returns:
        BlurMap with the soft sharpness map and the binary mask (0 = blurred, 255 = sharp).

    Example:
    >>> result = estimate("photo.jpg")  # doctest: +SKIP
    >>> result.blurred_fraction  # doctest: +SKIP
    """
    rgb = load_rgb(image)
    h, w = rgb.shape[:2]
    if min(h, w) < 8:
        raise ValueError(f"image of {h}x{w} px is too small for blur estimation (min 8x8)")
    gray = rgb @ np.array([0.299, 0.587, 0.114])

    if detector is not None:
        soft = detector.sharpness(rgb)
        mask = soft > detector.threshold
        return BlurMap(soft.astype(np.float32), (mask * 255).astype(np.uint8))

    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        small = (max(8, round(h * scale)), max(8, round(w * scale)))
        work_gray = _resize(gray, small)
        sharpness = _resize(lbp_sharpness(work_gray, lbp_threshold, window_radii), (h, w))
    else:
        sharpness = lbp_sharpness(gray, lbp_threshold, window_radii)
    radius = max(1, round(refine_radius / scale))
    refined = np.clip(guided_filter(gray, sharpness, radius, refine_eps), 0.0, 1.0)

    if threshold is None:
        low, high = THRESHOLD_RANGE
        threshold = min(max(otsu_threshold(refined), low), high)
    mask = refined > threshold
    # Calibrated soft map: 0.5 at the threshold, saturating at twice it.
    soft = np.clip(0.5 * refined / threshold, 0.0, 1.0)
    return BlurMap(soft.astype(np.float32), (mask * 255).astype(np.uint8))
