"""Independent numpy (and torch for the luma) versions of PSNR, SSIM and GMSD with pyiqa's
conventions (shared/docs/reference.md section 6), for calibration pairs without published
values. They reproduce values.json on I03/I04 (tests/test_metrics_parity.py checks it).
Images are (N, H, W, 3) float32 RGB in [0, 1]; results are (N,) float64.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def luma(rgb: np.ndarray) -> np.ndarray:
    """pyiqa's rgb2yiq luma: a float32 torch matmul; (N, H, W, 3) -> (N, H, W) float32."""
    return (torch.from_numpy(np.ascontiguousarray(rgb)) @ YIQ.t())[..., 0].numpy()


def luma_255(rgb: np.ndarray) -> np.ndarray:
    """Luma * 255 (float32), rounded half to even, as float64."""
    return np.round(luma(rgb) * np.float32(255)).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """10 log10(1 / (mse + 1e-8)) per image, on whatever channels a and b have."""
    mse = np.mean((a.astype(np.float64) - b) ** 2, axis=tuple(range(1, a.ndim)))
    return 10 * np.log10(1 / (mse + 1e-8))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 2-D Gaussian, rounded to float32 like pyiqa's fspecial."""
    x = np.arange(size) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    w = np.outer(g, g)
    return (w / w.sum()).astype(np.float32).astype(np.float64)


def _valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    r = window.shape[0] // 2
    return ndimage.correlate(x, window, mode="constant")[r:-r, r:-r]


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM on rounded luma*255: 'valid' 11x11 Gaussian maps, cs clipped at 0 (pyiqa)."""
    w = gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for x, y in zip(luma_255(a), luma_255(b)):
        mx, my = _valid(x, w), _valid(y, w)
        sxx = _valid(x * x, w) - mx**2
        syy = _valid(y * y, w) - my**2
        sxy = _valid(x * y, w) - mx * my
        cs = np.maximum((2 * sxy + c2) / (sxx + syy + c2), 0)
        scores.append(np.mean((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs))
    return np.array(scores)


def gmsd(a: np.ndarray, b: np.ndarray, t: float = 170.0) -> np.ndarray:
    """GMSD on rounded luma*255: 2x2 mean pool, Prewitt/3 gradients (zero pad 1), unbiased std
    of the gradient-magnitude similarity map."""
    dx = np.array([[1, 0, -1]] * 3, np.float64) / 3
    dy = dx.T.copy()
    scores = []
    for x, y in zip(luma_255(a), luma_255(b)):
        magnitudes = []
        for img in (x, y):
            h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
            pooled = img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            gx = ndimage.correlate(pooled, dx, mode="constant")
            gy = ndimage.correlate(pooled, dy, mode="constant")
            magnitudes.append(np.sqrt(gx**2 + gy**2 + 1e-12))
        g1, g2 = magnitudes
        scores.append(np.std((2 * g1 * g2 + t) / (g1**2 + g2**2 + t), ddof=1))
    return np.array(scores)
