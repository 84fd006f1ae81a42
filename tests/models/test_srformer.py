"""SRFormer: parity with an independent torch reference through the converter, shapes on any
input size, serialization, dtype policies, and the converter's key handling."""

from __future__ import annotations

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from keras_pbasr.convert import ConversionError, get_converter  # noqa: E402
from keras_pbasr.convert.registry import infer_converter  # noqa: E402
from keras_pbasr.layers.padding import reflect_indices  # noqa: E402
from keras_pbasr.models.srformer.srformer_backbone import SRFormer  # noqa: E402
from keras_pbasr.models.srformer.srformer_layers import (  # noqa: E402
    PSABlock,
    aligned_relative_position_index,
    shifted_window_attention_mask,
)
from keras_pbasr.presets import convert_checkpoint  # noqa: E402
from keras_pbasr.presets.preset_io import load_preset_dir  # noqa: E402
from keras_pbasr.utils.torch_files import state_dict_to_numpy  # noqa: E402
from tests.torch_reference.parallel_net import TorchParallelNetNCB  # noqa: E402
from tests.torch_reference.srformer import TorchSRFormer, bias_index, shift_mask  # noqa: E402

SMALL = dict(window_size=8, depths=(2, 2), embed_dim=24, num_heads=(2, 3), mlp_ratio=2.0)
# One group (an unshifted and a shifted block) for the tests that don't compare with torch.
TINY = dict(window_size=8, depths=(2,), embed_dim=24, num_heads=(3,), mlp_ratio=2.0)
PBASR_PARAMETERS = 10_339_855


def _randomized_reference(seed: int = 0, **config) -> TorchSRFormer:
    """A torch reference whose every parameter matters: default conv/linear init plus random
    LayerNorm affines, biases and relative position bias tables."""
    torch.manual_seed(seed)
    module = TorchSRFormer(**config).eval()
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("relative_position_bias_table"):
                param.normal_(0.0, 0.5)
            elif "norm" in name and name.endswith(".weight"):
                param.normal_(1.0, 0.1)
            elif name.endswith(".bias"):
                param.normal_(0.0, 0.05)
        # Default init leaves the RGB output within ~0.05 of the mean; amplify it so that the
        # 1e-4 tolerance is small against the signal (a dropped mask then errs by ~1e-2).
        rgb_conv = module.upsample[0] if module.upsampler == "pixelshuffledirect" else (
            module.conv_last)
        rgb_conv.weight.mul_(10.0)
    return module


def _torch_sr(module: torch.nn.Module, lr: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = module(torch.from_numpy(lr.transpose(0, 3, 1, 2)))
    return out.numpy().transpose(0, 2, 3, 1)


def _predict(model: keras.Model, lr: np.ndarray) -> np.ndarray:
    # predict compiles the model (jit on JAX), far faster than eager op-by-op calls.
    return np.asarray(model.predict(lr, batch_size=len(lr), verbose=0))


def _convert(module: TorchSRFormer):
    state_dict = state_dict_to_numpy(module.state_dict())
    converter = infer_converter(state_dict)
    assert converter.name == "srformer"
    model, report = converter.convert(state_dict)
    return model, report


@pytest.mark.parametrize(
    "upscale, upsampler, resi_connection",
    [
        (4, "nearest+conv", "1conv"),  # PBaSR's head
        (2, "pixelshuffle", "3conv"),  # upstream classical-SR head
        pytest.param(3, "pixelshuffledirect", "1conv", marks=pytest.mark.slow),
    ],
)
def test_small_srformer_matches_torch_reference(rng, upscale, upsampler, resi_connection):
    module = _randomized_reference(upscale=upscale, upsampler=upsampler,
                                   resi_connection=resi_connection, **SMALL)
    model, report = _convert(module)
    assert model.get_config()["upsampler"] == upsampler
    assert model.count_params() == sum(p.numel() for p in module.parameters())
    # The stored index/mask buffers are recognised and recomputed, not loaded.
    assert any(k.endswith(".attn_mask") for k in report.ignored)
    assert any(k.endswith("aligned_relative_position_index") for k in report.ignored)

    lr = rng.random((1, 37, 29, 3), dtype=np.float32)
    expected = _torch_sr(module, lr)
    got = _predict(model, lr)
    assert got.shape == (1, 37 * upscale, 29 * upscale, 3) == expected.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_pbasr_parallel_net_checkpoint_to_preset(tmp_path, rng):
    """A PBaSR ParallelNet_ncb file (`params`, DataParallel `module.` prefix, general and
    defocus branches plus a stale `combinet`) -> convert_checkpoint -> load_preset_dir gives
    the deployed model 0.5 * general + 0.5 * defocus."""
    seeds = iter(range(10, 20))
    net = TorchParallelNetNCB(
        lambda: _randomized_reference(next(seeds), upscale=4, upsampler="nearest+conv", **TINY)
    )
    checkpoint = tmp_path / "pbasr_srformer_tiny.pth"
    state_dict = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"params": state_dict}, checkpoint)
    preset = convert_checkpoint(checkpoint, tmp_path / "preset")
    model = load_preset_dir(preset)
    assert isinstance(model, SRFormer) and model.get_config()["window_size"] == 8

    net.deploy()
    lr = rng.random((1, 21, 34, 3), dtype=np.float32)
    np.testing.assert_allclose(_predict(model, lr), _torch_sr(net, lr), atol=1e-4, rtol=0)


# Variable shapes do not depend on the backend (the slow parity test re-checks the count on
# every backend); building this model costs JAX ~30 initializer compilations.
@pytest.mark.backend_agnostic
def test_pbasr_configuration_parameter_count():
    model = SRFormer()  # the defaults are PBaSR's configuration
    assert model.count_params() == PBASR_PARAMETERS
    assert model.get_config()["window_size"] == 22


@pytest.mark.slow
def test_upstream_configuration_builds_and_counts_like_torch():
    model = SRFormer(window_size=24, upsampler="pixelshuffle")
    module = TorchSRFormer(window_size=24, upsampler="pixelshuffle")
    assert model.count_params() == sum(p.numel() for p in module.parameters())


# The index/mask/reflect helpers are Keras ops: checked directly on every backend.
@pytest.mark.parametrize("window_size, height, width", [(8, 16, 24), (22, 44, 66), (24, 48, 24)])
def test_index_and_mask_match_reference(window_size, height, width):
    np.testing.assert_array_equal(
        aligned_relative_position_index(window_size), bias_index(window_size).numpy()
    )
    mask = shifted_window_attention_mask(height, width, window_size, window_size // 2)
    expected = shift_mask(height, width, window_size, window_size // 2).numpy()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), expected)


@pytest.mark.parametrize("length, padded", [(7, 8), (29, 32), (12, 22)])
def test_reflect_indices_match_numpy_reflect(length, padded):
    expected = np.pad(np.arange(length), (0, padded - length), mode="reflect")
    got = keras.ops.convert_to_numpy(reflect_indices(length, padded))
    np.testing.assert_array_equal(got, expected)


def test_reflect_indices_bounce_beyond_one_reflection():
    bounced = keras.ops.convert_to_numpy(reflect_indices(3, 9))
    np.testing.assert_array_equal(bounced, [0, 1, 2, 1, 0, 1, 2, 1, 0])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reflect_indices(1, 4)), [0] * 4)


def test_stochastic_depth_drops_residual_branches_only_in_training(rng):
    block = PSABlock(24, 3, 8, shift_size=4, drop_path_rate=0.999, seed=3)
    x = rng.standard_normal((4, 8, 16, 24)).astype(np.float32)
    # keep probability 0.001: with this seed every residual branch of every sample is dropped
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(block(x, training=True)), x)
    assert np.max(np.abs(keras.ops.convert_to_numpy(block(x, training=False)) - x)) > 1e-3


def test_shifted_window_mask_is_built_once_per_forward_and_shared(rng, monkeypatch):
    from keras_pbasr.models.srformer import srformer_layers

    model = SRFormer(**SMALL)  # two shifted blocks
    x = rng.random((1, 19, 13, 3), dtype=np.float32)
    expected = keras.ops.convert_to_numpy(model(x))
    calls = []

    def counting_mask(*args):
        calls.append(args)
        return shifted_window_attention_mask(*args)

    monkeypatch.setattr(srformer_layers, "shifted_window_attention_mask", counting_mask)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), expected)
    assert [tuple(int(v) for v in c) for c in calls] == [(24, 16, 8, 4)]  # padded size
    # A block called on its own builds the same mask itself.
    block = model.get_layer("layers_1_residual_group_blocks_1")
    features = rng.standard_normal((1, 8, 16, 24)).astype(np.float32)
    mask = srformer_layers.ShiftedWindowAttentionMask(8, 4)(features)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(block(features)),
        keras.ops.convert_to_numpy(block(features, attention_mask=mask)), atol=1e-6,
    )


def _small_state_dict() -> dict:
    module = _randomized_reference(upscale=4, upsampler="nearest+conv", **SMALL)
    return state_dict_to_numpy(module.state_dict())


def test_converter_reports_missing_unexpected_and_misshaped_keys():
    state_dict = _small_state_dict()
    converter = get_converter("srformer")
    broken = dict(state_dict)
    del broken["layers.1.residual_group.blocks.0.attn.q.weight"]
    broken["layers.0.residual_group.blocks.1.mlp.fc2.bias"] = np.zeros(5, np.float32)
    broken["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError) as excinfo:
        converter.convert(broken)
    message = str(excinfo.value)
    assert "layers.1.residual_group.blocks.0.attn.q.weight" in message
    assert "layers.0.residual_group.blocks.1.mlp.fc2.bias" in message
    assert "extra.weight" in message

    model, report = converter.convert(broken, strict=False)
    assert "layers.1.residual_group.blocks.0.attn.q.weight" in report.missing
    assert "extra.weight" in report.unexpected
    assert not any(k.endswith(".attn_mask") for k in report.unexpected)


def test_converter_infers_configuration_and_rejects_unshifted_checkpoints():
    state_dict = _small_state_dict()
    config = get_converter("srformer").config_from_state_dict(state_dict)
    assert config == {
        "upscale": 4, "window_size": 8, "depths": [2, 2], "embed_dim": 24,
        "num_heads": [2, 3], "mlp_ratio": 2.0, "upsampler": "nearest+conv",
        "resi_connection": "1conv",
    }
    unshifted = {k: v for k, v in state_dict.items() if not k.endswith(".attn_mask")}
    with pytest.raises(ConversionError, match="without shifted windows"):
        get_converter("srformer").config_from_state_dict(unshifted)


@pytest.mark.slow
def test_pbasr_srformer_matches_torch_reference(rng):
    module = _randomized_reference()  # PBaSR: window 22, 6x6 blocks, 180 channels, x4
    assert sum(p.numel() for p in module.parameters()) == PBASR_PARAMETERS
    model, _ = _convert(module)
    assert model.count_params() == PBASR_PARAMETERS
    lr = rng.random((1, 37, 29, 3), dtype=np.float32)
    np.testing.assert_allclose(_predict(model, lr), _torch_sr(module, lr), atol=1e-4, rtol=0)
