"""Synthetic blur-kept samples: defocus or motion blur rendered inside a region of a sharp image.

`synthesize_blur_kept(image, blurred_region, seed)` blurs the whole image with one random
kernel (disc or Gaussian for defocus, a line for motion), then blends it in with a soft
boundary: hr = soft * blurred + (1 - soft) * image, where soft is the region smoothed by a
Gaussian of `boundary_sigma` pixels. The returned mask is 1 - region (1 = sharp, 0 = blurred),
so these samples can feed the blur branch like labelled blur data.
`depth_like_region` generates a region when no real blur-map shapes are given: a smooth random
field plus a random vertical ramp (far = blurred), thresholded to blur 25-70% of the pixels.
"""

from __future__ import annotations

import math

import tensorflow as tf

from keras_pbasr.data import kernels
from keras_pbasr.data.degradations import StatelessRng, filter2d

SYNTHETIC_KERNEL_GRID = 33
SYNTHETIC_KINDS = ("disc", "gaussian", "motion")


def depth_like_region(height, width, seed, blurred_fraction=(0.25, 0.7)) -> tf.Tensor:
    """float32 (height, width, 1), 1 = blurred, from a smooth random 'depth' map."""
    rng = StatelessRng(seed)
    coarse = rng.normal((4, 4, 1))
    ramp = tf.reshape(tf.linspace(-1.0, 1.0, 64), (64, 1, 1)) * rng.uniform(-2.0, 2.0)
    field = tf.image.resize(coarse, (64, 64), method="bicubic") + ramp
    fraction = rng.uniform(*blurred_fraction)
    ordered = tf.sort(tf.reshape(field, [-1]), direction="DESCENDING")
    threshold = tf.gather(ordered, tf.cast(fraction * 64 * 64, tf.int32))
    field = tf.image.resize(field, tf.stack([height, width]), method="bilinear")
    return tf.cast(field > threshold, tf.float32)


def random_blur_kernel(rng: StatelessRng, kinds, defocus_radius, motion_length) -> tf.Tensor:
    """A disc, Gaussian or motion-line kernel on a 33 x 33 grid, kind drawn uniformly."""
    grid = SYNTHETIC_KERNEL_GRID
    limit = grid // 2
    radius = tf.minimum(rng.uniform(*defocus_radius), float(limit))
    length = tf.minimum(rng.uniform(*motion_length), float(2 * limit))
    theta = rng.uniform(0.0, math.pi)
    by_kind = {
        "disc": lambda: kernels.disc_kernel(grid, radius),
        # A Gaussian with sigma radius/2 blurs about as much as a disc of that radius.
        "gaussian": lambda: kernels.gaussian_kernel(grid, grid, radius / 2.0),
        "motion": lambda: kernels.motion_kernel(grid, length, theta),
    }
    candidates = tf.stack([by_kind[kind]() for kind in kinds])
    return tf.gather(candidates, rng.randint(0, len(kinds) - 1))


def synthesize_blur_kept(
    image: tf.Tensor,
    blurred_region: tf.Tensor,
    seed,
    kinds=SYNTHETIC_KINDS,
    defocus_radius=(2.0, 8.0),
    motion_length=(7.0, 25.0),
    boundary_sigma: float = 3.0,
) -> tuple[tf.Tensor, tf.Tensor]:
    """(image (H, W, 3), region (H, W, 1) with 1 = to blur) -> (hr, mask with 1 = sharp)."""
    rng = StatelessRng(seed)
    kernel = random_blur_kernel(rng, kinds, defocus_radius, motion_length)
    blurred = filter2d(image, kernel)
    smooth = kernels.gaussian_kernel(SYNTHETIC_KERNEL_GRID, SYNTHETIC_KERNEL_GRID,
                                     tf.constant(boundary_sigma, tf.float32))
    soft = tf.clip_by_value(filter2d(blurred_region, smooth), 0.0, 1.0)
    hr = tf.clip_by_value(soft * blurred + (1.0 - soft) * image, 0.0, 1.0)
    return hr, 1.0 - blurred_region
