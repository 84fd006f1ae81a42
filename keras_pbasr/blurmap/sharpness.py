"""Pure numpy pieces of the blur-map estimator: box filters, LBP sharpness, guided filter, Otsu.

The sharpness measure is the LBP-based defocus-blur metric of
X. Yi and M. Eramian, "LBP-based segmentation of defocus blur", IEEE TIP 25(4), 2016:
in a local window, the fraction of pixels whose rotation-invariant uniform LBP(8, 1) code,
computed with a small intensity threshold, is one of 6, 7, 8 or 9 (9 = non-uniform). Blurred
regions are flat at the scale of one pixel, so few neighbours differ by more than the threshold.
"""

from __future__ import annotations

import numpy as np

# Yi & Eramian's threshold on neighbour-minus-centre differences, for grey levels in [0, 1].
LBP_THRESHOLD = 0.016
# Window radii of the three scales (windows 11, 15 and 21 px, as in the paper).
WINDOW_RADII = (5, 7, 10)


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window around each pixel, edges replicated (summed-area table)."""
    k = 2 * radius + 1
    padded = np.pad(x, ((radius + 1, radius), (radius + 1, radius)), mode="edge")
    table = padded.cumsum(0).cumsum(1)
    total = table[k:, k:] - table[:-k, k:] - table[k:, :-k] + table[:-k, :-k]
    return total / (k * k)


def _bilinear_neighbour(padded: np.ndarray, dy: float, dx: float, shape: tuple[int, int]):
    """The image sampled at offset (dy, dx) for every pixel; `padded` has a 2-pixel border."""
    h, w = shape
    y0, x0 = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = dy - y0, dx - x0
    ys, xs = 2 + y0, 2 + x0
    top_left = padded[ys : ys + h, xs : xs + w]
    top_right = padded[ys : ys + h, xs + 1 : xs + 1 + w]
    bottom_left = padded[ys + 1 : ys + 1 + h, xs : xs + w]
    bottom_right = padded[ys + 1 : ys + 1 + h, xs + 1 : xs + 1 + w]
    return (
        (1 - fy) * (1 - fx) * top_left
        + (1 - fy) * fx * top_right
        + fy * (1 - fx) * bottom_left
        + fy * fx * bottom_right
    )


def lbp_riu2_codes(gray: np.ndarray, threshold: float = LBP_THRESHOLD) -> np.ndarray:
    """Rotation-invariant uniform LBP(P=8, R=1) codes in 0..9 (9 = non-uniform pattern).

    A neighbour's bit is set when it exceeds the centre by at least `threshold`.
    """
    gray = np.asarray(gray, np.float64)
    padded = np.pad(gray, 2, mode="edge")
    angles = 2 * np.pi * np.arange(8) / 8
    # Rounded offsets keep the axis-aligned neighbours exact (no interpolation).
    bits = np.stack(
        [
            _bilinear_neighbour(
                padded, -round(np.sin(a), 12), round(np.cos(a), 12), gray.shape
            ) - gray >= threshold
            for a in angles
        ]
    )
    ones = bits.sum(axis=0)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0)
    return np.where(transitions <= 2, ones, 9)


def lbp_sharpness(
    gray: np.ndarray,
    threshold: float = LBP_THRESHOLD,
    radii: tuple[int, ...] = WINDOW_RADII,
) -> np.ndarray:
    """Multi-scale LBP sharpness in [0, 1]: the mean over scales of the local fraction of
    sharp LBP patterns (codes 6..9). High = sharp."""
    codes = lbp_riu2_codes(gray, threshold)
    sharp_pattern = (codes >= 6).astype(np.float64)
    return np.mean([box_mean(sharp_pattern, r) for r in radii], axis=0)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He, Sun and Tang's guided filter (ECCV 2010) with a grey guide: edge-aware smoothing
    of `src` that snaps the map to the image's edges."""
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (maximum between-class variance)."""
    hist, edges = np.histogram(np.clip(values, 0, 1), bins=bins, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = hist.cumsum()
    weight_high = weight_low[-1] - weight_low
    mass_low = (hist * centres).cumsum()
    mean_total = mass_low[-1] / weight_low[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_total * weight_low - mass_low) ** 2 / (weight_low * weight_high)
    between[~np.isfinite(between)] = -1
    return float(centres[int(np.argmax(between))])
