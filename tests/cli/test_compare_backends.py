"""`pbasr compare-backends` on a tiny model and two backends, each in its own subprocess."""

from __future__ import annotations

import json

import pytest

from keras_pbasr.cli import main

pytestmark = pytest.mark.backend_agnostic


def test_compare_two_backends_json(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main([
        "compare-backends", "--arch", "srvgg", "--config", '{"num_feat": 8, "num_conv": 2}',
        "--backends", "jax,torch", "--size", "8x12", "--repeats", "2", "--train-steps", "2",
        "--out", str(out),
    ])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["backends"]) == {"jax", "torch"}
    for backend, r in report["backends"].items():
        assert r["status"] == "ok", (backend, r)
        assert r["latency_ms"]["eager"] > 0
        assert set(r["throughput_mpix_s"]) >= {"eager"}
        assert r["peak_rss_mb"] > 0
        assert r["agreement"]["reference_backend"] == "jax"
        assert r["train"]["steps"] == 2 and r["train"]["step_ms_median"] > 0
    # torch against the reference backend (jax): outputs and SGD-trained weights agree far
    # below how much training moved the weights (SGD: magnitudes, not only signs, agree).
    agreement = report["backends"]["torch"]["agreement"]
    moved = report["backends"]["jax"]["train"]["weights_moved_max_abs"]
    assert moved > 1e-3
    assert agreement["train_weights_max_abs"] <= 1e-3 * moved
    assert 0.0 < agreement["output_max_abs"] <= 1e-5  # two backends' kernels: not bit-equal
    assert report["input_shape"] == [1, 8, 12, 3]
    assert (out / "report.md").read_text().count("| ok |") == 2
    assert (out / "latency.png").stat().st_size > 1000
    assert "jax" in capsys.readouterr().out


def test_missing_backend_is_reported_not_raised(tmp_path, monkeypatch):
    from keras_pbasr.compare import compare_backends, runner

    real_find_spec = runner.importlib.util.find_spec
    monkeypatch.setattr(
        runner.importlib.util, "find_spec",
        lambda name: None if name == "torch" else real_find_spec(name),
    )
    report = compare_backends(
        arch="srvgg", arch_config={"num_feat": 4, "num_conv": 1},
        backends=("torch", "no_such_backend"), repeats=1, out_dir=tmp_path,
    )
    assert report["backends"]["torch"]["status"] == "not installed"
    assert report["backends"]["no_such_backend"]["status"] == "unknown backend"
    assert "not installed" in (tmp_path / "report.md").read_text()


def test_gpu_request_is_checked_against_the_visible_devices(monkeypatch):
    from keras_pbasr.compare import worker
    from keras_pbasr.utils import environment

    monkeypatch.setattr(environment, "visible_devices", lambda: ["CPU:/physical_device:CPU:0"])
    assert not environment.gpu_visible()
    result = worker.run({"device": "gpu"})
    assert result["status"] == "no GPU visible to this backend"
    for devices in (["GPU:/physical_device:GPU:0"], ["gpu:0 (NVIDIA H100)"], ["cpu", "cuda:0"]):
        monkeypatch.setattr(environment, "visible_devices", lambda devices=devices: devices)
        assert environment.gpu_visible(), devices
