"""The parent side of `pbasr compare-backends`: one subprocess per backend, then the report."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from keras_pbasr.models import BACKBONES
from keras_pbasr.utils.atomic_files import atomic_output, write_json_atomic

BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def build_model(arch: str, config: dict | None = None):
    """A fresh registered backbone (`keras_pbasr.models.BACKBONES`) for `--arch`."""
    if arch not in BACKBONES:
        raise ValueError(f"unknown --arch {arch!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[arch].cls(**(config or {}))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _worker_env(backend: str, device: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["JAX_PLATFORMS"] = "cpu"
    return env


def compare_backends(
    *,
    preset: str | Path | None = None,
    arch: str | None = None,
    arch_config: dict | None = None,
    backends: tuple[str, ...] = ("tensorflow", "jax", "torch"),
    size: tuple[int, int] = (64, 64),
    train_steps: int = 0,
    device: str = "cpu",
    repeats: int = 10,
    warmup: int = 2,
    out_dir: str | Path = "compare-backends",
    seed: int = 0,
    timeout_s: int = 1800,
) -> dict:
    """Runs inference (and optionally PBaSR training) on each backend in its own process from
    identical weights and inputs; returns the report dict and writes report.json, report.md
    and latency.png into `out_dir`.

    Example:
    >>> report = compare_backends(arch="srvgg", backends=("jax", "torch"))  # doctest: +SKIP
    """
    if (preset is None) == (arch is None):
        raise ValueError("give exactly one of preset or arch")
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be cpu or gpu, got {device!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pbasr-compare-", dir=out_dir))

    from keras_pbasr.presets.preset_io import save_to_preset

    if preset:
        from keras_pbasr.presets import from_preset

        model = from_preset(preset)
    else:
        model = build_model(arch, arch_config)
    rng = np.random.default_rng(seed)
    h, w = size
    x = rng.random((1, h, w, model.input_shape[-1]), dtype=np.float32)
    model(x)
    shared_preset = save_to_preset(model, work / "preset")
    with atomic_output(work / "input.npy") as tmp:
        np.save(tmp, x)
    training_spec = {}
    if train_steps:
        from keras_pbasr.compare.training import write_training_inputs

        training_spec = write_training_inputs(model, size, work, seed)

    results = {}
    for backend in backends:
        if backend not in BACKEND_MODULES:
            results[backend] = {"backend": backend, "status": "unknown backend"}
            continue
        if importlib.util.find_spec(BACKEND_MODULES[backend]) is None:
            results[backend] = {"backend": backend, "status": "not installed"}
            continue
        backend_dir = work / backend
        backend_dir.mkdir()
        spec = {
            "backend": backend, "preset": str(shared_preset), "input": str(work / "input.npy"),
            "device": device, "warmup": warmup, "repeats": repeats, "train_steps": train_steps,
            "seed": seed, "out_dir": str(backend_dir), **training_spec,
        }
        spec_path = backend_dir / "spec.json"
        write_json_atomic(spec_path, spec)
        print(f"[compare-backends] running {backend} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "keras_pbasr.compare.worker", str(spec_path)],
            env=_worker_env(backend, device), capture_output=True, text=True, timeout=timeout_s,
        )
        result_path = backend_dir / "result.json"
        if result_path.is_file():
            results[backend] = json.loads(result_path.read_text())
        else:
            results[backend] = {
                "backend": backend,
                "status": f"worker crashed (exit {proc.returncode}): {proc.stderr[-800:]}",
            }

    _add_agreement(results, work)
    report = {
        "command": " ".join(["pbasr", *sys.argv[1:]]) if sys.argv else "",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model.__class__.__name__,
        "model_config": {k: v for k, v in model.get_config().items() if k != "name"},
        "parameters": int(model.count_params()),
        "input_shape": list(x.shape),
        "device": device,
        "train_steps": train_steps,
        "repeats": repeats,
        "machine": _machine(),
        "backends": results,
    }
    from keras_pbasr.compare.report import write_report

    write_report(report, out_dir)
    shutil.rmtree(work)
    return report


def _machine() -> dict:
    from keras_pbasr.utils.environment import backend_versions, machine_info

    return {**machine_info(), "versions": backend_versions()}


def _add_agreement(results: dict, work: Path) -> None:
    ok = [b for b, r in results.items() if r.get("status") == "ok"]
    if not ok:
        return
    first = ok[0]
    ref_out = np.load(work / first / "output.npy")
    ref_trained = work / first / "trained.npz"
    for backend in ok:
        out = np.load(work / backend / "output.npy")
        agreement = {
            "reference_backend": first,
            "output_max_abs": float(np.max(np.abs(out - ref_out))),
            "output_psnr_db": _psnr(out, ref_out),
        }
        trained = work / backend / "trained.npz"
        if trained.is_file() and ref_trained.is_file():
            with np.load(trained) as a, np.load(ref_trained) as b:
                agreement["train_weights_max_abs"] = float(
                    max(np.max(np.abs(a[k] - b[k])) for k in a.files)
                )
        results[backend]["agreement"] = agreement
