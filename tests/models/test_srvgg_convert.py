"""SRVGGNetCompact from Real-ESRGAN checkpoints: torch parity for both activations (the
pixel-shuffle channel order included) and the released configurations' parameter counts."""

from __future__ import annotations

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_reference.srvgg import TorchSRVGGNetCompact  # noqa: E402

from keras_pbasr.cli import main as cli_main  # noqa: E402
from keras_pbasr.convert import ConversionError  # noqa: E402
from keras_pbasr.models.srvgg.srvgg_backbone import SRVGGNetCompact  # noqa: E402
from keras_pbasr.presets import convert_checkpoint  # noqa: E402
from keras_pbasr.presets.preset_io import load_preset_dir  # noqa: E402


def torch_output(net, x_nhwc):
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2)))
    return out.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize(("act_type", "upscale"), [("prelu", 4), ("leakyrelu", 4), ("prelu", 2)])
def test_converted_srvgg_matches_torch(tmp_path, rng, act_type, upscale):
    torch.manual_seed(7)
    net = TorchSRVGGNetCompact(num_feat=8, num_conv=2, upscale=upscale, act_type=act_type)
    if act_type == "prelu":  # distinct slopes per channel, so a wrong layout shows
        with torch.no_grad():
            for module in net.body:
                if isinstance(module, torch.nn.PReLU):
                    module.weight.uniform_(-0.5, 0.5)
    torch.save({"params": net.state_dict()}, tmp_path / "compact.pth")
    overrides = None if act_type == "prelu" else {"act_type": act_type}
    out = convert_checkpoint(tmp_path / "compact.pth", tmp_path / "p", config_overrides=overrides)
    model = load_preset_dir(out)
    assert model.get_config()["act_type"] == act_type
    x = rng.random((1, 37, 29, 3), dtype=np.float32)
    got = keras.ops.convert_to_numpy(model(x))
    assert got.shape == (1, 37 * upscale, 29 * upscale, 3)
    assert np.abs(got - torch_output(net, x)).max() <= 1e-4


def test_activation_without_weights_must_be_named(tmp_path, capsys):
    net = TorchSRVGGNetCompact(num_feat=8, num_conv=2, act_type="leakyrelu")
    torch.save({"params": net.state_dict()}, tmp_path / "compact.pth")
    with pytest.raises(ConversionError, match="act_type"):
        convert_checkpoint(tmp_path / "compact.pth", tmp_path / "p")
    args = ["convert", str(tmp_path / "compact.pth"), str(tmp_path / "p")]
    assert cli_main(args) == 1
    assert "--set act_type=leakyrelu" in capsys.readouterr().err
    assert cli_main([*args, "--set", "act_type=leakyrelu"]) == 0
    assert load_preset_dir(tmp_path / "p").get_config()["act_type"] == "leakyrelu"


@pytest.mark.backend_agnostic  # a count, the same on every backend
@pytest.mark.parametrize(("num_conv", "expected"), [(32, 1_213_296), (16, None)])
def test_released_configurations_parameter_counts(num_conv, expected):
    """realesr-general-x4v3 (num_conv 32, count from reference.md) and animevideov3 (16)."""
    model = SRVGGNetCompact(num_feat=64, num_conv=num_conv, upscale=4, act_type="prelu")
    torch_count = sum(
        p.numel() for p in TorchSRVGGNetCompact(num_feat=64, num_conv=num_conv).parameters()
    )
    assert model.count_params() == torch_count
    if expected is not None:
        assert model.count_params() == expected
