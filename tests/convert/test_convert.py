"""The checkpoint-conversion framework: layout helpers, safe torch loading and its errors,
strict / non-strict key checks, architecture inference, PBaSR ParallelNet_ncb files and
`pbasr convert`."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_reference.parallel_net import TorchParallelNetNCB  # noqa: E402
from torch_reference.rrdbnet import TorchRRDBNet  # noqa: E402

from keras_pbasr.cli import main as cli_main  # noqa: E402
from keras_pbasr.convert import (  # noqa: E402
    CheckpointError,
    ConversionError,
    available_converters,
    get_converter,
    load_torch_state_dict,
)
from keras_pbasr.convert.tensors import (  # noqa: E402
    pixel_shuffle_channel_permutation,
    pixel_shuffle_out_channels,
    pixel_unshuffle_in_channels,
    torch_conv_to_keras,
    torch_depthwise_conv_to_keras,
    torch_linear_to_keras,
)
from keras_pbasr.presets import convert_checkpoint  # noqa: E402
from keras_pbasr.presets.checkpoint_presets import (  # noqa: E402
    BLUR_BRANCH_DIR,
    GENERAL_BRANCH_DIR,
)
from keras_pbasr.presets.preset_io import load_preset_dir, read_metadata  # noqa: E402

SMALL = {"scale": 4, "num_feat": 8, "num_block": 2, "num_grow_ch": 4}  # as test_rrdbnet


def to_nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def to_nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def small_rrdbnet_state_dict(seed=0):
    torch.manual_seed(seed)
    return TorchRRDBNet(**SMALL).state_dict()


# Layout helpers -------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
def test_pixel_shuffle_permutations_reproduce_torch(rng, scale):
    channels, h, w = 3, 5, 7
    x = rng.random((1, channels * scale * scale, h, w), dtype=np.float32)
    expected = to_nhwc(torch.nn.functional.pixel_shuffle(torch.from_numpy(x), scale))
    perm = pixel_shuffle_channel_permutation(channels, scale)
    got = keras.ops.depth_to_space(x.transpose(0, 2, 3, 1)[..., perm], scale)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), expected)

    # A conv reading pixel_unshuffle output: torch weights vs permuted Keras weights.
    image = rng.random((1, channels, h * scale, w * scale), dtype=np.float32)
    conv = torch.nn.Conv2d(channels * scale * scale, 5, 3, padding=1)
    with torch.no_grad():
        expected = to_nhwc(conv(torch.nn.functional.pixel_unshuffle(torch.from_numpy(image),
                                                                     scale)))
    kernel = pixel_unshuffle_in_channels(
        torch_conv_to_keras(conv.weight.detach().numpy()), channels, scale
    )
    features = keras.ops.space_to_depth(image.transpose(0, 2, 3, 1), scale)
    got = keras.ops.conv(features, kernel, padding="same") + conv.bias.detach().numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, atol=1e-5)

    # A conv feeding PixelShuffle: kernel and bias both permuted.
    conv = torch.nn.Conv2d(4, channels * scale * scale, 3, padding=1)
    feat = rng.random((1, 4, h, w), dtype=np.float32)
    with torch.no_grad():
        expected = to_nhwc(torch.nn.functional.pixel_shuffle(conv(torch.from_numpy(feat)),
                                                             scale))
    kernel = pixel_shuffle_out_channels(
        torch_conv_to_keras(conv.weight.detach().numpy()), channels, scale
    )
    bias = pixel_shuffle_out_channels(conv.bias.detach().numpy(), channels, scale)
    out = keras.ops.conv(feat.transpose(0, 2, 3, 1), kernel, padding="same") + bias
    got = keras.ops.depth_to_space(out, scale)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, atol=1e-5)


def test_depthwise_and_linear_layouts_reproduce_torch(rng):
    x = rng.random((1, 4, 9, 7), dtype=np.float32)
    conv = torch.nn.Conv2d(4, 8, 5, padding=2, groups=4, bias=False)  # multiplier 2
    with torch.no_grad():
        expected = to_nhwc(conv(torch.from_numpy(x)))
    kernel = torch_depthwise_conv_to_keras(conv.weight.detach().numpy(), channel_multiplier=2)
    assert kernel.shape == (5, 5, 4, 2)
    got = keras.ops.depthwise_conv(x.transpose(0, 2, 3, 1), kernel, padding="same")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, atol=1e-5)

    linear = torch.nn.Linear(6, 3)
    v = rng.random((2, 6), dtype=np.float32)
    with torch.no_grad():
        expected = linear(torch.from_numpy(v)).numpy()
    got = v @ torch_linear_to_keras(linear.weight.detach().numpy()) + linear.bias.detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="4 dimensions"):
        torch_conv_to_keras(np.zeros((3, 3)))


# Reading checkpoints --------------------------------------------------------------------

def test_state_dict_selection_prefix_stripping_and_dtypes(tmp_path):
    ema = {"module.conv.weight": torch.ones(2, 2, dtype=torch.float16)}
    params = {"conv.weight": torch.zeros(2, 2)}
    torch.save({"params": params, "params_ema": ema, "iter": 5}, tmp_path / "both.pth")
    sd = load_torch_state_dict(tmp_path / "both.pth")
    assert list(sd) == ["conv.weight"] and sd["conv.weight"].dtype == np.float32
    assert sd["conv.weight"].sum() == 4  # params_ema first
    assert load_torch_state_dict(tmp_path / "both.pth", key="params")["conv.weight"].sum() == 0
    with pytest.raises(CheckpointError, match="no entry 'ema'"):
        load_torch_state_dict(tmp_path / "both.pth", key="ema")

    torch.save(params, tmp_path / "bare.pth")
    assert list(load_torch_state_dict(tmp_path / "bare.pth")) == ["conv.weight"]
    torch.save({"epoch": 3, "lr": [0.1]}, tmp_path / "no_weights.pth")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_torch_state_dict(tmp_path / "no_weights.pth")


class _NotWeights:
    def __init__(self):
        self.value = 1


@pytest.mark.parametrize("case", [
    "missing", "empty", "text", "truncated_zip", "truncated_legacy", "pickled_object",
])
def test_bad_files_get_clear_errors(tmp_path, case):
    path = tmp_path / f"{case}.pth"
    good = {"params": {"conv.weight": torch.zeros(64, 64, 3, 3)}}
    expected = {
        "missing": "does not exist",
        "empty": "is empty",
        "text": "not a PyTorch checkpoint",
        "truncated_zip": "truncated",
        "truncated_legacy": "truncated",
        "pickled_object": "would execute code",
    }[case]
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is a README, not weights\n")
    elif case == "truncated_zip":
        torch.save(good, path)
        path.write_bytes(path.read_bytes()[:5000])
    elif case == "truncated_legacy":
        torch.save(good, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:5000])
    elif case == "pickled_object":
        torch.save({"params": {"w": torch.zeros(1)}, "obj": _NotWeights()}, path)
    with pytest.raises(CheckpointError, match=expected) as info:
        load_torch_state_dict(path)
    assert path.name in str(info.value)


# Strict and non-strict key checks ---------------------------------------------------------

@pytest.mark.parametrize("problem", ["missing", "unexpected", "mis-shaped"])
def test_strict_conversion_lists_every_bad_key(tmp_path, problem):
    sd = small_rrdbnet_state_dict()
    if problem == "missing":
        del sd["body.0.rdb2.conv3.weight"], sd["conv_hr.bias"]
        bad = ["body.0.rdb2.conv3.weight", "conv_hr.bias"]
    elif problem == "unexpected":
        sd["body.0.rdb1.extra.weight"] = torch.zeros(3)
        sd["head.bias"] = torch.zeros(3)
        bad = ["body.0.rdb1.extra.weight", "head.bias"]
    else:
        sd["conv_up1.weight"] = torch.zeros(8, 8, 5, 5)  # torch shape is (8, 8, 3, 3)
        bad = ["conv_up1.weight"]
    torch.save({"params": sd}, tmp_path / "bad.pth")
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(tmp_path / "bad.pth", tmp_path / "out")
    message = str(info.value)
    assert f"{problem} " in message or f"{problem}:" in message
    for key in bad:
        assert key in message
    assert "bad.pth" in message
    if problem == "mis-shaped":
        assert "(8, 8, 5, 5)" in message
    assert not (tmp_path / "out").exists()

    # Non-strict: converts the rest, records what it skipped.
    with pytest.warns(UserWarning, match="skipped"):
        out = convert_checkpoint(tmp_path / "bad.pth", tmp_path / "out", strict=False)
    conversion = read_metadata(out)["conversion"]
    skipped = conversion["missing"] + conversion["unexpected"] + [
        m["key"] for m in conversion["mismatched"]
    ]
    assert sorted(skipped) == sorted(bad)
    model = load_preset_dir(out)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("conv_first").kernel),
        torch_conv_to_keras(sd["conv_first.weight"].numpy()),
    )


def test_unknown_architecture_and_bad_arch_name(tmp_path):
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "foo.pth")
    with pytest.raises(ConversionError, match="cannot tell the architecture"):
        convert_checkpoint(tmp_path / "foo.pth", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown architecture 'nope'.*rrdbnet"):
        convert_checkpoint(tmp_path / "foo.pth", tmp_path / "out", arch="nope")
    assert {"rrdbnet", "rrdbnet_esrgan", "srvgg"} <= set(available_converters())
    assert get_converter("rrdbnet").matches(small_rrdbnet_state_dict().keys())
    assert not get_converter("srvgg").matches(small_rrdbnet_state_dict().keys())


# PBaSR ParallelNet_ncb ----------------------------------------------------------------------

def test_parallel_net_ncb_converts_to_the_branch_average(tmp_path, rng):
    torch.manual_seed(3)
    net = TorchParallelNetNCB(lambda: TorchRRDBNet(**SMALL))
    with torch.no_grad():  # make the branches clearly different; combinet stays stale
        for p in net.defocus_branch.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"params": sd, "params_ema": {"x.weight": torch.zeros(1)}}, tmp_path / "pb.pth")
    out = convert_checkpoint(tmp_path / "pb.pth", tmp_path / "out", save_branches=True)

    x = rng.random((1, 13, 11, 3), dtype=np.float32)
    net.deploy()  # what the official code does before validation
    with torch.no_grad():
        expected = to_nhwc(net(to_nchw(x)))
        general = to_nhwc(net.general_branch(to_nchw(x)))
        blur = to_nhwc(net.defocus_branch(to_nchw(x)))
    deployed = keras.ops.convert_to_numpy(load_preset_dir(out)(x))
    assert np.abs(deployed - expected).max() <= 1e-4
    assert np.abs(general - blur).max() > 1e-3  # the branches really differ
    for folder, reference in ((GENERAL_BRANCH_DIR, general), (BLUR_BRANCH_DIR, blur)):
        branch = keras.ops.convert_to_numpy(load_preset_dir(out / folder)(x))
        assert np.abs(branch - reference).max() <= 1e-4
    meta = read_metadata(out)
    assert meta["source_state_dict_key"] == "params" and meta["arch"] == "rrdbnet"
    assert meta["source_file"] == "pb.pth" and len(meta["source_sha256"]) == 64


def test_parallel_net_with_unequal_branches_is_refused(tmp_path):
    net = TorchParallelNetNCB(lambda: TorchRRDBNet(**SMALL))
    sd = net.state_dict()
    del sd["defocus_branch.conv_last.bias"]
    torch.save({"params": sd}, tmp_path / "pb.pth")
    with pytest.raises(ValueError, match="only in general_branch.*conv_last.bias"):
        convert_checkpoint(tmp_path / "pb.pth", tmp_path / "out")


# The CLI -------------------------------------------------------------------------------------

def test_cli_convert_refuses_a_non_empty_output_dir(tmp_path, capsys):
    torch.save({"params_ema": small_rrdbnet_state_dict()}, tmp_path / "net.pth")
    out = tmp_path / "preset"
    assert cli_main(["convert", str(tmp_path / "net.pth"), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["registered_name"] == "keras_pbasr>RRDBNet"

    assert cli_main(["convert", str(tmp_path / "net.pth"), str(out)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert cli_main(["convert", str(tmp_path / "net.pth"), str(out), "--overwrite",
                     "--arch", "srvgg"]) == 1
    assert "srvgg" in capsys.readouterr().err
    assert cli_main(["convert", str(tmp_path / "net.pth"), str(out), "--overwrite",
                     "--key", "params_ema", "--arch", "rrdbnet"]) == 0
