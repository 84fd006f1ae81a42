"""FeMaSR (HQ VQGAN and LQ stage): parity with an independent torch reference through the
converter, PBaSR ParallelNet files, the converter's key handling, serialization, frozen module
groups and the training losses."""

from __future__ import annotations

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from keras_pbasr.cli import main as cli_main  # noqa: E402
from keras_pbasr.convert import ConversionError, get_converter  # noqa: E402
from keras_pbasr.convert.registry import infer_converter  # noqa: E402
from keras_pbasr.layers.padding import symmetric_indices  # noqa: E402
from keras_pbasr.models.femasr.femasr_backbone import (  # noqa: E402
    FeMaSR,
    FeMaSRHQ,
    frozen_groups,
    module_group,
)
from keras_pbasr.models.femasr.femasr_layers import (  # noqa: E402
    relative_position_index,
    swin_attention_mask,
)
from keras_pbasr.presets import convert_checkpoint  # noqa: E402
from keras_pbasr.presets.checkpoint_presets import (  # noqa: E402
    BLUR_BRANCH_DIR,
    GENERAL_BRANCH_DIR,
)
from keras_pbasr.presets.preset_io import load_preset_dir  # noqa: E402
from keras_pbasr.utils.torch_files import state_dict_to_numpy  # noqa: E402
from tests.torch_reference.femasr import TorchFeMaSR, _bias_index, swin_mask  # noqa: E402
from tests.torch_reference.parallel_net import TorchParallelNetNCB  # noqa: E402

# Tiny configurations: GroupNorm(32) needs >= 32 channels; one RSTB of two blocks (unshifted
# and shifted) with 4x4 windows.
TINY_TORCH = dict(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8)
TINY_SWIN = dict(num_layers=1, depth=2, heads=2, ws=4, mlp_ratio=2.0)
TINY_LQ = dict(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8, num_swin_layers=1,
               swin_depth=2, swin_num_heads=2, window_size=4, swin_mlp_ratio=2.0)
TINY_HQ = dict(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8)
FEMASR_X4_PARAMETERS = 34_059_971


def _randomized_reference(lq: bool = True, seed: int = 0) -> TorchFeMaSR:
    """Every parameter matters: random GroupNorm / LayerNorm affines, biases, bias tables and
    a unit-scale codebook (so that different codes give clearly different outputs)."""
    torch.manual_seed(seed)
    module = TorchFeMaSR(lq=lq, swin=TINY_SWIN if lq else None, **TINY_TORCH).eval()
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("relative_position_bias_table"):
                param.normal_(0.0, 0.5)
            elif name.endswith("embedding.weight"):
                param.normal_(0.0, 1.0)
            elif "norm" in name and name.endswith(".weight"):
                param.normal_(1.0, 0.1)
            elif name.endswith(".bias"):
                param.normal_(0.0, 0.05)
    return module


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _torch_out(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(_nchw(x)).numpy().transpose(0, 2, 3, 1)


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=len(x), verbose=0))


@pytest.fixture(scope="module")
def lq_reference():
    return _randomized_reference(lq=True)


@pytest.fixture(scope="module")
def lq_converted(lq_reference):
    state_dict = state_dict_to_numpy(lq_reference.state_dict())
    converter = infer_converter(state_dict)
    model, report = converter.convert(state_dict)
    return converter, model, report


def test_lq_stage_matches_torch_reference(lq_reference, lq_converted, rng):
    converter, model, report = lq_converted
    assert converter.name == "femasr"
    assert report.ok and report.ignored
    assert all(k.endswith(("attn_mask", "relative_position_index")) for k in report.ignored)
    # Odd sizes: padded by 3 / 13 px to 16 / 32, cropped back after x4.
    lr = rng.random((2, 13, 19, 3), dtype=np.float32)
    expected = _torch_out(lq_reference, lr)
    out = _predict(model, lr)
    assert out.shape == (2, 52, 76, 3)
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)
    assert np.std(expected) > 0.1  # a signal far above the tolerance


def test_hq_stage_matches_torch_reference(rng):
    module = _randomized_reference(lq=False, seed=1)
    state_dict = state_dict_to_numpy(module.state_dict())
    converter = infer_converter(state_dict)
    assert converter.name == "femasr_hq"
    model, _ = converter.convert(state_dict)
    hr = rng.random((1, 37, 45, 3), dtype=np.float32)  # padded to 64 x 64
    expected = _torch_out(module, hr)
    np.testing.assert_allclose(_predict(model, hr), expected, atol=1e-4, rtol=0)


# Keras ops: checked on every backend (not backend_agnostic).
def test_hq_code_indices_match_torch_reference(rng):
    module = _randomized_reference(lq=False, seed=1)
    model, _ = get_converter("femasr_hq").convert(state_dict_to_numpy(module.state_dict()))
    patch = rng.random((1, 16, 24, 3), dtype=np.float32)
    with torch.no_grad():
        _, _, torch_indices = module.encode_and_decode(_nchw(patch))
    indices = keras.ops.convert_to_numpy(model.code_indices(patch))
    np.testing.assert_array_equal(indices, torch_indices.numpy())
    assert len(np.unique(indices)) > 1


def test_parallel_net_converts_to_the_branch_average(tmp_path):
    torch.manual_seed(5)
    net = TorchParallelNetNCB(lambda: _randomized_reference(lq=True, seed=2))
    with torch.no_grad():  # make the trainable branch parts differ; combinet stays stale
        for name, p in net.defocus_branch.named_parameters():
            if name.startswith("multiscale_encoder"):
                p.add_(0.05 * torch.randn_like(p))
    torch.save({"params": net.state_dict()}, tmp_path / "pbasr_femasr.pth")
    out = convert_checkpoint(tmp_path / "pbasr_femasr.pth", tmp_path / "preset",
                             save_branches=True)
    deployed = load_preset_dir(out).get_weights()
    general = load_preset_dir(out / GENERAL_BRANCH_DIR).get_weights()
    blur = load_preset_dir(out / BLUR_BRANCH_DIR).get_weights()
    assert max(np.abs(g - b).max() for g, b in zip(general, blur)) > 1e-3
    for merged, g, b in zip(deployed, general, blur):
        np.testing.assert_allclose(merged, (g + b) / 2, atol=1e-7)
    # What the official code deploys (combinet = 0.5 * general + 0.5 * defocus), converted by
    # the parity-tested converter: the same weights, hence the same outputs.
    net.deploy()
    official, _ = get_converter("femasr").convert(state_dict_to_numpy(net.combinet.state_dict()))
    for merged, expected in zip(deployed, official.get_weights()):
        np.testing.assert_allclose(merged, expected, atol=1e-6)


def test_cli_convert_writes_a_femasr_preset(lq_reference, lq_converted, tmp_path, capsys):
    torch.save({"params": lq_reference.state_dict()}, tmp_path / "femasr_x4.pth")
    out = tmp_path / "preset"
    assert cli_main(["convert", str(tmp_path / "femasr_x4.pth"), str(out), "--arch", "femasr"]) == 0
    assert "femasr" in capsys.readouterr().out
    # The same weights as the parity-tested conversion.
    for loaded, expected in zip(load_preset_dir(out).get_weights(), lq_converted[1].get_weights()):
        np.testing.assert_array_equal(loaded, expected)


def test_converter_reports_bad_keys_and_refuses_multiscale_codebooks(lq_reference):
    state_dict = state_dict_to_numpy(lq_reference.state_dict())
    converter = get_converter("femasr")
    broken = dict(state_dict)
    del broken["decoder_group.1.block.2.conv.3.norm.weight"]
    broken["unknown_head.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError) as excinfo:
        converter.assign(converter.build(converter.config_from_state_dict(state_dict)), broken)
    assert "decoder_group.1.block.2.conv.3.norm.weight" in str(excinfo.value)
    assert "unknown_head.weight" in str(excinfo.value)

    multiscale = {**state_dict, "quantize_group.1.embedding.weight": np.zeros((4, 8), "float32")}
    with pytest.raises(ConversionError, match="codebook scales"):
        converter.config_from_state_dict(multiscale)


@pytest.mark.backend_agnostic
def test_converter_infers_the_configuration_and_ignores_the_semantic_head():
    lq = TorchFeMaSR(swin=TINY_SWIN, **TINY_TORCH).state_dict()
    config = get_converter("femasr").config_from_state_dict(state_dict_to_numpy(lq))
    assert config == {
        "channels": [32, 32, 32, 32], "codebook_size": 16, "code_dim": 8, "upscale": 4,
        "num_swin_layers": 1, "swin_depth": 2, "swin_num_heads": 2, "window_size": 4,
        "swin_mlp_ratio": 2.0,
    }
    hq = TorchFeMaSR(lq=False, use_semantic_loss=True, channels=(32, 32, 32, 32),
                     codebook_size=16, code_dim=512)
    converter = get_converter("femasr_hq")
    assert converter.is_ignored("conv_semantic.0.weight")
    hq_config = converter.config_from_state_dict(state_dict_to_numpy(hq.state_dict()))
    assert hq_config == {"channels": [32, 32, 32, 32], "codebook_size": 16, "code_dim": 512}


@pytest.mark.backend_agnostic
def test_pbasr_frozen_module_groups():
    model = FeMaSR(**TINY_LQ)  # default: PBaSR's frozen_module_keywords
    groups = {module_group(layer.name) for layer in model.layers if not layer.trainable}
    assert groups == {"quantize_group", "decoder_group", "after_quant_group", "out_conv"}
    trainable = {id(v) for v in model.trainable_variables}
    assert id(model.quantizer.embedding) not in trainable
    assert id(model.get_layer("before_quant").kernel) in trainable
    assert id(model.get_layer("encoder_in_conv").kernel) in trainable
    assert len(FeMaSR(**TINY_LQ, frozen_modules=()).non_trainable_variables) == 0
    # Official keyword semantics: substring of the module group name.
    assert frozen_groups(["quantize"]) == {"quantize_group"}
    with pytest.raises(ValueError, match="matches none"):
        FeMaSR(**TINY_LQ, frozen_modules=("codebook",))


# Keras ops: checked on every backend (not backend_agnostic).
def test_training_losses_against_the_hq_prior(rng):
    lq = FeMaSR(**TINY_LQ)
    prior = FeMaSRHQ(**TINY_HQ)
    lr = rng.random((2, 16, 16, 3), dtype=np.float32)
    hr = rng.random((2, 64, 64, 3), dtype=np.float32)
    sr, losses = lq.training_outputs(lr, hr, prior=prior)
    assert tuple(sr.shape) == (2, 64, 64, 3) and set(losses) == {"codebook", "code_gram"}

    z = keras.ops.convert_to_numpy(lq.encode_and_decode(lr)["z"])  # (2, 8, 8, code_dim)
    codes = keras.ops.convert_to_numpy(prior.code_indices(hr))
    target = keras.ops.convert_to_numpy(lq.quantizer.embedding)[codes]
    flat_z, flat_t = z.reshape(2, -1, 8), target.reshape(2, -1, 8)
    gram_z = flat_z.transpose(0, 2, 1) @ flat_z / 64
    gram_t = flat_t.transpose(0, 2, 1) @ flat_t / 64
    codebook_loss, gram_loss = (float(keras.ops.convert_to_numpy(losses[name]))
                                for name in ("codebook", "code_gram"))
    np.testing.assert_allclose(codebook_loss, 0.25 * np.mean((z - target) ** 2), rtol=1e-5)
    np.testing.assert_allclose(gram_loss, np.mean((gram_z - gram_t) ** 2), rtol=1e-4)
    with pytest.raises(ValueError, match="multiples of 8"):
        lq.training_outputs(lr[:, :12], hr, prior=prior)
    _, plain = lq.training_outputs(lr, hr)  # no prior: the plain VQ loss
    assert set(plain) == {"codebook"} and float(keras.ops.convert_to_numpy(plain["codebook"])) > 0


def test_swin_index_and_mask_match_reference():
    np.testing.assert_array_equal(relative_position_index(4), _bias_index(4).numpy())
    mask = keras.ops.convert_to_numpy(swin_attention_mask(8, 12, 4, 2))
    np.testing.assert_array_equal(mask, swin_mask(8, 12, 4, 2).numpy())


@pytest.mark.parametrize("length, padded", [(13, 16), (16, 32), (3, 11)])
def test_symmetric_indices_match_numpy_symmetric(length, padded):
    expected = np.arange(length)
    while len(expected) < padded:  # numpy pads at most `length` per call
        expected = np.pad(expected, (0, min(length, padded - len(expected))), mode="symmetric")
    got = keras.ops.convert_to_numpy(symmetric_indices(length, padded))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.backend_agnostic
def test_full_size_torch_reference_has_the_published_parameter_count():
    module = TorchFeMaSR()
    assert sum(p.numel() for p in module.parameters()) == FEMASR_X4_PARAMETERS


@pytest.mark.slow
def test_full_size_lq_stage_matches_torch_reference(rng):
    torch.manual_seed(0)
    module = TorchFeMaSR().eval()  # FeMaSR x4: 4 RSTBs of 6 blocks, 256 channels
    with torch.no_grad():
        module.quantize_group[0].embedding.weight.normal_(0.0, 1.0)
    model, report = get_converter("femasr").convert(state_dict_to_numpy(module.state_dict()))
    assert report.ok and model.count_params() == FEMASR_X4_PARAMETERS
    lr = rng.random((1, 21, 27, 3), dtype=np.float32)  # padded to 32 x 32
    np.testing.assert_allclose(_predict(model, lr), _torch_out(module, lr), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_full_size_models_count_like_torch():
    assert FeMaSR().count_params() == FEMASR_X4_PARAMETERS
    hq = TorchFeMaSR(lq=False)
    assert FeMaSRHQ().count_params() == sum(p.numel() for p in hq.parameters())
