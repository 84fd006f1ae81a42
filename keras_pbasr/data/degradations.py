"""BSRGAN and Real-ESRGAN LR synthesis with TensorFlow ops, per sample, inside a tf.data graph.

Both take an HR patch, float32 (H, W, 3) in [0, 1] with H and W multiples of `scale`, and a
stateless seed (shape [2] integers); they return the LR patch, float32 (H/scale, W/scale, 3)
in [0, 1]. The same seed gives the same LR. Randomness comes only from stateless ops keyed
from that seed (`StatelessRng`), so element order and parallelism do not change results.

Differences from the public PyTorch/numpy code (documented in docs/differences.md):
- Convolution is done with FFTs on a reflect-padded image (identical to a direct convolution
  with reflect/mirror boundaries up to float32 round-off).
- Bicubic is TensorFlow's Keys cubic (a = -0.5); OpenCV and PyTorch use a = -0.75.
- JPEG uses libjpeg through tf.image.adjust_jpeg_quality (Real-ESRGAN trains with DiffJPEG,
  BSRGAN with OpenCV; both are 4:2:0 JPEG).
- BSRGAN's channel-correlated noise draws the random orthogonal basis from a QR decomposition
  (the public code uses scipy.linalg.orth of a uniform matrix).
- Real-ESRGAN applies its ops per batch on the GPU; here each sample is degraded on its own.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_pbasr.data import kernels

RESIZE_METHODS = ("area", "bilinear", "bicubic")


class StatelessRng:
    """Draws a deterministic stream of stateless random values from one seed.

    Each draw folds a new counter value into the seed, so the k-th draw of a trace is always
    the same function of the seed (draws inside tf.cond branches included).
    """

    def __init__(self, seed):
        self._seed = tf.cast(seed, tf.int64)
        self._count = 0

    def seed(self) -> tf.Tensor:
        self._count += 1
        return tf.random.experimental.stateless_fold_in(self._seed, self._count)

    def uniform(self, low=0.0, high=1.0, shape=()) -> tf.Tensor:
        return tf.random.stateless_uniform(shape, self.seed(), low, high, dtype=tf.float32)

    def randint(self, low: int, high: int) -> tf.Tensor:
        """Uniform integer in [low, high] (both included), int32 scalar."""
        return tf.random.stateless_uniform((), self.seed(), low, high + 1, dtype=tf.int32)

    def normal(self, shape) -> tf.Tensor:
        return tf.random.stateless_normal(shape, self.seed(), dtype=tf.float32)

    def chance(self, probability: float) -> tf.Tensor:
        return self.uniform() < probability

    def categorical(self, probabilities) -> tf.Tensor:
        """Index i drawn with probability probabilities[i] (int32 scalar)."""
        edges = tf.constant(list(_cumulative(probabilities))[:-1], tf.float32)
        return tf.reduce_sum(tf.cast(self.uniform() >= edges, tf.int32))


def _cumulative(values):
    total = 0.0
    for value in values:
        total += value
        yield total


# ----------------------------------------------------------------------------- basic ops


def reflect_indices(length, pad: int) -> tf.Tensor:
    """Indices of a reflect ('mirror', edge not repeated) padding by `pad` of any length >= 1."""
    index = tf.range(-pad, length + pad)
    period = tf.maximum(2 * (length - 1), 1)
    index = tf.math.floormod(index, period)
    return tf.where(index >= length, period - index, index)


def reflect_pad(image: tf.Tensor, pad: int) -> tf.Tensor:
    """Reflect-pads H and W of (H, W, C) by `pad`, also when pad >= H or W (tf.pad cannot)."""
    shape = tf.shape(image)
    image = tf.gather(image, reflect_indices(shape[0], pad), axis=0)
    return tf.gather(image, reflect_indices(shape[1], pad), axis=1)


def _smooth_lengths(limit: int) -> np.ndarray:
    """Sorted integers 1..limit with no prime factor above 7 (fast FFT lengths)."""
    values = np.arange(1, limit + 1)
    rest = values.copy()
    for prime in (2, 3, 5, 7):
        while True:
            divisible = rest % prime == 0
            if not divisible.any():
                break
            rest = np.where(divisible, rest // prime, rest)
    return values[rest == 1]


# FFTs of lengths with large prime factors are 2-4x slower (e.g. 277 or 404 vs 280); the
# padded images after random resizes have arbitrary sizes. Longest fast length looked up: 8192.
_FAST_FFT_LENGTHS = _smooth_lengths(8192)


def fast_fft_length(length) -> tf.Tensor:
    """The smallest 7-smooth integer >= length (length itself beyond 8192), int32."""
    table = tf.constant(_FAST_FFT_LENGTHS, tf.int32)
    index = tf.searchsorted(table, tf.reshape(tf.cast(length, tf.int32), [1]))[0]
    return tf.where(index < len(_FAST_FFT_LENGTHS),
                    tf.gather(table, tf.minimum(index, len(_FAST_FFT_LENGTHS) - 1)),
                    tf.cast(length, tf.int32))


def filter2d(image: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Convolves (H, W, C) with an odd (K, K) kernel, reflect boundary, via FFT.

    A true convolution (kernel flipped), like scipy.ndimage.convolve; all symmetric kernels
    give the same result as a correlation.
    """
    size = kernel.shape[0]
    padded = reflect_pad(image, size // 2)
    padded_h, padded_w = tf.shape(padded)[0], tf.shape(padded)[1]
    # Zeros appended up to a fast FFT length leave the valid part unchanged (see below).
    fft_h, fft_w = fast_fft_length(padded_h), fast_fft_length(padded_w)
    channels_first = tf.pad(tf.transpose(padded, [2, 0, 1]),
                            [[0, 0], [0, fft_h - padded_h], [0, fft_w - padded_w]])
    kernel_plane = tf.pad(kernel, [[0, fft_h - size], [0, fft_w - size]])
    spectrum = tf.signal.rfft2d(channels_first) * tf.signal.rfft2d(kernel_plane)[None]
    circular = tf.signal.irfft2d(spectrum, fft_length=tf.stack([fft_h, fft_w]))
    # Outputs K-1 .. padded size - 1 did not wrap around; they are the H x W valid convolution.
    valid = circular[:, size - 1:padded_h, size - 1:padded_w]
    return tf.transpose(valid, [1, 2, 0])


def resize(image: tf.Tensor, height, width, method_index) -> tf.Tensor:
    """Resizes (H, W, C) to (height, width) with RESIZE_METHODS[method_index] (no antialias,
    like OpenCV and torch.nn.functional.interpolate)."""
    size = tf.stack([tf.maximum(height, 1), tf.maximum(width, 1)])

    def branch(method):
        def run():
            out = tf.image.resize(image, size, method=method, antialias=False)
            return tf.ensure_shape(tf.cast(out, tf.float32), [None, None, 3])

        return run

    return tf.switch_case(method_index, [branch(m) for m in RESIZE_METHODS])


def scaled_size(image: tf.Tensor, factor) -> tuple[tf.Tensor, tf.Tensor]:
    """floor(H * factor), floor(W * factor) as int32 (at least 1)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    new = tf.cast(tf.floor(shape * factor), tf.int32)
    return tf.maximum(new[0], 1), tf.maximum(new[1], 1)


def jpeg(image: tf.Tensor, quality) -> tf.Tensor:
    """JPEG round trip at an integer quality; input clipped to [0, 1] first."""
    image = tf.clip_by_value(image, 0.0, 1.0)
    out = tf.image.adjust_jpeg_quality(image, tf.cast(quality, tf.int32))
    return tf.ensure_shape(tf.cast(out, tf.float32), [None, None, 3])


def rgb_to_gray(image: tf.Tensor) -> tf.Tensor:
    """(H, W, 3) -> (H, W, 1) with 0.299 R + 0.587 G + 0.114 B."""
    return tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def gaussian_noise(rng: StatelessRng, image: tf.Tensor, sigma, gray) -> tf.Tensor:
    """Additive Gaussian noise with standard deviation sigma (in [0, 1] units)."""
    shape = tf.shape(image)
    noise = tf.cond(
        gray,
        lambda: tf.broadcast_to(rng.normal(tf.concat([shape[:2], [1]], 0)), shape),
        lambda: rng.normal(shape),
    )
    return image + sigma * noise


# Poisson(code / 255 * levels) for 8-bit codes and levels <= 256: counts above 511 have
# probability < 1e-40. The guide table splits [0, 1) into this many equal bins (a power of 2,
# so u * bins and cdf * bins are exact).
POISSON_MAX_COUNT = 512
POISSON_GUIDE_BINS = 1024


def poisson_cdf_table(levels) -> tf.Tensor:
    """(256, POISSON_MAX_COUNT) float64: row c is the CDF of Poisson(c / 255 * levels)."""
    counts = tf.range(POISSON_MAX_COUNT, dtype=tf.float64)
    rates = tf.range(256, dtype=tf.float64) / 255.0 * tf.cast(levels, tf.float64)
    log_pmf = (tf.math.xlogy(counts[None, :], rates[:, None]) - rates[:, None]
               - tf.math.lgamma(counts + 1.0)[None, :])
    return tf.cumsum(tf.exp(log_pmf), axis=1)


def poisson_guide_table(cdf: tf.Tensor) -> tf.Tensor:
    """Flat (256 * POISSON_GUIDE_BINS,) int32: for code c and bin j, low + high * 2^16 with
    low = #{k : cdf[c, k] < j / bins} and high the same at (j + 1) / bins."""
    bins = POISSON_GUIDE_BINS
    # cdf < j / bins <=> floor(cdf * bins) + 1 <= j; a histogram of that, summed up, counts.
    first_bin = tf.minimum(tf.cast(tf.floor(cdf * bins), tf.int32) + 1, bins + 1)
    offsets = tf.range(256)[:, None] * (bins + 2)
    histogram = tf.math.bincount(tf.reshape(offsets + first_bin, [-1]),
                                 minlength=256 * (bins + 2))
    guide = tf.cumsum(tf.reshape(histogram, [256, bins + 2])[:, :bins + 1], axis=1)
    # One gather per pixel then fetches both bin edges (counts are < 2^16).
    return tf.reshape(guide[:, :-1] + guide[:, 1:] * 65536, [-1])


@functools.cache
def _full_range_tables() -> tuple[np.ndarray, np.ndarray]:
    """The tables for levels = 256, the usual case (>128 distinct values), computed once."""
    with tf.init_scope():  # eagerly, also when first called while tracing a graph
        cdf = poisson_cdf_table(256.0)
        return cdf.numpy(), poisson_guide_table(cdf).numpy()


def poisson_counts(codes: tf.Tensor, levels, seed) -> tf.Tensor:
    """Exact Poisson(codes / 255 * levels) draws for int32 codes in 0..255, float32.

    Inverse-CDF sampling with a guide table (Chen & Asau): one uniform u per pixel, and the
    count is #{k : CDF(k) < u}. The table gives, per code and bin of u, the counts at both
    bin edges; where they differ a short binary search settles it. About 2x faster on CPU
    than tf.random.stateless_poisson, which is a per-sample rejection loop.
    """
    max_count = POISSON_MAX_COUNT
    full_cdf, full_edges = _full_range_tables()

    def computed():
        cdf = poisson_cdf_table(levels)
        return cdf, poisson_guide_table(cdf)

    cdf, edges = tf.cond(tf.equal(tf.cast(levels, tf.float32), 256.0),
                         lambda: (tf.constant(full_cdf), tf.constant(full_edges)), computed)
    bins = POISSON_GUIDE_BINS
    flat_codes = tf.reshape(codes, [-1])
    uniform = tf.random.stateless_uniform(tf.shape(flat_codes), seed, dtype=tf.float64)
    pair = tf.gather(edges, flat_codes * bins + tf.cast(tf.floor(uniform * bins), tf.int32))
    low, high = pair % 65536, pair // 65536
    unsettled = tf.where(low < high)[:, 0]
    search_low, search_high = tf.gather(low, unsettled), tf.gather(high, unsettled)
    search_u = tf.gather(uniform, unsettled)
    row_start = tf.gather(flat_codes, unsettled) * max_count
    flat_cdf = tf.reshape(cdf, [-1])
    for _ in range(max_count.bit_length() - 1):  # the interval is at most max_count wide
        middle = (search_low + search_high) // 2
        below = tf.gather(flat_cdf, row_start + middle) < search_u
        search_low = tf.where(below, middle + 1, search_low)
        search_high = tf.where(below, search_high, middle)
    counts = tf.tensor_scatter_nd_update(low, unsettled[:, None], search_low)
    return tf.reshape(tf.cast(counts, tf.float32), tf.shape(codes))


def poisson_noise(rng: StatelessRng, image: tf.Tensor, noise_scale, gray) -> tf.Tensor:
    """Real-ESRGAN's Poisson noise: photon counts at 2^ceil(log2(#levels)) levels, scaled."""
    source = tf.cond(gray, lambda: tf.tile(rgb_to_gray(image), [1, 1, 3]), lambda: image)
    codes = tf.cast(tf.clip_by_value(tf.round(source * 255.0), 0.0, 255.0), tf.int32)
    quantized = tf.cast(codes, tf.float32) / 255.0
    # The number of distinct 8-bit values (np.unique in the original).
    levels = tf.math.count_nonzero(tf.math.bincount(tf.reshape(codes, [-1]), minlength=256))
    levels = tf.pow(2.0, tf.math.ceil(tf.math.log(tf.cast(levels, tf.float32)) / math.log(2.0)))
    counts = poisson_counts(codes, levels, rng.seed())
    return image + (counts / levels - quantized) * noise_scale


# ----------------------------------------------------------------------------- BSRGAN

BSRGAN_KERNEL_GRID = 25


def bsrgan_blur_kernel(rng: StatelessRng, sf) -> tf.Tensor:
    """BSRGAN add_blur kernel: 50% anisotropic Gaussian (variances U(0, 4+sf), angle U(0, pi)),
    else isotropic with sigma U(0, 2+0.2 sf); size 2*randint(2, 11)+3 (7..25)."""
    sf = tf.cast(sf, tf.float32)
    size = 2 * rng.randint(2, 11) + 3
    # A variance or sigma of exactly 0 would divide by zero; 1e-3 is already a delta kernel.
    variance_1 = tf.maximum(rng.uniform() * (4.0 + sf), 1e-3)
    variance_2 = tf.maximum(rng.uniform() * (4.0 + sf), 1e-3)
    theta = rng.uniform() * math.pi
    sigma = tf.maximum(rng.uniform() * (2.0 + 0.2 * sf), 1e-3)
    anisotropic = kernels.gaussian_kernel(
        BSRGAN_KERNEL_GRID, size, tf.sqrt(variance_1), tf.sqrt(variance_2), theta
    )
    isotropic = kernels.gaussian_kernel(BSRGAN_KERNEL_GRID, size, sigma)
    return tf.where(rng.chance(0.5), anisotropic, isotropic)


def _bsrgan_noise(rng: StatelessRng, image: tf.Tensor) -> tf.Tensor:
    """Gaussian noise level U{2..25}/255: 40% colour, 40% gray, 20% channel-correlated."""
    level = tf.cast(rng.randint(2, 25), tf.float32) / 255.0
    shape = tf.shape(image)
    pick = rng.uniform()

    def colour():
        return rng.normal(shape) * level

    def gray():
        return tf.broadcast_to(rng.normal(tf.concat([shape[:2], [1]], 0)), shape) * level

    def correlated():
        # Covariance |L^2 U^T D U|, D = diag(U(0, 1)^3), U a random orthogonal basis, L = 25/255.
        basis, _ = tf.linalg.qr(rng.uniform(shape=(3, 3)))
        covariance = tf.abs((25.0 / 255.0) ** 2 * tf.transpose(basis) @ tf.linalg.diag(
            rng.uniform(shape=(3,))) @ basis)
        eigenvalues, eigenvectors = tf.linalg.eigh(covariance)
        factor = eigenvectors * tf.sqrt(tf.maximum(eigenvalues, 0.0))[None, :]
        samples = tf.reshape(rng.normal(shape), [-1, 3]) @ tf.transpose(factor)
        return tf.reshape(samples, shape)

    branch = tf.where(pick > 0.6, 0, tf.where(pick < 0.4, 1, 2))
    noise = tf.switch_case(branch, [colour, gray, correlated])
    return tf.clip_by_value(image + noise, 0.0, 1.0)


def _bsrgan_first_halving(rng: StatelessRng, image: tf.Tensor) -> tf.Tensor:
    """x4 only: halve the image first (50% random OpenCV-like interpolation, 50% MATLAB bicubic)."""
    height, width = scaled_size(image, 0.5)
    matlab_bicubic = tf.image.resize(image, tf.stack([height, width]), "bicubic", antialias=True)
    plain = resize(image, height, width, rng.randint(0, 2))
    return tf.clip_by_value(tf.where(rng.chance(0.5), plain, matlab_bicubic), 0.0, 1.0)


def bsrgan_degradation(hr: tf.Tensor, scale: int, seed) -> tf.Tensor:
    """The BSRGAN degradation (Zhang et al. 2021, degradation_bsrgan without the ISP step)."""
    rng = StatelessRng(seed)
    hr = tf.ensure_shape(tf.convert_to_tensor(hr, tf.float32), [None, None, 3])
    lr_h, lr_w = tf.shape(hr)[0] // scale, tf.shape(hr)[1] // scale
    image = hr[: lr_h * scale, : lr_w * scale]
    sf = tf.constant(scale, tf.int32)
    if scale == 4:
        halve = rng.chance(0.25)
        image = tf.cond(halve, lambda: _bsrgan_first_halving(rng, image), lambda: image)
        sf = tf.where(halve, 2, 4)
    # Random order of the 7 steps, with "downsample 2" (2) kept before "downsample 3" (3).
    order = tf.argsort(rng.uniform(shape=(7,)))
    swap = tf.argmax(tf.cast(order == 2, tf.int32)) > tf.argmax(tf.cast(order == 3, tf.int32))
    order = tf.where(swap & (order == 2), 3, tf.where(swap & (order == 3), 2, order))

    def step(index, current):
        # One body for all 7 steps (a while_loop traces it once); each step has its own seed.
        step_rng = StatelessRng(tf.random.experimental.stateless_fold_in(rng.seed(), index))
        h, w = tf.shape(current)[0], tf.shape(current)[1]
        # Index i of the random order is the i-th iteration's step (see `order`).
        return tf.switch_case(tf.gather(order, index), [
            _shaped(lambda: filter2d(current, bsrgan_blur_kernel(step_rng, sf))),
            _shaped(lambda: filter2d(current, bsrgan_blur_kernel(step_rng, sf))),
            _shaped(lambda: _bsrgan_downsample_2(step_rng, current, sf)),
            _shaped(lambda: tf.clip_by_value(
                resize(current, lr_h, lr_w, step_rng.randint(0, 2)), 0.0, 1.0)),
            _shaped(lambda: _bsrgan_noise(step_rng, current)),
            _shaped(lambda: tf.cond(step_rng.chance(0.9),
                                    lambda: jpeg(current, step_rng.randint(30, 95)),
                                    lambda: current)),
            _shaped(lambda: tf.reshape(current, tf.stack([h, w, 3]))),  # ISP step: no ISP model
        ])

    _, image = tf.while_loop(
        lambda index, _: index < 7,
        lambda index, current: (index + 1, step(index, current)),
        (tf.constant(0), image),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None, 3])),
    )
    lr = jpeg(image, rng.randint(30, 95))
    return tf.ensure_shape(lr, [None, None, 3])


def _bsrgan_downsample_2(rng: StatelessRng, image: tf.Tensor, sf) -> tf.Tensor:
    """75%: resize by 1 / U(1, 2 sf) (random interpolation); 25%: shifted Gaussian blur then
    nearest decimation by sf."""
    sf_float = tf.cast(sf, tf.float32)

    def resize_random():
        height, width = scaled_size(image, 1.0 / rng.uniform(1.0, 2.0 * sf_float))
        return resize(image, height, width, rng.randint(0, 2))

    def blur_decimate():
        sigma = rng.uniform(0.1, 0.6 * sf_float)
        kernel = kernels.shifted_gaussian_kernel(BSRGAN_KERNEL_GRID, sigma, (sf_float - 1.0) * 0.5)
        return filter2d(image, kernel)[::sf, ::sf]

    out = tf.cond(rng.chance(0.75), resize_random, blur_decimate)
    return tf.clip_by_value(out, 0.0, 1.0)


def _shaped(fn):
    def run():
        return tf.ensure_shape(fn(), [None, None, 3])

    return run


# ----------------------------------------------------------------------------- Real-ESRGAN


@dataclass(frozen=True)
class RealESRGANConfig:
    """Real-ESRGAN x4plus second-order degradation settings (options/train_realesrgan_x4plus)."""

    kernel_probabilities: tuple = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple = (0.2, 3.0)
    betag_range: tuple = (0.5, 4.0)
    betap_range: tuple = (1.0, 2.0)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple = (0.2, 1.5)
    betag_range2: tuple = (0.5, 4.0)
    betap_range2: tuple = (1.0, 2.0)
    final_sinc_prob: float = 0.8
    resize_prob: tuple = (0.2, 0.7, 0.1)
    resize_range: tuple = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple = (1.0, 30.0)
    poisson_scale_range: tuple = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple = (30, 95)
    second_blur_prob: float = 0.8
    resize_prob2: tuple = (0.3, 0.4, 0.3)
    resize_range2: tuple = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple = (1.0, 25.0)
    poisson_scale_range2: tuple = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple = (30, 95)


REALESRGAN_KERNEL_GRID = 21


def _beta(rng: StatelessRng, beta_range) -> tf.Tensor:
    low, high = beta_range
    return tf.where(rng.chance(0.5), rng.uniform(low, 1.0), rng.uniform(1.0, high))


def realesrgan_kernel(
    rng: StatelessRng, sigma_range, betag_range, betap_range, sinc_prob, probabilities
) -> tf.Tensor:
    """Real-ESRGAN's random first/second-order kernel on a 21 x 21 grid: size U{7, 9, ..., 21};
    with sinc_prob a sinc (cutoff U(pi/3, pi) below size 13, else U(pi/5, pi)), otherwise one of
    iso/aniso Gaussian, generalized, plateau with the given probabilities."""
    grid = REALESRGAN_KERNEL_GRID
    size = 2 * rng.randint(3, 10) + 1
    cutoff = tf.where(
        size < 13, rng.uniform(math.pi / 3, math.pi), rng.uniform(math.pi / 5, math.pi)
    )
    sinc = kernels.sinc_kernel(grid, size, cutoff)
    sigma_x = rng.uniform(*sigma_range)
    sigma_y = rng.uniform(*sigma_range)
    theta = rng.uniform(-math.pi, math.pi)
    beta_g, beta_p = _beta(rng, betag_range), _beta(rng, betap_range)
    candidates = tf.stack([
        kernels.gaussian_kernel(grid, size, sigma_x),
        kernels.gaussian_kernel(grid, size, sigma_x, sigma_y, theta),
        kernels.generalized_gaussian_kernel(grid, size, sigma_x, sigma_x, 0.0, beta_g),
        kernels.generalized_gaussian_kernel(grid, size, sigma_x, sigma_y, theta, beta_g),
        kernels.plateau_kernel(grid, size, sigma_x, sigma_x, 0.0, beta_p),
        kernels.plateau_kernel(grid, size, sigma_x, sigma_y, theta, beta_p),
    ])
    mixed = tf.gather(candidates, rng.categorical(probabilities))
    return tf.where(rng.chance(sinc_prob), sinc, mixed)


def _random_resize_factor(rng: StatelessRng, probabilities, factor_range) -> tf.Tensor:
    """Up (U(1, high)), down (U(low, 1)) or keep, with probabilities (up, down, keep)."""
    low, high = factor_range
    choice = rng.categorical(probabilities)
    return tf.gather(tf.stack([rng.uniform(1.0, high), rng.uniform(low, 1.0), 1.0]), choice)


def _realesrgan_noise(rng, image, gaussian_prob, sigma_range, poisson_range, gray_prob):
    gray = rng.chance(gray_prob)
    sigma = rng.uniform(*sigma_range) / 255.0
    poisson_scale = rng.uniform(*poisson_range)
    out = tf.cond(
        rng.chance(gaussian_prob),
        lambda: gaussian_noise(rng, image, sigma, gray),
        lambda: poisson_noise(rng, image, poisson_scale, gray),
    )
    return tf.clip_by_value(out, 0.0, 1.0)


def realesrgan_degradation(
    hr: tf.Tensor, scale: int, seed, config: RealESRGANConfig | None = None
) -> tf.Tensor:
    """The Real-ESRGAN second-order degradation (Wang et al. 2021, RealESRGANModel.feed_data)."""
    c = config or RealESRGANConfig()
    rng = StatelessRng(seed)
    hr = tf.ensure_shape(tf.convert_to_tensor(hr, tf.float32), [None, None, 3])
    lr_h, lr_w = tf.shape(hr)[0] // scale, tf.shape(hr)[1] // scale
    kernel_1 = realesrgan_kernel(
        rng, c.blur_sigma, c.betag_range, c.betap_range, c.sinc_prob, c.kernel_probabilities
    )
    kernel_2 = realesrgan_kernel(
        rng, c.blur_sigma2, c.betag_range2, c.betap_range2, c.sinc_prob2, c.kernel_probabilities
    )
    grid = REALESRGAN_KERNEL_GRID
    final_sinc = tf.where(
        rng.chance(c.final_sinc_prob),
        kernels.sinc_kernel(grid, grid, rng.uniform(math.pi / 3, math.pi)),
        kernels.pulse_kernel(grid),
    )

    # First degradation.
    out = filter2d(hr, kernel_1)
    height, width = scaled_size(out, _random_resize_factor(rng, c.resize_prob, c.resize_range))
    out = resize(out, height, width, rng.randint(0, 2))
    out = _realesrgan_noise(
        rng, out, c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range, c.gray_noise_prob
    )
    out = jpeg(out, rng.randint(*c.jpeg_range))

    # Second degradation.
    current = out
    out = tf.cond(rng.chance(c.second_blur_prob), lambda: filter2d(current, kernel_2),
                  lambda: current)
    factor = _random_resize_factor(rng, c.resize_prob2, c.resize_range2)
    height = tf.cast(tf.cast(lr_h, tf.float32) * factor, tf.int32)
    width = tf.cast(tf.cast(lr_w, tf.float32) * factor, tf.int32)
    out = resize(out, height, width, rng.randint(0, 2))
    out = _realesrgan_noise(
        rng, out, c.gaussian_noise_prob2, c.noise_range2, c.poisson_scale_range2,
        c.gray_noise_prob2,
    )

    # Final: [resize back + sinc, JPEG] or [JPEG, resize back + sinc], 50/50.
    quality = rng.randint(*c.jpeg_range2)
    jpeg_first = rng.chance(0.5)
    current = out
    out = tf.cond(jpeg_first, lambda: jpeg(current, quality), lambda: current)
    out = filter2d(resize(out, lr_h, lr_w, rng.randint(0, 2)), final_sinc)
    current = out
    out = tf.cond(jpeg_first, lambda: current, lambda: jpeg(current, quality))
    out = tf.round(tf.clip_by_value(out, 0.0, 1.0) * 255.0) / 255.0
    return tf.ensure_shape(out, [None, None, 3])


DEGRADATIONS = {"bsrgan": bsrgan_degradation, "realesrgan": realesrgan_degradation}


def degrade(hr: tf.Tensor, scale: int, seed, degradation: str = "bsrgan") -> tf.Tensor:
    """Dispatches to bsrgan_degradation or realesrgan_degradation by name."""
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation must be one of {sorted(DEGRADATIONS)}, got {degradation!r}")
    return DEGRADATIONS[degradation](hr, scale, seed)
