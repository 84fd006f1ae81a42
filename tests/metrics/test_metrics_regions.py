"""Region-restricted metrics: the invariants of reference.md section 6, and the small pure
functions the metrics are built from."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
from torch_reference import iqa

from keras_pbasr import metrics
from keras_pbasr.metrics import functional, regions, resize
from keras_pbasr.metrics.color import rgb_to_luma

# MS-SSIM needs >= 161 px for its 5 scales, VIF >= 65; the other metrics get small images.
SIZES = {"ms_ssim": 168, "vif": 72}
SMALL = 48
SQUARE = (slice(14, 34), slice(10, 30))  # the sharp square, in units of size / 48


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64)


@functools.lru_cache(maxsize=4)
def make_pair(size: int):
    """SR, HR (1, size, size, 3) and a mask with a sharp square inside a blurred frame."""
    rng = np.random.default_rng(7)
    # Smooth structure plus noise, so every metric is far from its ideal value.
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.5 + 0.3 * np.sin(6 * xx + 3 * yy)[..., None] * np.array([1.0, 0.8, 0.6])
    hr = np.clip(base + 0.05 * rng.standard_normal((1, size, size, 3)), 0, 1)
    sr = np.clip(hr + 0.08 * rng.standard_normal(hr.shape), 0, 1)
    mask = np.zeros((1, size, size, 1), np.float32)
    mask[:, square(size)[0], square(size)[1]] = 255.0
    return sr.astype(np.float32), hr.astype(np.float32), mask


def square(size: int, margin: int = 0) -> tuple[slice, slice]:
    k = size / SMALL
    return tuple(slice(int(s.start * k) - margin, int(s.stop * k) + margin) for s in SQUARE)


def pair_for(name: str):
    return make_pair(SIZES.get(name, SMALL))


PIXEL_WINDOW_METRICS = {
    name: metrics.METRICS[name].fn for name in ("psnr", "ssim", "ms_ssim", "gmsd", "vif", "vsi")
}


# Independent numpy references (tests/torch_reference/iqa.py) of the unmasked metrics.
UNMASKED_REFERENCES = {"psnr": lambda d, r: iqa.psnr(iqa.luma(d), iqa.luma(r)),
                       "ssim": iqa.ssim, "gmsd": iqa.gmsd}


@pytest.mark.parametrize("name", list(PIXEL_WINDOW_METRICS))
def test_uniform_weight_gives_the_unmasked_metric(name):
    """weight=None becomes ones inside the metrics, so ones vs None would compare one code path
    with itself: a uniform 0.3 goes through the weighting (normalisation, GMSD's sum(w) - 1)
    and must still give the unmasked value, which matches an independent reference."""
    sr, hr, _ = pair_for(name)
    fn = PIXEL_WINDOW_METRICS[name]
    uniform = np.full(sr.shape[:3] + (1,), 0.3, np.float32)
    unmasked = _np(fn(sr, hr))
    np.testing.assert_allclose(_np(fn(sr, hr, uniform)), unmasked, rtol=1e-6, atol=0)
    if name in UNMASKED_REFERENCES:
        tol = 2e-5 if name == "psnr" else 1e-6  # as in tests/test_metrics_parity.py
        np.testing.assert_allclose(unmasked, UNMASKED_REFERENCES[name](sr, hr), rtol=0, atol=tol)


@pytest.mark.parametrize("name", list(PIXEL_WINDOW_METRICS))
def test_scaling_the_weight_changes_nothing(name):
    sr, hr, mask = pair_for(name)
    fn = PIXEL_WINDOW_METRICS[name]
    w = regions.region_weight(mask, "sharp")
    base = _np(fn(sr, hr, w))
    assert np.all(np.isfinite(base))
    np.testing.assert_allclose(_np(fn(sr, hr, 3.7 * w)), base, rtol=1e-6)
    # and the region matters: the blur region scores differently
    assert not np.allclose(_np(fn(sr, hr, regions.region_weight(mask, "blur"))), base)


@pytest.mark.parametrize("name,margin", [("psnr", 0), ("ssim", 6), ("gmsd", 4)])
def test_changes_outside_the_region_do_not_move_local_metrics(name, margin):
    """PSNR is per pixel; SSIM (11x11 windows) and GMSD (2x2 pooling + 3x3 gradients) only
    see a few pixels around the region: changes farther away must not move them."""
    sr, hr, mask = pair_for(name)
    fn = PIXEL_WINDOW_METRICS[name]
    w = regions.region_weight(mask, "sharp")
    outside = np.ones(mask.shape, bool)
    rows, cols = square(sr.shape[1], margin)
    outside[:, rows, cols] = False
    changed = np.where(outside, 1.0 - sr, sr).astype(np.float32)
    np.testing.assert_array_equal(_np(fn(changed, hr, w)), _np(fn(sr, hr, w)))
    assert not np.allclose(_np(fn(changed, hr)), _np(fn(sr, hr)))  # unmasked does move


@pytest.mark.parametrize("name", list(PIXEL_WINDOW_METRICS))
def test_empty_region_gives_nan(name):
    sr, hr, _ = pair_for(name)
    all_sharp = np.full(sr.shape[:3] + (1,), 255.0, np.float32)
    value = _np(PIXEL_WINDOW_METRICS[name](sr, hr, regions.region_weight(all_sharp, "blur")))
    assert np.all(np.isnan(value))


def _check_deep_metric_invariants(fn):
    sr, hr, mask = make_pair(SMALL)
    ones = np.ones(sr.shape[:3] + (1,), np.float32)
    w = regions.region_weight(mask, "sharp")
    # A uniform weight other than 1 (None becomes ones: ones vs None would test nothing).
    # float32 weighted means over the feature maps: DISTS on JAX differed by 1.9e-5 relative.
    np.testing.assert_allclose(_np(fn(sr, hr, 0.3 * ones)), _np(fn(sr, hr)), rtol=5e-5)
    np.testing.assert_allclose(_np(fn(sr, hr, 3.7 * w)), _np(fn(sr, hr, w)), rtol=5e-5)
    assert np.all(np.isnan(_np(fn(sr, hr, np.zeros_like(ones)))))


def _require_cached(names):
    from keras_pbasr.weights import is_cached

    if not all(is_cached(n) for n in names):
        pytest.skip(f"weights {names} not cached: pbasr weights fetch {' '.join(names)}")


def test_lpips_region_invariants():
    _require_cached(["alexnet", "lpips_alex"])
    _check_deep_metric_invariants(metrics.lpips_score)


@pytest.mark.slow  # VGG16 calls: ~10 s per backend on 2 cores
def test_dists_region_invariants():
    _require_cached(["vgg16", "dists"])
    _check_deep_metric_invariants(metrics.dists_score)


def test_compute_metric_needs_a_mask_for_regions():
    sr, hr, _ = make_pair(SMALL)
    with pytest.raises(ValueError, match="needs a blur mask"):
        metrics.compute_metric("psnr", sr, hr, region="blur")
    with pytest.raises(ValueError, match="no-reference"):
        metrics.compute_metric("niqe", sr, region="sharp")


def test_size_errors_name_the_metric():
    small = np.zeros((1, 100, 120, 3), np.float32)
    with pytest.raises(ValueError, match="MS-SSIM needs images of at least 161x161"):
        metrics.ms_ssim(small, small)
    with pytest.raises(ValueError, match="VIF needs images of at least 65x65"):
        metrics.vif(small[:, :60], small[:, :60])
    with pytest.raises(ValueError, match="differs from HR shape"):
        metrics.psnr(small, small[:, :99])


# ---- pure functions -------------------------------------------------------------------


@pytest.mark.backend_agnostic
def test_region_weight_convention():
    mask = np.array([[0.0, 255.0, 51.0]])
    np.testing.assert_allclose(regions.region_weight(mask, "blur")[0, 0, :, 0], [1, 0, 0.8])
    np.testing.assert_allclose(regions.region_weight(mask, "sharp")[0, 0, :, 0], [0, 1, 0.2])
    np.testing.assert_array_equal(regions.region_weight(mask, "all"), np.ones((1, 1, 3, 1)))
    with pytest.raises(ValueError, match="region must be"):
        regions.region_weight(mask, "edges")


def test_weighted_std_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((1, 9, 7, 1))
    binary = (rng.random(values.shape) > 0.4).astype(np.float64)
    with functional.float64_scope():
        v = keras.ops.convert_to_tensor(values, "float64")
        ones = _np(functional.weighted_std(v, keras.ops.ones_like(v)))
        subset = _np(functional.weighted_std(v, keras.ops.convert_to_tensor(binary, "float64")))
    np.testing.assert_allclose(ones, [values.std(ddof=1)], rtol=1e-12)
    np.testing.assert_allclose(subset, [values[binary > 0].std(ddof=1)], rtol=1e-12)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_matrix_matches_torch(align_corners):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).random((1, 1, 13, 9))
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(x), size=(256, 5), mode="bilinear", align_corners=align_corners
    ).numpy()[0, 0]
    rows = resize.bilinear_matrix(13, 256, align_corners)
    cols = resize.bilinear_matrix(9, 5, align_corners)
    np.testing.assert_allclose(rows @ x[0, 0] @ cols.T, expected, atol=1e-12)


@pytest.mark.backend_agnostic
def test_matlab_bicubic_matrix_properties():
    m = resize.matlab_bicubic_matrix(96, 0.5)
    assert m.shape == (48, 96)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)  # keeps constants
    ramp = np.arange(96.0)
    # a linear ramp stays linear away from the mirrored borders: sample centres 2i + 0.5
    np.testing.assert_allclose((m @ ramp)[4:-4], 2 * np.arange(48.0)[4:-4] + 0.5, atol=1e-9)


def test_luma_reproduces_float32_matmul():
    """The FMA-chain luma equals numpy's float32 matmul (which matches torch's) bit for bit."""
    rng = np.random.default_rng(3)
    rgb = (rng.integers(0, 256, (1, 64, 64, 3)) / 255.0).astype(np.float32)
    w = np.array([[0.299], [0.587], [0.114]], np.float32)
    with functional.float64_scope():
        got = _np(rgb_to_luma(rgb))
    np.testing.assert_array_equal(got, (rgb @ w).astype(np.float64))


def test_pad2d_matches_numpy_modes():
    x = np.arange(20.0).reshape(1, 4, 5, 1)
    for mode in ("reflect", "symmetric", "edge"):
        got = _np(functional.pad2d(keras.ops.convert_to_tensor(x), 2, 1, 3, 0, mode=mode))
        np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (2, 1), (3, 0), (0, 0)), mode))
