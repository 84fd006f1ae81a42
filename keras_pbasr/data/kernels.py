"""Blur kernels as small TensorFlow functions (usable inside a tf.data graph).

Every kernel lives on a fixed odd `grid` (so shapes stay static in the graph) and is zero
outside its effective odd size `size` (a tensor, e.g. drawn per sample); convolving with the
zero-embedded kernel equals convolving with the small one, reflect padding included. All
kernels are normalised to sum to 1. Coordinates: x runs along columns, y along rows, both
centred on the middle pixel.
"""

from __future__ import annotations

import math

import tensorflow as tf


def kernel_grid(grid: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(xx, yy) float32 (grid, grid) centred coordinates; grid must be odd."""
    if grid % 2 != 1:
        raise ValueError(f"kernel grid must be odd, got {grid}")
    axis = tf.range(-(grid // 2), grid // 2 + 1, dtype=tf.float32)
    return tf.meshgrid(axis, axis)


def _support(grid: int, size) -> tf.Tensor:
    """1 inside the centred size x size square, 0 outside."""
    xx, yy = kernel_grid(grid)
    half = tf.cast(size // 2, tf.float32)
    return tf.cast((tf.abs(xx) <= half) & (tf.abs(yy) <= half), tf.float32)


def _normalize(kernel: tf.Tensor) -> tf.Tensor:
    return kernel / tf.reduce_sum(kernel)


def quadratic_form(grid: int, sigma_x, sigma_y, theta) -> tf.Tensor:
    """x^T Sigma^-1 x with Sigma = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T."""
    xx, yy = kernel_grid(grid)
    cos, sin = tf.cos(theta), tf.sin(theta)
    along = cos * xx + sin * yy
    across = -sin * xx + cos * yy
    return tf.square(along / sigma_x) + tf.square(across / sigma_y)


def gaussian_kernel(grid: int, size, sigma_x, sigma_y=None, theta=0.0) -> tf.Tensor:
    """Anisotropic Gaussian exp(-q/2) (isotropic when sigma_y is None)."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    q = quadratic_form(grid, sigma_x, sigma_y, theta)
    return _normalize(tf.exp(-0.5 * q) * _support(grid, size))


def generalized_gaussian_kernel(grid: int, size, sigma_x, sigma_y, theta, beta) -> tf.Tensor:
    """Generalized Gaussian exp(-0.5 q^beta) (Real-ESRGAN)."""
    q = quadratic_form(grid, sigma_x, sigma_y, theta)
    return _normalize(tf.exp(-0.5 * tf.pow(q, beta)) * _support(grid, size))


def plateau_kernel(grid: int, size, sigma_x, sigma_y, theta, beta) -> tf.Tensor:
    """Plateau-shaped 1 / (q^beta + 1) (Real-ESRGAN)."""
    q = quadratic_form(grid, sigma_x, sigma_y, theta)
    return _normalize(1.0 / (tf.pow(q, beta) + 1.0) * _support(grid, size))


def sinc_kernel(grid: int, size, cutoff) -> tf.Tensor:
    """2D circular low-pass (sinc): cutoff * J1(cutoff r) / (2 pi r), centre cutoff^2 / (4 pi)."""
    xx, yy = kernel_grid(grid)
    radius = tf.sqrt(xx * xx + yy * yy)
    safe_radius = tf.where(radius > 0, radius, 1.0)
    values = cutoff * tf.math.special.bessel_j1(cutoff * safe_radius) / (2 * math.pi * safe_radius)
    values = tf.where(radius > 0, values, cutoff * cutoff / (4 * math.pi))
    return _normalize(values * _support(grid, size))


def pulse_kernel(grid: int) -> tf.Tensor:
    """The identity kernel (1 at the centre)."""
    xx, yy = kernel_grid(grid)
    return tf.cast((xx == 0) & (yy == 0), tf.float32)


def disc_kernel(grid: int, radius) -> tf.Tensor:
    """Anti-aliased uniform disc (defocus, circle of confusion) of the given radius in pixels."""
    xx, yy = kernel_grid(grid)
    coverage = tf.clip_by_value(radius + 0.5 - tf.sqrt(xx * xx + yy * yy), 0.0, 1.0)
    return _normalize(coverage)


def motion_kernel(grid: int, length, theta) -> tf.Tensor:
    """Anti-aliased straight line of `length` pixels through the centre at angle theta (motion)."""
    xx, yy = kernel_grid(grid)
    cos, sin = tf.cos(theta), tf.sin(theta)
    along = tf.clip_by_value(cos * xx + sin * yy, -length / 2, length / 2)
    distance = tf.sqrt(tf.square(xx - along * cos) + tf.square(yy - along * sin))
    return _normalize(tf.nn.relu(1.0 - distance))


def shifted_gaussian_kernel(grid: int, sigma, shift) -> tf.Tensor:
    """Isotropic Gaussian sampled at (x + shift, y + shift): BSRGAN's shift_pixel of fspecial,
    which realigns the grid before nearest decimation by sf (shift = (sf - 1) / 2)."""
    xx, yy = kernel_grid(grid)
    squared = tf.square(xx + shift) + tf.square(yy + shift)
    return _normalize(tf.exp(-squared / (2 * sigma * sigma)))
