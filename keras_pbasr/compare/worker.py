"""One backend's half of `pbasr compare-backends`, run in its own process.

`python -m keras_pbasr.compare.worker SPEC_JSON` with KERAS_BACKEND set by the parent. It loads
the shared preset (identical starting weights), times inference eagerly and through Keras'
compiled predict path, optionally trains a PBaSRTrainer for N steps on the shared batch, and
writes result.json, output.npy and (when training) trained.npz into the spec's out_dir.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from keras_pbasr.utils.atomic_files import atomic_output, write_json_atomic


def _gpu_peak_bytes(backend: str) -> int | None:
    if backend == "torch":
        import torch

        return int(torch.cuda.max_memory_allocated())
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    return None


def run(spec: dict) -> dict:
    import keras

    from keras_pbasr.presets.preset_io import load_preset_dir
    from keras_pbasr.utils.environment import gpu_visible
    from keras_pbasr.utils.timing import time_callable

    backend = keras.backend.backend()
    result: dict = {"backend": backend, "status": "ok", "device": spec["device"]}
    if spec["device"] == "gpu" and not gpu_visible():
        return {**result, "status": "no GPU visible to this backend"}

    out_dir = Path(spec["out_dir"])
    x = np.load(spec["input"])
    model = load_preset_dir(spec["preset"])
    warmup, repeats = spec["warmup"], spec["repeats"]

    def eager():
        return keras.ops.convert_to_numpy(model(x, training=False))

    output = eager()
    with atomic_output(out_dir / "output.npy") as tmp:
        np.save(tmp, output)
    latency = {"eager": time_callable(eager, warmup, repeats)}
    try:
        model.compile(jit_compile=True)
        t0 = time.perf_counter()
        model.predict_on_batch(x)
        result["jit_compile_s"] = time.perf_counter() - t0
        latency["jit"] = time_callable(lambda: model.predict_on_batch(x), warmup, repeats)
    except Exception as exc:  # a backend whose compiler cannot take the model is reported
        result["jit_error"] = f"{type(exc).__name__}: {exc}"[:500]
    output_megapixels = output.shape[0] * output.shape[1] * output.shape[2] / 1e6
    result["latency_ms"] = {k: statistics.median(v) * 1e3 for k, v in latency.items()}
    result["throughput_mpix_s"] = {
        k: output_megapixels / statistics.median(v) for k, v in latency.items()
    }

    if spec.get("train_steps"):
        from keras_pbasr.compare.training import train_for_comparison

        result["train"] = train_for_comparison(model, spec, out_dir)

    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if spec["device"] == "gpu":
        peak = _gpu_peak_bytes(backend)
        result["peak_gpu_mb"] = None if peak is None else peak / 2**20
    return result


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        result = run(spec)
    except Exception as exc:
        result = {
            "backend": spec.get("backend"),
            "status": f"failed: {type(exc).__name__}: {exc}"[:1000],
            "traceback": traceback.format_exc()[-4000:],
        }
    write_json_atomic(Path(spec["out_dir"]) / "result.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
