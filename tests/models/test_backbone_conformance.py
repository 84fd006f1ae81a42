"""Every registered backbone family passes the shared `SRBackbone` conformance check
(tests/backbone_checks.py), with a tiny configuration, on the backend under test."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from backbone_checks import run_sr_backbone_checks

from keras_pbasr.models import BACKBONES, FeMaSR, FeMaSRHQ, RRDBNet, SRFormer, SRVGGNetCompact
from keras_pbasr.models.registry import backbone_by_class_name

# (class, constructor arguments, input shape, scale, largest mixed-precision difference)
FAMILY_CASES = {
    # x2 covers the x4 body plus the padding and pixel unshuffle before it.
    "rrdbnet_x2": (RRDBNet, dict(scale=2, num_feat=8, num_block=1, num_grow_ch=4),
                   (1, 9, 11, 3), 2, 0.05),
    # animevideov3 x3: the x4 network followed by a bicubic resize to x3.
    "srvgg_x4_out3": (SRVGGNetCompact, dict(num_feat=8, num_conv=2, upscale=4, outscale=3),
                      (2, 9, 11, 3), 3, 0.05),
    "srformer_x2": (SRFormer, dict(upscale=2, upsampler="pixelshuffle", window_size=8,
                                   depths=(2,), embed_dim=16, num_heads=(2,)),
                    (1, 13, 10, 3), 2, 0.05),
    "femasr_x4": (FeMaSR, dict(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8,
                               num_swin_layers=1, swin_depth=2, swin_num_heads=2, window_size=4,
                               swin_mlp_ratio=2.0),
                  (1, 9, 7, 3), 4, 0.05),
    "femasr_hq": (FeMaSRHQ, dict(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8),
                  (1, 21, 19, 3), 1, 0.05),
}


@pytest.mark.parametrize("case", sorted(FAMILY_CASES))
def test_backbone_family_conforms(case, tmp_path):
    cls, init_kwargs, input_shape, scale, tolerance = FAMILY_CASES[case]
    run_sr_backbone_checks(cls, init_kwargs, input_shape, scale, tmp_path,
                           mixed_tolerance=tolerance)


@pytest.mark.backend_agnostic
def test_every_registered_backbone_has_a_conformance_case():
    checked = {cls for cls, *_ in FAMILY_CASES.values()}
    assert {a.cls for a in BACKBONES.values()} == checked
    assert all(backbone_by_class_name(cls.__name__) is cls for cls in checked)


@pytest.mark.backend_agnostic
def test_a_backbone_must_return_float32():
    from keras_pbasr.models import SRBackbone

    class Half(SRBackbone):
        def __init__(self, **kwargs):
            inputs = keras.Input((None, None, 3))
            outputs = keras.layers.Activation("linear", dtype="float16")(inputs)
            super().__init__(inputs=inputs, outputs=outputs, scale=1, **kwargs)

    with pytest.raises(TypeError, match="float32"):
        Half()


@pytest.mark.backend_agnostic
def test_basicsr_initialisation_draws_the_basicsr_distributions():
    """weight_init="basicsr": dense-block kernels N(0, 0.1 * sqrt(2 / fan_in)) and zero bias,
    other convs torch's U(+-1/sqrt(fan_in)) (BasicSR's default_init_weights(..., 0.1))."""
    keras.utils.set_random_seed(0)
    model = RRDBNet(num_feat=32, num_block=1, num_grow_ch=16, weight_init="basicsr")
    dense = model.get_layer("body_0_rdb1_conv5")  # fan_in 9 * (32 + 4 * 16) = 864
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    # 27,648 draws: the std is within 2% of 0.1 * sqrt(2 / 864) = 4.81e-3.
    assert abs(kernel.std() / (0.1 * np.sqrt(2 / 864)) - 1) < 0.02
    assert not np.any(keras.ops.convert_to_numpy(dense.bias))
    first = model.get_layer("conv_first")  # fan_in 27: bound 0.192
    bound = 1 / np.sqrt(27)
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in (first.kernel, first.bias))
    assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound and np.any(bias)
    # 864 uniform draws: the std is within 10% of bound / sqrt(3).
    assert abs(kernel.std() / (bound / np.sqrt(3)) - 1) < 0.1
    assert RRDBNet.from_config(model.get_config()).weight_init == "basicsr"
