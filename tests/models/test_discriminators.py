"""Torch-faithful spectral norm and the U-Net discriminators against independent torch references.

All models use num_feat=16 and all images IMAGE_SIZE so that JAX compiles each initializer and
op shape once per process (compilation dominates the JAX pass on CPU).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from grad_helpers import gradient
from torch import nn
from torch_reference.discriminators import (
    TorchConditionalUNetDiscriminatorSNv1,
    TorchConditionalUNetDiscriminatorSNv2,
    TorchUNetDiscriminatorSN,
    randomize_,
)

from keras_pbasr.convert import get_converter, infer_converter
from keras_pbasr.layers.spectral_norm import SpectralNormConv2D
from keras_pbasr.models import ConditionalUNetDiscriminatorSN, UNetDiscriminatorSN

ATOL = 1e-4
NUM_FEAT = 16
IMAGE_SIZE = (2, 32, 40)  # N, H, W
BACKEND = keras.backend.backend()


def to_numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def torch_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def torch_nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def state_dict_numpy(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def assert_sn_state_equal(keras_model, torch_module, names):
    for name in names:
        layer, ref = keras_model.get_layer(name), getattr(torch_module, name)
        np.testing.assert_allclose(to_numpy(layer.weight_u), ref.weight_u.numpy(), atol=1e-5)
        np.testing.assert_allclose(to_numpy(layer.weight_v), ref.weight_v.numpy(), atol=1e-5)


SN_NAMES = [f"conv{i}" for i in range(1, 9)]


# Spectral norm layer ----------------------------------------------------------------------------

def _sn_pair(rng):
    ref = randomize_(nn.utils.spectral_norm(nn.Conv2d(5, 6, 4, 2, 1, bias=True)), seed=3, scale=1)
    layer = SpectralNormConv2D(6, 4, strides=2, padding=1, use_bias=True)
    layer.build((None, None, None, 5))
    # Copies: JAX may alias a numpy buffer, and torch updates weight_u / weight_v in place.
    weights = state_dict_numpy(ref)
    layer.weight_orig.assign(weights["weight_orig"].transpose(2, 3, 1, 0))
    layer.weight_u.assign(weights["weight_u"])
    layer.weight_v.assign(weights["weight_v"])
    layer.bias.assign(weights["bias"])
    inputs = [rng.standard_normal((2, 9, 11, 5)).astype("float32") for _ in range(5)]
    return ref, layer, inputs


def _check_sn_step(ref, keras_out, u, v, x, training):
    ref.train(training)
    with torch.no_grad():
        expected = torch_nhwc(ref(torch_nchw(x)))
    np.testing.assert_allclose(to_numpy(keras_out), expected, atol=ATOL)
    np.testing.assert_allclose(to_numpy(u), ref.weight_u.numpy(), atol=1e-6)
    np.testing.assert_allclose(to_numpy(v), ref.weight_v.numpy(), atol=1e-6)


def test_spectral_norm_conv_matches_torch_over_training_and_eval_calls(rng):
    ref, layer, inputs = _sn_pair(rng)
    u0 = to_numpy(layer.weight_u).copy()
    for step, x in enumerate(inputs):
        training = step < 3  # three power iterations, then two inference calls
        out = layer(x, training=training)
        _check_sn_step(ref, out, layer.weight_u, layer.weight_v, x, training)
    assert tuple(out.shape) == (2, 4, 5, 6)  # k4 s2 p1 on 9x11: (n + 2 - 4) // 2 + 1
    assert not np.allclose(to_numpy(layer.weight_u), u0)  # the iterations did move u
    assert [w.name for w in layer.trainable_weights] == ["weight_orig", "bias"]
    assert sorted(w.name for w in layer.non_trainable_weights) == ["weight_u", "weight_v"]


def test_spectral_norm_conv_updates_u_v_inside_jitted_jax_stateless_call(rng):
    if BACKEND != "jax":
        pytest.skip("JAX-only: stateless_call under jax.jit")
    import jax

    ref, layer, inputs = _sn_pair(rng)

    @jax.jit
    def step(trainable, non_trainable, x):
        return layer.stateless_call(trainable, non_trainable, x, training=True)

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    names = [v.name for v in layer.non_trainable_variables]
    for x in inputs[:3]:
        out, non_trainable = step(trainable, non_trainable, x)
        state = dict(zip(names, non_trainable))
        _check_sn_step(ref, out, state["weight_u"], state["weight_v"], x, True)


def test_spectral_norm_gradient_matches_torch(rng):
    """The gradient w.r.t. weight_orig includes d(1/sigma)/dW with u, v held constant."""
    ref, layer, inputs = _sn_pair(rng)
    x = inputs[0]
    ref.train(False)
    ref(torch_nchw(x)).square().sum().backward()
    expected = ref.weight_orig.grad.numpy().transpose(2, 3, 1, 0)

    def loss_of_kernel(kernel):
        with keras.StatelessScope(state_mapping=[(layer.weight_orig, kernel)]):
            return keras.ops.sum(keras.ops.square(layer(x, training=False)))

    kernel = to_numpy(layer.weight_orig)
    np.testing.assert_allclose(gradient(loss_of_kernel, kernel), expected, rtol=1e-4, atol=1e-4)


def test_bilinear_upsample_matches_torch_on_odd_sizes(rng):
    from torch.nn import functional as F

    from keras_pbasr.layers.bilinear_upsample import bilinear_upsample_2x

    x = rng.standard_normal((2, 3, 5, 4)).astype("float32")
    expected = torch_nhwc(
        F.interpolate(torch_nchw(x), scale_factor=2, mode="bilinear", align_corners=False)
    )
    np.testing.assert_allclose(to_numpy(bilinear_upsample_2x(x)), expected, atol=1e-6)


# Discriminators ---------------------------------------------------------------------------------

_JITTED_CALLS = {}


def call_like_a_jax_train_step(model, inputs, training: bool):
    """model(inputs, training=...); on JAX through a jitted `stateless_call` whose returned
    non-trainable state (the SN u, v) is written back, as a JAX train step does."""
    if BACKEND != "jax":
        return model(inputs, training=training)
    import jax

    key = (id(model), training)
    if key not in _JITTED_CALLS:
        _JITTED_CALLS[key] = jax.jit(
            lambda trainable, non_trainable, x: model.stateless_call(
                trainable, non_trainable, x, training=training
            )
        )
    outputs, non_trainable = _JITTED_CALLS[key](
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        inputs,
    )
    for variable, value in zip(model.non_trainable_variables, non_trainable, strict=True):
        variable.assign(value)
    return outputs


def _convert(torch_module, arch=None):
    weights = state_dict_numpy(torch_module)
    converter = get_converter(arch) if arch else infer_converter(weights)
    model, report = converter.convert(weights)
    assert report.ok and not report.ignored
    return model, converter


@pytest.mark.parametrize(
    "torch_cls, variant, jitted",
    [
        (TorchUNetDiscriminatorSN, None, False),
        (TorchConditionalUNetDiscriminatorSNv1, "v1", False),
        # PBaSR's D_B; on JAX via a jitted stateless_call (eager elsewhere; eager JAX above).
        (TorchConditionalUNetDiscriminatorSNv2, "v2", True),
    ],
)
def test_discriminator_matches_converted_torch_reference(torch_cls, variant, jitted, rng):
    kwargs = {"num_feat": NUM_FEAT}
    if variant is not None:
        kwargs["num_con_in_ch"] = 2
    ref = randomize_(torch_cls(**kwargs), seed=7)
    model, converter = _convert(ref)
    if variant is None:
        assert converter.name == "unet_discriminator_sn"
        assert isinstance(model, UNetDiscriminatorSN)
    else:
        assert converter.name == "conditional_unet_discriminator_sn"
        assert model.variant == variant and model.num_cond_ch == 2

    image = rng.uniform(size=(*IMAGE_SIZE, 3)).astype("float32")
    cond = (rng.uniform(size=(*IMAGE_SIZE, 2)) > 0.5).astype("float32")
    keras_inputs = image if variant is None else [image, cond]
    torch_inputs = [torch_nchw(image)] if variant is None else [torch_nchw(image), torch_nchw(cond)]
    for training in (False, True, True, False):
        ref.train(training)
        with torch.no_grad():
            expected = torch_nhwc(ref(*torch_inputs))
        if jitted:
            logits = call_like_a_jax_train_step(model, keras_inputs, training)
        else:
            logits = model(keras_inputs, training=training)
        assert tuple(logits.shape) == (*IMAGE_SIZE, 1)
        np.testing.assert_allclose(to_numpy(logits), expected, atol=ATOL)
    assert_sn_state_equal(model, ref, SN_NAMES)


def test_conditional_v2_at_initialisation_equals_unconditional(rng):
    plain = UNetDiscriminatorSN(num_feat=NUM_FEAT)
    conditional = ConditionalUNetDiscriminatorSN(num_feat=NUM_FEAT, variant="v2")
    for name in ["conv0", *SN_NAMES, "conv9"]:
        source, target = plain.get_layer(name), conditional.get_layer(name)
        for src, dst in zip(source.weights, target.weights, strict=True):
            dst.assign(src)
    image = rng.uniform(size=(*IMAGE_SIZE, 3)).astype("float32")
    blur_map = (rng.uniform(size=(*IMAGE_SIZE, 1)) > 0.5).astype("float32")
    expected = to_numpy(plain(image))
    np.testing.assert_allclose(to_numpy(conditional([image, blur_map])), expected, atol=1e-6)
    # The condition only starts to matter once the fusion weights move away from pass-through.
    fusion = conditional.get_layer("concat_layer")
    fusion.kernel.assign(to_numpy(fusion.kernel) + 0.1)
    assert np.abs(to_numpy(conditional([image, blur_map])) - expected).max() > 1e-3


@pytest.mark.backend_agnostic  # the architecture is the same on every backend
@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_default_parameter_counts(variant):
    # Counts of torch parameters = Keras trainable weights (u, v are buffers in torch).
    expected = {"v1": 4_417_409, "v2": 4_383_425}[variant]
    model = ConditionalUNetDiscriminatorSN(variant=variant)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected
    if variant == "v2":
        plain = UNetDiscriminatorSN()
        assert sum(int(np.prod(w.shape)) for w in plain.trainable_weights) == 4_376_897


def test_default_initialisation_is_torch_conv_default():
    # nn.Conv2d: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    model = UNetDiscriminatorSN(num_feat=NUM_FEAT)
    for name, weight, fan_in in [
        ("conv4", "weight_orig", 9 * 8 * NUM_FEAT),
        ("conv0", "kernel", 9 * 3),
        ("conv0", "bias", 9 * 3),
    ]:
        values = to_numpy(getattr(model.get_layer(name), weight))
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.5 * bound


def test_sizes_not_divisible_by_8_raise_a_clear_error():
    model = ConditionalUNetDiscriminatorSN(num_feat=NUM_FEAT)
    with pytest.raises(ValueError, match="divisible by 8, got 36x40"):
        model([np.zeros((1, 36, 40, 3), "float32"), np.zeros((1, 36, 40, 1), "float32")])
    with pytest.raises(ValueError, match="same height and width"):
        model([np.zeros((1, 32, 40, 3), "float32"), np.zeros((1, 16, 40, 1), "float32")])
    with pytest.raises(ValueError, match="variant must be one of"):
        ConditionalUNetDiscriminatorSN(variant="v3")


def test_converter_rejects_a_checkpoint_with_missing_keys():
    from keras_pbasr.convert import ConversionError

    weights = state_dict_numpy(randomize_(TorchUNetDiscriminatorSN(num_feat=NUM_FEAT)))
    del weights["conv4.weight_v"]
    with pytest.raises(ConversionError, match="conv4.weight_v"):
        get_converter("unet_discriminator_sn").convert(weights)


def test_checkpoint_file_to_preset_round_trip(tmp_path, rng):
    from keras_pbasr.presets import convert_checkpoint
    from keras_pbasr.presets.preset_io import load_preset_dir

    ref = randomize_(TorchConditionalUNetDiscriminatorSNv2(num_feat=NUM_FEAT), seed=11)
    checkpoint = tmp_path / "net_d_blur.pth"
    torch.save({"params": ref.state_dict()}, checkpoint)
    model = load_preset_dir(convert_checkpoint(checkpoint, tmp_path / "preset"))
    assert isinstance(model, ConditionalUNetDiscriminatorSN) and model.variant == "v2"

    image = rng.uniform(size=(*IMAGE_SIZE, 3)).astype("float32")
    blur_map = rng.uniform(size=(*IMAGE_SIZE, 1)).astype("float32")
    ref.eval()
    with torch.no_grad():
        expected = torch_nhwc(ref(torch_nchw(image), torch_nchw(blur_map)))
    np.testing.assert_allclose(to_numpy(model([image, blur_map])), expected, atol=ATOL)
    assert_sn_state_equal(model, ref, SN_NAMES)


def test_discriminator_backpropagates_to_its_input(rng):
    """The generator's adversarial gradient reaches SR through D on every backend (on torch,
    conv9's single output channel needs SingleChannelConv2D)."""
    d = UNetDiscriminatorSN(num_feat=NUM_FEAT)
    sr = rng.uniform(size=(*IMAGE_SIZE, 3)).astype("float32")
    grad = gradient(lambda x: keras.ops.mean(d(x)), sr)
    assert grad.shape == sr.shape and np.abs(grad).max() > 0
    # Spectral-norm state never receives gradients: only weight_orig (and conv biases) train.
    assert all("weight_u" not in w.path and "weight_v" not in w.path for w in d.trainable_weights)


def test_discriminator_runs_in_a_tf_graph_with_unknown_sizes(rng):
    if BACKEND != "tensorflow":
        pytest.skip("TensorFlow-only: tf.function with a dynamic input signature")
    import tensorflow as tf

    d = ConditionalUNetDiscriminatorSN(num_feat=NUM_FEAT)
    u_before = to_numpy(d.get_layer("conv3").weight_u).copy()
    step = tf.function(
        lambda image, cond: d([image, cond], training=True),
        input_signature=[tf.TensorSpec((None, None, None, c)) for c in (3, 1)],
    )
    image = rng.uniform(size=(*IMAGE_SIZE, 3)).astype("float32")
    logits = step(image, np.ones((*IMAGE_SIZE, 1), "float32"))
    assert tuple(logits.shape) == (*IMAGE_SIZE, 1)
    assert np.abs(to_numpy(d.get_layer("conv3").weight_u) - u_before).max() > 0
