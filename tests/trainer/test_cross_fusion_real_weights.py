"""CrossFusion on real trained weights: the default ratio is the paper's printed Eq. 2 and one
fusion moves each branch by exactly the fraction 1 - lam of the branch gap.

The weights are realesrgan_x4plus (16.7 M) when that preset is converted on this machine (the
main job fetches it: `pbasr weights fetch realesrgan_x4plus`), otherwise the packaged, trained
pbasr_srvgg_demo_x4. The blur branch is the same weights with a relative perturbation of 1e-2,
which puts the global cosine at ~0.99995, near where fine-tuned branches sit
(notes/issue-16-pbasr-training.md).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_pbasr.presets import from_preset, list_presets
from keras_pbasr.trainer.cross_fusion import CrossFusion, cross_fusion_ratio

REAL_PRESET = "realesrgan_x4plus"
FALLBACK_PRESET = "pbasr_srvgg_demo_x4"


def _flat64(arrays):
    return np.concatenate([np.asarray(a).ravel() for a in arrays]).astype("float64")


def test_default_lambda_is_the_printed_eq2_and_one_fusion_moves_by_one_minus_lambda():
    available = list_presets().get(REAL_PRESET, {}).get("available", False)
    model = from_preset(REAL_PRESET if available else FALLBACK_PRESET)
    general = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    rng = np.random.default_rng(0)
    blur = [(w * (1.0 + 1e-2 * rng.standard_normal(w.shape))).astype("float32") for w in general]
    flat_g, flat_b = _flat64(general), _flat64(blur)
    cos = float(flat_g @ flat_b / np.linalg.norm(flat_g) / np.linalg.norm(flat_b))
    assert 0.999 < cos < 1.0  # a realistic branch distance, not identical weights
    expected_lambda = 0.99 + (1 - 0.99) * cos / 2  # Eq. 2 as printed

    wg_vars = [keras.Variable(w) for w in general]
    wb_vars = [keras.Variable(w) for w in blur]
    cos_got, lam_got = CrossFusion(lambda0=0.99).fuse_variables(wg_vars, wb_vars)
    # float32 sums over 16.7 M weights: measured 2.1e-7 (tensorflow) and 1.3e-6 (jax) off on
    # x4plus; the margin is ~4x the worst.
    assert float(keras.ops.convert_to_numpy(cos_got)) == pytest.approx(cos, abs=5e-6)
    # lam is a float32 near 1 (spacing 6e-8): measured 1.6e-8 off.
    lam = float(keras.ops.convert_to_numpy(lam_got))
    assert lam == pytest.approx(expected_lambda, abs=1e-7)
    assert 1 - expected_lambda == pytest.approx(0.005, abs=1e-6)

    # Each branch moves towards the other by 1 - lam of the gap (~0.005 at lambda0 0.99),
    # measured 4e-6 relative off (float32 rounding of the fused weights).
    gap = flat_b - flat_g
    moved_g = _flat64(keras.ops.convert_to_numpy(v) for v in wg_vars) - flat_g
    moved_b = _flat64(keras.ops.convert_to_numpy(v) for v in wb_vars) - flat_b
    fraction_g = float(moved_g @ gap / (gap @ gap))
    fraction_b = float(-moved_b @ gap / (gap @ gap))
    assert fraction_g == pytest.approx(1 - expected_lambda, rel=1e-4)
    assert fraction_b == pytest.approx(1 - expected_lambda, rel=1e-4)
    residual = moved_g - fraction_g * gap  # the move is along the gap, nothing else
    assert np.linalg.norm(residual) < 1e-2 * np.linalg.norm(moved_g)

    # The unhalved form would move these branches 100x less: (1 - lambda0)(1 - cos) ~ 5e-7.
    unhalved_pull = 1 - cross_fusion_ratio(cos, 0.99, "unhalved")
    assert unhalved_pull == pytest.approx((1 - 0.99) * (1 - cos), rel=1e-9)
    assert unhalved_pull < 1e-2 * (1 - expected_lambda)
