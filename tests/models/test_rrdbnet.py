"""RRDBNet: torch parity through the converters (BasicSR and ESRGAN key names, x4/x2/x1),
parameter counts, mixed precision, .keras round trips within and across backends."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from torch_reference.rrdbnet import TorchRRDBNet, to_esrgan_key_names  # noqa: E402

from keras_pbasr.convert import (  # noqa: E402
    ConversionError,
    infer_converter,
    load_torch_state_dict,
)
from keras_pbasr.layers.padding import ReflectPadToMultiple  # noqa: E402
from keras_pbasr.models.rrdbnet.rrdbnet_backbone import RRDBNet  # noqa: E402
from keras_pbasr.presets import convert_checkpoint  # noqa: E402
from keras_pbasr.presets.preset_io import load_preset_dir  # noqa: E402

# One small configuration across the test files, so JAX reuses its compiled initialisers.
SMALL = {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}
H, W = 37, 29  # odd on purpose: x2 / x1 need the in-model reflect padding
# Under torch's default initialisation the dense blocks' residuals (scaled by 0.2 twice) barely
# reach the output: a LeakyReLU slope of 0.1 instead of 0.2 moved it by 5e-5, a flipped kernel
# in one conv by 5e-5, both below a 1e-4 tolerance. Multiplying the body's weights by
# BODY_GAIN makes every conv move the output by >= 3.6e-3 (test_every_conv_moves_the_output).
BODY_GAIN = 4.0
# Max |keras - torch| measured 6.0e-8 (TF, JAX, torch; notes/issue-20-tests.md); margin ~8x,
# and ~7000x below the smallest effect of a single flipped kernel (3.6e-3).
PARITY_ATOL = 5e-7


def amplified_rrdbnet(scale: int, seed: int, **config) -> TorchRRDBNet:
    """TorchRRDBNet with torch's default initialisation and the body's weights times
    BODY_GAIN, so that every block matters in the parity tests."""
    torch.manual_seed(seed)
    net = TorchRRDBNet(scale=scale, **{**SMALL, **config})
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith("body."):
                param.mul_(BODY_GAIN)
    return net


def torch_reference_output(net, x_nhwc: np.ndarray, scale: int) -> np.ndarray:
    """Real-ESRGAN inference: reflect-pad bottom/right for the pixel unshuffle, crop back."""
    multiple = {4: 1, 2: 2, 1: 4}[scale]
    x = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2))
    h, w = x.shape[2:]
    x = F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="reflect")
    with torch.no_grad():
        out = net.eval()(x).numpy().transpose(0, 2, 3, 1)
    return out[:, : h * scale, : w * scale]


def convert(tmp_path, state_dict, key="params_ema", through_preset=True):
    """Saves a checkpoint and converts it, through a preset directory on disk or in memory."""
    ckpt = tmp_path / "net.pth"
    torch.save(state_dict if key is None else {key: state_dict}, ckpt)
    if through_preset:
        return load_preset_dir(convert_checkpoint(ckpt, tmp_path / "preset"))
    sd = load_torch_state_dict(ckpt)
    return infer_converter(sd).convert(sd)[0]


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_converted_rrdbnet_matches_torch(tmp_path, rng, scale):
    net = amplified_rrdbnet(scale, seed=scale)
    model = convert(tmp_path, net.state_dict(), through_preset=scale == 4)
    x = rng.random((1, H, W, 3), dtype=np.float32)
    expected = torch_reference_output(net, x, scale)
    got = keras.ops.convert_to_numpy(model(x))
    assert got.shape == (1, H * scale, W * scale, 3)
    assert np.abs(got - expected).max() <= PARITY_ATOL
    assert model.get_config()["scale"] == scale


@pytest.mark.parametrize("multiple", [2, 4])
def test_reflect_padding_matches_numpy_in_compiled_predict(rng, multiple):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, ReflectPadToMultiple(multiple)(inputs))
    for h, w in [(5, 8), (8, 5), (7, 7), (8, 8)]:
        x = rng.random((1, h, w, 2), dtype=np.float32)
        pad = [(0, 0), (0, (-h) % multiple), (0, (-w) % multiple), (0, 0)]
        np.testing.assert_array_equal(model.predict_on_batch(x), np.pad(x, pad, mode="reflect"))


def test_esrgan_key_names_convert_from_a_bare_state_dict(tmp_path, rng):
    net = amplified_rrdbnet(4, seed=1)
    state_dict = to_esrgan_key_names(net.state_dict())
    assert "RRDB_trunk.1.RDB3.conv5.weight" in state_dict and "HRconv.bias" in state_dict
    model = convert(tmp_path, state_dict, key=None, through_preset=False)
    x = rng.random((1, H, W, 3), dtype=np.float32)
    got = keras.ops.convert_to_numpy(model(x))
    assert np.abs(got - torch_reference_output(net, x, 4)).max() <= PARITY_ATOL


@pytest.mark.backend_agnostic  # torch only: checks the parity tests' inputs, not Keras
# x2 / x1 share the body with x4 (36 torch forwards each): slow suite.
@pytest.mark.parametrize("scale", [4, pytest.param(2, marks=pytest.mark.slow),
                                   pytest.param(1, marks=pytest.mark.slow)])
def test_every_conv_moves_the_output(rng, scale):
    """The parity inputs can see a wrong conv anywhere: flipping any one kernel (as a
    converter that forgets a transpose would) moves the torch output by >> PARITY_ATOL."""
    net = amplified_rrdbnet(scale, seed=scale)
    x = rng.random((1, H, W, 3), dtype=np.float32)
    base = torch_reference_output(net, x, scale)
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            with torch.no_grad():
                module.weight.copy_(module.weight.flip(-1))
                moved = np.abs(torch_reference_output(net, x, scale) - base).max()
                module.weight.copy_(module.weight.flip(-1))
            assert moved >= 1000 * PARITY_ATOL, (name, moved)


def test_bsrgan_x2_layout_is_refused_with_a_reason(tmp_path):
    state_dict = to_esrgan_key_names(TorchRRDBNet(scale=4, **SMALL).state_dict())
    del state_dict["upconv2.weight"], state_dict["upconv2.bias"]
    torch.save(state_dict, tmp_path / "bsrgan_x2.pth")
    with pytest.raises(ConversionError, match="BSRGAN x2"):
        convert_checkpoint(tmp_path / "bsrgan_x2.pth", tmp_path / "out")


@pytest.mark.slow
def test_full_realesrgan_x4plus_matches_torch(tmp_path, rng):
    torch.manual_seed(0)
    net = TorchRRDBNet(scale=4)
    model = convert(tmp_path, net.state_dict())
    assert model.count_params() == 16_697_987
    x = rng.random((1, H, W, 3), dtype=np.float32)
    got = keras.ops.convert_to_numpy(model(x))
    # torch's default initialisation: 23 blocks, a weak signal, kept at the old bound 1e-4.
    assert np.abs(got - torch_reference_output(net, x, 4)).max() <= 1e-4


@pytest.mark.backend_agnostic  # a count, the same on every backend; the full build is slow on JAX
def test_realesrgan_x4plus_parameter_count():
    assert RRDBNet(scale=4).count_params() == 16_697_987  # reference.md, RealESRGAN_x4plus


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_parameter_counts_equal_torch(scale):
    torch_count = sum(p.numel() for p in TorchRRDBNet(scale=scale, **SMALL).parameters())
    assert RRDBNet(scale=scale, **SMALL).count_params() == torch_count


# Runs under another KERAS_BACKEND: loads each .keras file, saves its output and weights.
_LOAD_UNDER_OTHER_BACKEND = """
import sys
from pathlib import Path
import keras
import numpy as np
import keras_pbasr.models
folder = Path(sys.argv[1])
x = np.load(folder / "x.npy")
for name in sys.argv[2:]:
    model = keras.saving.load_model(folder / f"{name}.keras")
    np.save(folder / f"{name}_out.npy", keras.ops.convert_to_numpy(model(x)))
    np.savez(folder / f"{name}_weights.npz",
             *[keras.ops.convert_to_numpy(v) for v in model.weights])
print(keras.backend.backend())
"""


def test_keras_file_saved_here_loads_under_another_backend(tmp_path, rng):
    from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact

    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[keras.backend.backend()]
    x = rng.random((1, 9, 11, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    models = {
        "rrdbnet": RRDBNet(scale=2, **SMALL),
        "srvgg": SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4),
    }
    for name, model in models.items():
        model.save(tmp_path / f"{name}.keras")
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_UNDER_OTHER_BACKEND, str(tmp_path), *models],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == other
    for name, model in models.items():
        loaded = np.load(tmp_path / f"{name}_weights.npz")
        weights = [keras.ops.convert_to_numpy(v) for v in model.weights]
        assert len(loaded.files) == len(weights)
        for i, w in enumerate(weights):
            np.testing.assert_array_equal(loaded[f"arr_{i}"], w)
        # Identical weights; two backends' conv kernels may differ in the last float bits.
        got = np.load(tmp_path / f"{name}_out.npy")
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(x)), rtol=0, atol=1e-5)
