"""The degradations' random draws against the reference recipes (shared/docs/reference.md
section 3): kernel sizes and sigma ranges, sinc probability, noise types and levels, JPEG
quality ranges and resize modes. The draws are recorded by wrapping the building blocks the
degradations call (run eagerly), over many seeds; each bound below is wide enough for sampling
noise (about 4 standard deviations) and narrow enough to catch a changed range or probability.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from keras_pbasr.data import degradations as deg  # noqa: E402
from keras_pbasr.data import kernels  # noqa: E402

pytestmark = pytest.mark.backend_agnostic


class Recorder:
    """Wraps module functions and records the values of chosen arguments of every call."""

    def __init__(self, monkeypatch):
        self.calls: dict[str, list] = {}
        self.sequence: list[tuple[str, tuple]] = []  # every call in order
        self._monkeypatch = monkeypatch

    def wrap(self, module, name: str, pick):
        original = getattr(module, name)
        self.calls[name] = []

        def wrapper(*args, **kwargs):
            values = tuple(_value(v) for v in pick(*args, **kwargs))
            self.calls[name].append(values)
            self.sequence.append((name, values))
            return original(*args, **kwargs)

        self._monkeypatch.setattr(module, name, wrapper)


def _value(x):
    return x if isinstance(x, (int, float, bool)) else np.asarray(x).item()


def _share(values, target) -> float:
    return float(np.mean([v == target for v in values]))


def _seeds(n: int, offset: int = 0):
    return [tf.constant([offset, i], tf.int64) for i in range(n)]


def test_realesrgan_config_is_the_x4plus_recipe():
    """reference.md section 3 (Real-ESRGAN options/train_realesrgan_x4plus.yml)."""
    c = deg.RealESRGANConfig()
    assert c.kernel_probabilities == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert (c.sinc_prob, c.sinc_prob2, c.final_sinc_prob) == (0.1, 0.1, 0.8)
    assert (c.blur_sigma, c.blur_sigma2) == ((0.2, 3.0), (0.2, 1.5))
    assert c.betag_range == c.betag_range2 == (0.5, 4.0)
    assert c.betap_range == c.betap_range2 == (1.0, 2.0)
    assert (c.resize_prob, c.resize_range) == ((0.2, 0.7, 0.1), (0.15, 1.5))
    assert (c.resize_prob2, c.resize_range2) == ((0.3, 0.4, 0.3), (0.3, 1.2))
    assert (c.gaussian_noise_prob, c.gaussian_noise_prob2) == (0.5, 0.5)
    assert (c.noise_range, c.noise_range2) == ((1.0, 30.0), (1.0, 25.0))
    assert (c.poisson_scale_range, c.poisson_scale_range2) == ((0.05, 3.0), (0.05, 2.5))
    assert (c.gray_noise_prob, c.gray_noise_prob2) == (0.4, 0.4)
    assert c.jpeg_range == c.jpeg_range2 == (30, 95)
    assert c.second_blur_prob == 0.8


def _kernel_draws(monkeypatch, n: int, order: int, offset: int):
    """realesrgan_kernel of the first or second order (the default config's settings, as
    realesrgan_degradation calls it) over n seeds in one tf.function: the returned kernels and
    the arguments of its Gaussian (iso, aniso) and sinc candidates, as numpy arrays."""
    captured = {"gaussian": [], "sinc": []}
    gaussian_kernel, sinc_kernel = kernels.gaussian_kernel, kernels.sinc_kernel

    def gaussian(grid, size, sx, sy=None, theta=0.0):
        args = (size, sx, sx if sy is None else sy, theta)
        captured["gaussian"].append(tf.stack([tf.cast(a, tf.float32) for a in args]))
        return gaussian_kernel(grid, size, sx, sy, theta)

    def sinc(grid, size, cutoff):
        captured["sinc"].append(tf.stack([tf.cast(size, tf.float32), cutoff]))
        return sinc_kernel(grid, size, cutoff)

    monkeypatch.setattr(kernels, "gaussian_kernel", gaussian)
    monkeypatch.setattr(kernels, "sinc_kernel", sinc)
    c = deg.RealESRGANConfig()

    @tf.function
    def draw(seed):
        for calls in captured.values():
            calls.clear()
        if order == 1:
            settings = (c.blur_sigma, c.betag_range, c.betap_range, c.sinc_prob)
        else:
            settings = (c.blur_sigma2, c.betag_range2, c.betap_range2, c.sinc_prob2)
        kernel = deg.realesrgan_kernel(deg.StatelessRng(seed), *settings,
                                       c.kernel_probabilities)
        return kernel, tf.stack(captured["gaussian"]), tf.stack(captured["sinc"])

    out = [draw(seed) for seed in _seeds(n, offset)]
    return tuple(np.stack([np.asarray(o[i]) for o in out]) for i in range(3))


def test_realesrgan_kernel_draws(monkeypatch):
    """size U{7, 9, ..., 21}; sigma U(0.2, 3); rotation U(-pi, pi); sinc with p 0.1, cutoff
    U(pi/3, pi) below size 13 else U(pi/5, pi); isotropic Gaussian with p 0.9 * 0.45."""
    n = 800
    kernel, gaussian, sinc = _kernel_draws(monkeypatch, n, order=1, offset=0)
    iso, aniso = gaussian[:, 0], gaussian[:, 1]  # (size, sigma_x, sigma_y, theta)
    sizes = iso[:, 0].astype(int)
    assert set(sizes) == set(range(7, 22, 2))
    assert all(0.08 < _share(sizes, s) < 0.17 for s in range(7, 22, 2))  # 1/8 each
    sigmas = np.concatenate([aniso[:, 1], aniso[:, 2]])
    assert 0.2 <= sigmas.min() < 0.22 and 2.98 < sigmas.max() <= 3.0
    assert abs(sigmas.mean() - 1.6) < 0.08  # U(0.2, 3): mean 1.6, sd 0.81 / sqrt(1600)
    thetas = aniso[:, 3]
    assert -math.pi <= thetas.min() < -3.05 and 3.05 < thetas.max() <= math.pi
    sinc_size, cutoff = sinc[:, 0, 0], sinc[:, 0, 1]
    small, large = cutoff[sinc_size < 13], cutoff[sinc_size >= 13]
    assert small.min() >= math.pi / 3 - 1e-6 and large.min() < math.pi / 3  # two ranges
    assert large.min() >= math.pi / 5 - 1e-6 and cutoff.max() <= math.pi + 1e-6
    # sinc has negative lobes, the other kernel types none: p(sinc) = 0.1 (sd 0.011).
    has_negative = (kernel < -1e-6).reshape(n, -1).any(axis=1)
    assert 0.06 < has_negative.mean() < 0.14
    iso_kernels = np.stack([
        np.asarray(kernels.gaussian_kernel(deg.REALESRGAN_KERNEL_GRID, int(s), float(x)))
        for s, x in iso[:200, :2]
    ])
    chosen = np.abs(kernel[:200] - iso_kernels).reshape(200, -1).max(axis=1) < 1e-7
    assert 0.3 < chosen.mean() < 0.51  # 0.405 (sd 0.035)


def test_realesrgan_second_order_sigma_range(monkeypatch):
    _, gaussian, _ = _kernel_draws(monkeypatch, 400, order=2, offset=1)
    sigmas = gaussian[:, 1, 1:3]
    assert 0.2 <= sigmas.min() < 0.21 and 1.49 < sigmas.max() <= 1.5


@pytest.fixture(scope="module")
def realesrgan_draws():
    """Noise, JPEG and resize draws of 60 full Real-ESRGAN degradations of a 32x32 patch, per
    degradation in call order (first order's draws before the second order's)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        rec = Recorder(monkeypatch)
        rec.wrap(deg, "jpeg", lambda image, quality: (quality,))
        rec.wrap(deg, "resize", lambda image, h, w, method: (method, tf.shape(image)[0], h))
        rec.wrap(deg, "gaussian_noise", lambda rng, image, sigma, gray: (sigma, gray))
        rec.wrap(deg, "poisson_noise", lambda rng, image, scale, gray: (scale, gray))
        hr = tf.constant(np.random.default_rng(0).random((32, 32, 3)), tf.float32)
        runs = []
        for seed in _seeds(60, offset=2):
            rec.sequence.clear()
            assert deg.realesrgan_degradation(hr, 4, seed).shape == (8, 8, 3)
            runs.append({name: [v for n, v in rec.sequence if n == name]
                         for name in ("jpeg", "resize")})
            runs[-1]["noise"] = [(n, v) for n, v in rec.sequence if n.endswith("_noise")]
        return runs


def test_realesrgan_noise_draws(realesrgan_draws):
    """Per order: Gaussian with p 0.5, sigma U(1, 30)/255 then U(1, 25)/255, else Poisson
    scale U(0.05, 3) then U(0.05, 2.5); gray noise with p 0.4."""
    assert all(len(run["noise"]) == 2 for run in realesrgan_draws)  # one noise per order
    for order, (sigma_max, scale_max) in enumerate(((30.0, 3.0), (25.0, 2.5))):
        draws = [run["noise"][order] for run in realesrgan_draws]
        sigmas = np.array([v[0] for n, v in draws if n == "gaussian_noise"]) * 255
        scales = np.array([v[0] for n, v in draws if n == "poisson_noise"])
        assert 0.3 < len(sigmas) / len(draws) < 0.7
        assert sigmas.min() >= 1.0 and sigma_max - 3 < sigmas.max() <= sigma_max
        assert scales.min() >= 0.05 and scale_max - 0.4 < scales.max() <= scale_max
    grays = [v[1] for run in realesrgan_draws for _, v in run["noise"]]
    assert 0.3 < np.mean(grays) < 0.5  # 120 draws: sd 0.045


def test_realesrgan_jpeg_and_resize_draws(realesrgan_draws):
    """Two JPEGs per degradation, each with quality U{30..95}; resize modes area / bilinear /
    bicubic equally likely; first-order factor in [0.15, 1.5]."""
    assert all(len(run["jpeg"]) == 2 and len(run["resize"]) == 3 for run in realesrgan_draws)
    for order in (0, 1):
        qualities = [run["jpeg"][order][0] for run in realesrgan_draws]
        assert all(isinstance(q, int) for q in qualities)
        assert 30 <= min(qualities) < 34 and 91 < max(qualities) <= 95
        assert abs(np.mean(qualities) - 62.5) < 8  # sd 19 / sqrt(60) = 2.4
    methods = [r[0] for run in realesrgan_draws for r in run["resize"]]
    assert all(0.22 < _share(methods, m) < 0.45 for m in range(3))
    for index in range(3):  # every resize of the chain draws its own mode
        assert {run["resize"][index][0] for run in realesrgan_draws} == {0, 1, 2}
    first = [out / size for _, size, out in (run["resize"][0] for run in realesrgan_draws)]
    assert min(first) >= 0.15 - 1 / 32 and max(first) <= 1.5
    assert min(first) < 0.3 and max(first) > 1.3  # both directions of the resize occur
    kept = sum(abs(f - 1.0) < 1e-9 for f in first) / len(first)
    assert kept < 0.25  # keep p 0.1


def test_bsrgan_draws(monkeypatch):
    """Blur kernels of size 7..25 (isotropic sigma <= 2 + 0.2 sf, anisotropic variance
    <= 4 + sf); noise level U{2..25}/255; JPEG U{30..95}: p 0.9 inside plus one final."""
    rec = Recorder(monkeypatch)
    rec.wrap(kernels, "gaussian_kernel", lambda grid, size, sx, sy=None, theta=0.0: (
        size, sx, sx if sy is None else sy))
    rec.wrap(deg, "jpeg", lambda image, quality: (quality,))
    rec.wrap(deg, "resize", lambda image, h, w, method: (method,))
    levels = []
    original_noise = deg._bsrgan_noise

    def noise(rng, image):
        out = original_noise(rng, image)
        levels.append(float(np.abs(np.asarray(out) - np.asarray(image)).max()))
        return out

    monkeypatch.setattr(deg, "_bsrgan_noise", noise)
    hr = tf.constant(np.full((32, 32, 3), 0.5), tf.float32)
    n = 80
    step_qualities, final_qualities = [], []
    for seed in _seeds(n, offset=3):
        rec.sequence.clear()
        assert deg.bsrgan_degradation(hr, 4, seed).shape == (8, 8, 3)
        qualities = [v[0] for name, v in rec.sequence if name == "jpeg"]
        step_qualities += qualities[:-1]  # the JPEG step (p 0.9), then the final JPEG
        final_qualities.append(qualities[-1])
    for qualities in (step_qualities, final_qualities):
        assert all(30 <= q <= 95 for q in qualities)
        assert min(qualities) < 36 and max(qualities) > 89
    assert n * 0.75 < len(step_qualities) <= n
    blur = rec.calls["gaussian_kernel"]
    sizes = [size for size, _, _ in blur]
    assert set(sizes) <= set(range(7, 26, 2)) and min(sizes) == 7 and max(sizes) == 25
    # sf = 4 (or 2 after the first halving): isotropic sigma <= 2.8, variance <= 8 (sd 2.83).
    assert max(max(sx, sy) for _, sx, sy in blur) <= math.sqrt(8.0) + 1e-5
    assert len(levels) == n  # the noise step runs once per degradation
    assert set(m for (m,) in rec.calls["resize"]) == {0, 1, 2}
