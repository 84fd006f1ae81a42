"""The fast exact samplers and FFT sizes inside the degradations (TensorFlow, run once)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from keras_pbasr.data import degradations as deg  # noqa: E402

pytestmark = pytest.mark.backend_agnostic


def _inverse_cdf_reference(codes: np.ndarray, levels: float, seed) -> np.ndarray:
    """#{k : CDF(k) < u} by np.searchsorted, with the same uniforms poisson_counts draws."""
    cdf = deg.poisson_cdf_table(levels).numpy()
    uniform = tf.random.stateless_uniform([codes.size], seed, dtype=tf.float64).numpy()
    return np.array([np.searchsorted(cdf[c], u, side="left")
                     for c, u in zip(codes.reshape(-1), uniform)]).reshape(codes.shape)


@pytest.mark.parametrize("levels", [256.0, 32.0, 1.0])
def test_poisson_counts_equal_inverse_cdf_sampling(rng, levels):
    # 256 uses the precomputed tables, the others build them in the graph.
    codes = rng.integers(0, 256, (30, 20, 3)).astype("int32")
    seed = tf.constant([3, 4], tf.int64)
    sample = tf.function(lambda c: deg.poisson_counts(c, tf.constant(levels), seed))
    out = sample(tf.constant(codes)).numpy()
    np.testing.assert_array_equal(out, _inverse_cdf_reference(codes, levels, seed))


def test_poisson_counts_have_poisson_moments():
    codes = np.repeat(np.array([0, 1, 5, 60, 200, 255], "int32"), 40_000)
    out = deg.poisson_counts(tf.constant(codes), 256.0, tf.constant([5, 6], tf.int64)).numpy()
    for code in np.unique(codes):
        rate = code / 255 * 256
        draws = out[codes == code]
        tolerance = 5 * np.sqrt(max(rate, 1e-3) / draws.size) + 1e-9
        assert abs(draws.mean() - rate) < tolerance, (code, draws.mean(), rate)
        # Variance equals the mean for a Poisson law (0 for rate 0).
        assert abs(draws.var() - rate) < 0.05 * rate + 1e-9, (code, draws.var(), rate)
    # P(X = 0) for rate 1.004 is exp(-1.004) = 0.366.
    assert abs(np.mean(out[codes == 1] == 0) - np.exp(-1 / 255 * 256)) < 0.01


def test_fast_fft_lengths_are_7_smooth_and_minimal():
    lengths = [deg.fast_fft_length(n).numpy() for n in (1, 23, 277, 404, 8192, 9001)]
    assert lengths == [1, 24, 280, 405, 8192, 9001]


def test_filter2d_with_padded_fft_equals_scipy(rng):
    ndimage = pytest.importorskip("scipy.ndimage")
    image = rng.random((101, 59, 3)).astype("float32")  # padded 121 x 79: FFTs at 125 x 80
    kernel = rng.random((21, 21)).astype("float32")
    kernel /= kernel.sum()
    out = deg.filter2d(tf.constant(image), tf.constant(kernel)).numpy()
    expected = ndimage.convolve(image, kernel[..., None], mode="mirror")
    np.testing.assert_allclose(out, expected, atol=2e-5)
