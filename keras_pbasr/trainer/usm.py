"""Unsharp masking of the HR targets (Real-ESRGAN `USMSharp`) in keras.ops.

Real-ESRGAN computes the L1 and perceptual losses against a USM-sharpened GT, while the
discriminator's real sample stays unsharpened (docs/references.md, "Training recipe").
"""

from __future__ import annotations

import numpy as np
from keras import ops

USM_KERNEL_SIZE = 51
USM_SIGMA = 8.0  # OpenCV's sigma for ksize 51 and sigma 0: 0.3 * ((51 - 1) / 2 - 1) + 0.8


def gaussian_kernel_1d(size: int = USM_KERNEL_SIZE, sigma: float = USM_SIGMA) -> np.ndarray:
    """Normalised 1D Gaussian taps, as cv2.getGaussianKernel(size, sigma)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(x**2) / (2.0 * sigma**2))
    return (taps / taps.sum()).astype("float32")


def gaussian_blur(images, size: int = USM_KERNEL_SIZE, sigma: float = USM_SIGMA):
    """Separable Gaussian blur of (N, H, W, C) with reflect padding (BasicSR filter2D)."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    pad = size // 2
    if height is not None and width is not None and min(height, width) <= pad:
        raise ValueError(
            f"USM needs images larger than {pad} px on each side for reflect padding; "
            f"got {height}x{width}"
        )
    taps = gaussian_kernel_1d(size, sigma)
    vertical = np.tile(taps.reshape(size, 1, 1, 1), (1, 1, channels, 1))
    horizontal = np.tile(taps.reshape(1, size, 1, 1), (1, 1, channels, 1))
    x = ops.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    x = ops.depthwise_conv(x, ops.convert_to_tensor(vertical), padding="valid")
    return ops.depthwise_conv(x, ops.convert_to_tensor(horizontal), padding="valid")


def usm_sharpen(images, weight: float = 0.5, threshold: float = 10.0):
    """Real-ESRGAN USMSharp: sharpen where |img - blur| * 255 > threshold, softly masked."""
    blurred = gaussian_blur(images)
    residual = images - blurred
    mask = ops.cast(ops.abs(residual) * 255.0 > threshold, images.dtype)
    soft_mask = gaussian_blur(mask)
    sharp = ops.clip(images + weight * residual, 0.0, 1.0)
    return soft_mask * sharp + (1.0 - soft_mask) * images
