"""Presets: save/load round trip, built-in names, packaged presets, handles, clear errors."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
import sys
import types
import zipfile

import keras
import numpy as np
import pytest

import keras_pbasr.presets as presets
from keras_pbasr.models import SRVGGNetCompact
from keras_pbasr.models.registry import BUILTIN_PRESETS, cache_dir
from keras_pbasr.presets import PresetError, from_preset, list_presets, parse_handle, save_to_preset


def tiny_model() -> SRVGGNetCompact:
    model = SRVGGNetCompact(num_feat=8, num_conv=2)
    model(np.zeros((1, 8, 8, 3), "float32"))
    return model


def outputs(model, x):
    return keras.ops.convert_to_numpy(model(x))


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def test_round_trip_keeps_class_config_weights_and_metadata(tmp_path, rng):
    model = tiny_model()
    path = save_to_preset(model, tmp_path / "p", metadata={"source": "unit test"})
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "metadata.json", "model.weights.h5"
    ]
    config = json.loads((path / "config.json").read_text())
    assert config["registered_name"] == "keras_pbasr>SRVGGNetCompact"
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["parameter_count"] == model.count_params()
    assert meta["source"] == "unit test" and len(meta["weights_sha256"]) == 64
    loaded = from_preset(path)
    assert isinstance(loaded, SRVGGNetCompact) and loaded.get_config() == model.get_config()
    x = rng.random((1, 11, 13, 3), dtype=np.float32)
    np.testing.assert_array_equal(outputs(loaded, x), outputs(model, x))
    fresh = from_preset(path, load_weights=False)
    assert np.abs(outputs(fresh, x) - outputs(model, x)).max() > 1e-4
    with pytest.raises(FileExistsError):
        save_to_preset(model, path)


def test_corrupt_preset_directories_raise_clear_errors(tmp_path):
    with pytest.raises(PresetError, match="does not exist"):
        from_preset(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PresetError, match="config.json is missing"):
        from_preset(empty)
    path = save_to_preset(tiny_model(), tmp_path / "p")
    weights = path / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PresetError, match="sha256"):
        from_preset(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(PresetError, match="not valid JSON"):
        from_preset(path)
    (path / "config.json").write_text(json.dumps({
        "module": "keras_pbasr.no_such_module", "class_name": "Gone",
        "registered_name": "keras_pbasr>Gone", "config": {},
    }))
    with pytest.raises(PresetError, match="keras_pbasr.no_such_module"):
        from_preset(path)


def test_unknown_name_lists_the_builtin_names(keras_home):
    with pytest.raises(PresetError, match="unknown preset 'no_such_model'.*realesrgan_x4plus"):
        from_preset("no_such_model")


def test_missing_official_weights_say_where_and_how(keras_home):
    with pytest.raises(PresetError) as info:
        from_preset("realesr-general-x4v3")
    message = str(info.value)
    assert "releases/download/v0.2.5.0/realesr-general-x4v3.pth" in message
    assert (
        f"pbasr convert realesr-general-x4v3.pth {cache_dir() / 'realesr_general_x4v3'} "
        "--arch srvgg" in message
    )
    # The architecture alone always builds.
    model = from_preset("realesr_general_x4v3", load_weights=False)
    assert isinstance(model, SRVGGNetCompact) and model.count_params() == 1_213_296


def test_registry_covers_every_official_family():
    names = set(BUILTIN_PRESETS)
    assert {"realesrgan_x4plus", "realesr_general_x4v3", "pbasr_esrgan", "pbasr_srformer",
            "pbasr_femasr"} <= names
    for preset in BUILTIN_PRESETS.values():
        assert preset.source.url.startswith("https://")
        assert preset.source.sha256 is None or len(preset.source.sha256) == 64
        assert preset.convert_command().startswith("pbasr convert ")


@pytest.mark.backend_agnostic
def test_builtin_preset_configs_name_real_constructor_arguments():
    # Keras' functional models drop unknown config keys silently: a preset written with the
    # official option names would build the default model.
    for preset in BUILTIN_PRESETS.values():
        cls = getattr(importlib.import_module(preset.module),
                      preset.registered_name.split(">")[-1])
        accepted = inspect.signature(cls.__init__).parameters
        unknown = sorted(set(preset.config) - set(accepted))
        assert not unknown, f"{preset.name}: {cls.__name__} takes no {unknown}"


def test_converted_official_preset_loads_by_name(keras_home, rng):
    model = tiny_model()
    save_to_preset(model, cache_dir() / "realesr_general_x4v3")
    info = list_presets()["realesr_general_x4v3"]
    assert info["available"] and info["location"].startswith(str(keras_home))
    loaded = from_preset("realesr_general_x4v3")
    x = rng.random((1, 9, 9, 3), dtype=np.float32)
    np.testing.assert_array_equal(outputs(loaded, x), outputs(model, x))


def test_packaged_presets_load_by_name_offline(tmp_path, monkeypatch, rng):
    packaged = tmp_path / "builtin"
    model = tiny_model()
    save_to_preset(model, packaged / "pbasr_srvgg_demo", metadata={"description": "demo"})
    monkeypatch.setattr(presets, "PACKAGED_PRESETS_DIR", packaged)
    assert list_presets()["pbasr_srvgg_demo"]["description"] == "demo"
    x = rng.random((1, 9, 9, 3), dtype=np.float32)
    np.testing.assert_array_equal(outputs(from_preset("pbasr-srvgg-demo"), x), outputs(model, x))


@pytest.mark.backend_agnostic
def test_handle_parsing():
    digest = "ab" * 32
    assert parse_handle("hf://owner/repo") == presets.PresetHandle("hf", "owner/repo")
    assert parse_handle("hf://owner/repo/sub/dir").subdir == "sub/dir"
    kaggle = presets.PresetHandle("kaggle", "o/m/keras/v1/2")
    assert parse_handle("kaggle://o/m/keras/v1/2") == kaggle
    assert parse_handle(f"https://x.org/p.zip#sha256={digest}").sha256 == digest
    assert parse_handle("https://x.org/p.tar.gz", sha256=digest.upper()).sha256 == digest
    assert parse_handle("RealESRGAN-x4plus").location == "realesrgan_x4plus"
    assert parse_handle("./presets/mine").kind == "local"
    for bad, message in [
        ("hf://owner", "hf://OWNER/REPO"),
        ("kaggle://o/m", "kaggle://OWNER"),
        ("https://x.org/p.zip", "needs its sha256"),
        ("https://x.org/p.zip#sha256=123", "not a sha256"),
        (f"https://x.org/p.pth#sha256={digest}", ".zip"),
        (f"http://x.org/p.zip#sha256={digest}", "only https"),
        ("s3://bucket/p", "unknown preset scheme"),
    ]:
        with pytest.raises(PresetError, match=message):
            parse_handle(bad)


def _zipped_preset(tmp_path) -> tuple[bytes, SRVGGNetCompact]:
    model = tiny_model()
    path = save_to_preset(model, tmp_path / "zipme" / "mypreset")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for file in path.iterdir():
            zf.write(file, f"mypreset/{file.name}")
    return buffer.getvalue(), model


def test_https_archive_is_checked_then_loaded(tmp_path, keras_home, monkeypatch, rng):
    payload, model = _zipped_preset(tmp_path)
    digest = hashlib.sha256(payload).hexdigest()
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    with pytest.raises(PresetError, match="refusing"):
        from_preset("https://example.org/p.zip#sha256=" + "0" * 64)
    loaded = from_preset(f"https://example.org/p.zip#sha256={digest}")
    x = rng.random((1, 9, 9, 3), dtype=np.float32)
    np.testing.assert_array_equal(outputs(loaded, x), outputs(model, x))
    from_preset("https://example.org/p.zip", sha256=digest)  # cached: no second download
    assert requested == ["https://example.org/p.zip"] * 2


def test_hub_handles_need_their_client(tmp_path, monkeypatch, rng):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    monkeypatch.setitem(sys.modules, "kagglehub", None)
    with pytest.raises(PresetError, match="pip install huggingface_hub"):
        from_preset("hf://owner/repo")
    with pytest.raises(PresetError, match="pip install kagglehub"):
        from_preset("kaggle://owner/model/keras/v1")

    model = tiny_model()
    save_to_preset(model, tmp_path / "snapshot" / "x4")
    fake_hf = types.SimpleNamespace(snapshot_download=lambda repo_id: str(tmp_path / "snapshot"))
    fake_kaggle = types.SimpleNamespace(model_download=lambda handle: str(tmp_path / "snapshot/x4"))
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake_hf)
    monkeypatch.setitem(sys.modules, "kagglehub", fake_kaggle)
    x = rng.random((1, 9, 9, 3), dtype=np.float32)
    for handle in ("hf://owner/repo/x4", "kaggle://owner/model/keras/v1"):
        np.testing.assert_array_equal(outputs(from_preset(handle), x), outputs(model, x))


def test_registry_convert_command_builds_the_named_preset(keras_home, tmp_path, rng):
    """The command printed for a missing built-in, run on an official-layout checkpoint
    (independent torch reference, random weights), makes the name load and match torch."""
    import shlex

    torch = pytest.importorskip("torch")
    from torch_reference.srvgg import TorchSRVGGNetCompact

    from keras_pbasr.cli import main as cli_main

    torch.manual_seed(0)
    reference = TorchSRVGGNetCompact(num_feat=8, num_conv=2).eval()
    checkpoint = tmp_path / "realesr-general-x4v3.pth"
    torch.save({"params": reference.state_dict()}, checkpoint)
    command = BUILTIN_PRESETS["realesr_general_x4v3"].convert_command(str(checkpoint))
    assert cli_main(shlex.split(command)[1:]) == 0
    model = from_preset("realesr_general_x4v3")
    x = rng.random((1, 11, 13, 3), dtype=np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(outputs(model, x), expected, atol=1e-4, rtol=0)
