"""CrossFusion on real trained weights: the default ratio is the paper's printed Eq. 2 and one
fusion moves each branch by exactly the fraction 1 - lam of the branch gap.

The weights are realesrgan_x4plus when that preset is converted on this machine (the main job
fetches it), otherwise the packaged, trained pbasr_srvgg_demo_x4. The blur branch is the same
weights with a relative perturbation of 1e-2, which puts the global cosine near 0.9999, where
fine-tuned branches sit (notes/issue-16-pbasr-training.md).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_pbasr.presets import from_preset, list_presets
from keras_pbasr.trainer import CrossFusion

REAL_PRESET = "realesrgan_x4plus"
FALLBACK_PRESET = "pbasr_srvgg_demo_x4"


@pytest.fixture(scope="module")
def real_branches():
    available = list_presets().get(REAL_PRESET, {}).get("available", False)
    model = from_preset(REAL_PRESET if available else FALLBACK_PRESET)
    rng = np.random.default_rng(0)
    general = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    blur = [
        (w * (1.0 + 1e-2 * rng.standard_normal(w.shape))).astype("float32") for w in general
    ]
    return model, general, blur


def _numpy_cosine(general, blur):
    flat_g = np.concatenate([w.ravel() for w in general]).astype("float64")
    flat_b = np.concatenate([w.ravel() for w in blur]).astype("float64")
    return float(flat_g @ flat_b / np.linalg.norm(flat_g) / np.linalg.norm(flat_b))


def test_default_lambda_is_the_printed_eq2_and_one_fusion_moves_by_one_minus_lambda(
    real_branches,
):
    model, general, blur = real_branches
    wg_vars = [keras.Variable(w) for w in general]
    wb_vars = [keras.Variable(w) for w in blur]
    cos = _numpy_cosine(general, blur)
    assert 0.999 < cos < 1.0  # a realistic branch distance, not identical weights
    expected_lambda = 0.99 + (1 - 0.99) * cos / 2  # Eq. 2 as printed
    cos_got, lam_got = CrossFusion(lambda0=0.99).fuse_variables(wg_vars, wb_vars)
    # float32 sums over ~16.7 M weights: the cosine is off by at most ~1e-6 (measured 1e-7).
    assert float(keras.ops.convert_to_numpy(cos_got)) == pytest.approx(cos, abs=1e-6)
    # lam is a float32 near 1 (spacing 6e-8); measured off by 1.7e-8.
    lam = float(keras.ops.convert_to_numpy(lam_got))
    assert lam == pytest.approx(expected_lambda, abs=1e-7)
    # Each branch moves towards the other by 1 - lam of the gap: ~0.005 at lambda0 0.99.
    gap = np.concatenate([(b - g).ravel() for g, b in zip(general, blur)]).astype("float64")
    moved_g = np.concatenate([
        (keras.ops.convert_to_numpy(v) - g).ravel() for v, g in zip(wg_vars, general)
    ]).astype("float64")
    moved_b = np.concatenate([
        (keras.ops.convert_to_numpy(v) - b).ravel() for v, b in zip(wb_vars, blur)
    ]).astype("float64")
    fraction_g = float(moved_g @ gap / (gap @ gap))
    fraction_b = float(-moved_b @ gap / (gap @ gap))
    assert 1 - expected_lambda == pytest.approx(0.005, abs=1e-6)
    # float32 rounding of the moved weights: measured within 2e-5 relative of 0.005.
    assert fraction_g == pytest.approx(1 - expected_lambda, rel=1e-3)
    assert fraction_b == pytest.approx(1 - expected_lambda, rel=1e-3)
    residual = moved_g - fraction_g * gap  # the move is along the gap, nothing else
    assert np.linalg.norm(residual) < 1e-2 * np.linalg.norm(moved_g)


def test_unhalved_form_barely_moves_fine_tuned_branches(real_branches):
    _, general, blur = real_branches
    wg_vars = [keras.Variable(w) for w in general]
    wb_vars = [keras.Variable(w) for w in blur]
    cos = _numpy_cosine(general, blur)
    _, lam = CrossFusion(lambda0=0.99, form="unhalved").fuse_variables(wg_vars, wb_vars)
    pull = 1 - float(keras.ops.convert_to_numpy(lam))
    assert pull == pytest.approx((1 - 0.99) * (1 - cos), abs=1e-7)
    assert pull < 1e-5  # 500x less than the printed form at this cosine
