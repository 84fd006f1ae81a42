"""Per-sample numpy/scipy/Pillow versions of the BSRGAN and Real-ESRGAN degradations.

The reference that benchmarks/bench_data.py compares the tf.data pipeline against: the same
steps and probabilities as keras_pbasr.data.degradations, written the way the public numpy
code works (one image at a time), with the fast CPU tools available here: FFT convolution
(scipy.signal.fftconvolve on a mirror-padded image, like cv2.filter2D's DFT path for large
kernels; OpenCV is not installed), Pillow resizing and JPEG.
"""

from __future__ import annotations

import io as bytes_io
import math

import numpy as np
from PIL import Image
from scipy import signal, special

_PIL_METHODS = (Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)


def _grid(size: int):
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    return np.meshgrid(ax, ax)


def anisotropic_gaussian(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    xx, yy = _grid(size)
    along = np.cos(theta) * xx + np.sin(theta) * yy
    across = -np.sin(theta) * xx + np.cos(theta) * yy
    kernel = np.exp(-0.5 * ((along / sigma_x) ** 2 + (across / sigma_y) ** 2))
    return kernel / kernel.sum()


def _quadratic(size, sigma_x, sigma_y, theta):
    xx, yy = _grid(size)
    along = np.cos(theta) * xx + np.sin(theta) * yy
    across = -np.sin(theta) * xx + np.cos(theta) * yy
    return (along / sigma_x) ** 2 + (across / sigma_y) ** 2


def sinc(size: int, cutoff: float, pad_to: int = 21) -> np.ndarray:
    xx, yy = _grid(size)
    radius = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * special.j1(cutoff * radius) / (2 * np.pi * radius)
    kernel[size // 2, size // 2] = cutoff**2 / (4 * np.pi)
    kernel /= kernel.sum()
    pad = (pad_to - size) // 2
    return np.pad(kernel, pad)


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    pad = kernel.shape[0] // 2
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return signal.fftconvolve(padded, kernel[..., None], mode="valid", axes=(0, 1))


def resize(image: np.ndarray, height: int, width: int, method: int) -> np.ndarray:
    size = (max(width, 1), max(height, 1))
    channels = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32), "F").resize(
            size, _PIL_METHODS[method]))
        for c in range(3)
    ]
    return np.stack(channels, axis=-1)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = bytes_io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=int(quality))
    return np.asarray(Image.open(buffer), dtype=np.float32) / 255.0


# ----------------------------------------------------------------------------- BSRGAN


def _bsrgan_blur(rng, image, sf):
    size = 2 * rng.integers(2, 12) + 3
    if rng.random() < 0.5:
        l1, l2 = max(rng.random() * (4 + sf), 1e-3), max(rng.random() * (4 + sf), 1e-3)
        kernel = anisotropic_gaussian(size, math.sqrt(l1), math.sqrt(l2), rng.random() * np.pi)
    else:
        sigma = max(rng.random() * (2 + 0.2 * sf), 1e-3)
        kernel = anisotropic_gaussian(size, sigma, sigma, 0.0)
    return convolve(image, kernel)


def _bsrgan_noise(rng, image):
    level = rng.integers(2, 26) / 255.0
    pick = rng.random()
    if pick > 0.6:
        image = image + rng.normal(0, level, image.shape)
    elif pick < 0.4:
        image = image + rng.normal(0, level, (*image.shape[:2], 1))
    else:
        basis, _ = np.linalg.qr(rng.random((3, 3)))
        covariance = np.abs((25 / 255.0) ** 2 * basis.T @ np.diag(rng.random(3)) @ basis)
        image = image + rng.multivariate_normal(np.zeros(3), covariance, image.shape[:2],
                                                check_valid="ignore")
    return np.clip(image, 0, 1)


def bsrgan(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    lr_h, lr_w = hr.shape[0] // scale, hr.shape[1] // scale
    image = hr[: lr_h * scale, : lr_w * scale].astype(np.float64)
    sf = scale
    if scale == 4 and rng.random() < 0.25:
        image = np.clip(resize(image, image.shape[0] // 2, image.shape[1] // 2,
                               int(rng.integers(0, 3))), 0, 1)
        sf = 2
    order = list(rng.permutation(7))
    i2, i3 = order.index(2), order.index(3)
    if i2 > i3:
        order[i2], order[i3] = 3, 2
    for step in order:
        if step in (0, 1):
            image = _bsrgan_blur(rng, image, sf)
        elif step == 2:
            if rng.random() < 0.75:
                factor = rng.uniform(1, 2 * sf)
                image = resize(image, int(image.shape[0] / factor), int(image.shape[1] / factor),
                               int(rng.integers(0, 3)))
            else:
                sigma = rng.uniform(0.1, 0.6 * sf)
                xx, yy = _grid(25)
                shift = (sf - 1) * 0.5
                kernel = np.exp(-((xx + shift) ** 2 + (yy + shift) ** 2) / (2 * sigma**2))
                image = convolve(image, kernel / kernel.sum())[::sf, ::sf]
            image = np.clip(image, 0, 1)
        elif step == 3:
            image = np.clip(resize(image, lr_h, lr_w, int(rng.integers(0, 3))), 0, 1)
        elif step == 4:
            image = _bsrgan_noise(rng, image)
        elif step == 5 and rng.random() < 0.9:
            image = jpeg(image, rng.integers(30, 96))
    return jpeg(image, rng.integers(30, 96))


# ----------------------------------------------------------------------------- Real-ESRGAN


def _realesrgan_kernel(rng, sigma_range, sinc_prob):
    size = 2 * int(rng.integers(3, 11)) + 1
    if rng.random() < sinc_prob:
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        return sinc(size, cutoff)
    kind = rng.choice(6, p=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sigma_x = rng.uniform(*sigma_range)
    sigma_y, theta = (sigma_x, 0.0) if kind % 2 == 0 else (rng.uniform(*sigma_range),
                                                             rng.uniform(-np.pi, np.pi))
    q = _quadratic(size, sigma_x, sigma_y, theta)
    if kind < 2:
        kernel = np.exp(-0.5 * q)
    elif kind < 4:
        beta = rng.uniform(0.5, 1) if rng.random() < 0.5 else rng.uniform(1, 4)
        kernel = np.exp(-0.5 * q**beta)
    else:
        beta = rng.uniform(1, 1) if rng.random() < 0.5 else rng.uniform(1, 2)
        kernel = 1 / (q**beta + 1)
    kernel /= kernel.sum()
    return np.pad(kernel, (21 - size) // 2)


def _realesrgan_noise(rng, image, sigma_range, poisson_range):
    gray = rng.random() < 0.4
    if rng.random() < 0.5:
        shape = (*image.shape[:2], 1) if gray else image.shape
        image = image + rng.normal(0, rng.uniform(*sigma_range) / 255.0, shape)
    else:
        source = image @ np.array([0.299, 0.587, 0.114]) if gray else image
        quantized = np.clip(np.round(source * 255), 0, 255) / 255
        levels = 2 ** np.ceil(np.log2(len(np.unique(quantized))))
        noise = (rng.poisson(quantized * levels) / levels - quantized) * rng.uniform(*poisson_range)
        image = image + (noise[..., None] if gray else noise)
    return np.clip(image, 0, 1)


def _resize_factor(rng, probabilities, factor_range):
    choice = rng.choice(3, p=probabilities)
    return (rng.uniform(1, factor_range[1]), rng.uniform(factor_range[0], 1), 1.0)[choice]


def realesrgan(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    lr_h, lr_w = hr.shape[0] // scale, hr.shape[1] // scale
    kernel_1 = _realesrgan_kernel(rng, (0.2, 3.0), 0.1)
    kernel_2 = _realesrgan_kernel(rng, (0.2, 1.5), 0.1)
    final = sinc(21, rng.uniform(np.pi / 3, np.pi)) if rng.random() < 0.8 else None
    out = convolve(hr.astype(np.float64), kernel_1)
    factor = _resize_factor(rng, [0.2, 0.7, 0.1], (0.15, 1.5))
    out = resize(out, int(out.shape[0] * factor), int(out.shape[1] * factor),
                 int(rng.integers(0, 3)))
    out = jpeg(_realesrgan_noise(rng, out, (1, 30), (0.05, 3)), rng.integers(30, 96))
    if rng.random() < 0.8:
        out = convolve(out, kernel_2)
    factor = _resize_factor(rng, [0.3, 0.4, 0.3], (0.3, 1.2))
    out = resize(out, int(lr_h * factor), int(lr_w * factor), int(rng.integers(0, 3)))
    out = _realesrgan_noise(rng, out, (1, 25), (0.05, 2.5))
    quality = rng.integers(30, 96)
    if rng.random() < 0.5:  # resize back + sinc, then JPEG
        out = resize(out, lr_h, lr_w, int(rng.integers(0, 3)))
        out = jpeg(convolve(out, final) if final is not None else out, quality)
    else:
        out = resize(jpeg(out, quality), lr_h, lr_w, int(rng.integers(0, 3)))
        out = convolve(out, final) if final is not None else out
    return np.round(np.clip(out, 0, 1) * 255) / 255


def reference_patches(paths, count, patch, scale, degradation, rng) -> list:
    """`count` (lr, hr) patches, one at a time: Pillow read, random crop, flips, degradation."""
    degrade = bsrgan if degradation == "bsrgan" else realesrgan
    out = []
    for _ in range(count):
        path = paths[rng.integers(len(paths))]
        image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        top = rng.integers(0, image.shape[0] - patch + 1)
        left = rng.integers(0, image.shape[1] - patch + 1)
        hr = image[top:top + patch, left:left + patch]
        if rng.random() < 0.5:
            hr = hr[:, ::-1]
        if rng.random() < 0.5:
            hr = hr[::-1]
        if rng.random() < 0.5:
            hr = hr.transpose(1, 0, 2)
        out.append((degrade(np.ascontiguousarray(hr), scale, rng).astype(np.float32), hr))
    return out
