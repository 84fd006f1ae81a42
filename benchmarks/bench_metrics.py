"""Seconds per 512x512 image pair for each metric on the current Keras backend.

Reference: piq and pyiqa need torchvision, which does not import beside torch 2.13 here, so
the reference measured in the same run is our own code on Keras' numpy backend (pure
numpy/scipy, run in a subprocess with KERAS_BACKEND=numpy). Metrics whose weights are not
cached (LPIPS/DISTS: `pbasr weights fetch ...`; NIQE: `python -m
keras_pbasr.weights.niqe_params`) are skipped with a note.

    python -m benchmarks metrics [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from keras_pbasr.utils.timing import time_callable

SIZE = 512
# VGG16/AlexNet convolutions on Keras' numpy backend take minutes per 512x512 image.
NO_NUMPY_REFERENCE = ("lpips_alex", "dists")


def image_pair() -> tuple[np.ndarray, np.ndarray]:
    """skimage's astronaut (CC0, 512x512) and a blurred, noisy copy, as (1, 512, 512, 3)."""
    from scipy.ndimage import gaussian_filter
    from skimage import data

    hr = data.astronaut().astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    sr = gaussian_filter(hr, sigma=(1.2, 1.2, 0)) + 0.02 * rng.standard_normal(hr.shape)
    sr = np.round(np.clip(sr, 0, 1) * 255) / 255
    return sr[None].astype(np.float32), hr[None]


def metric_calls() -> dict:
    """{name: callable(sr, hr)} for the metrics whose weights are available."""
    from keras_pbasr import metrics
    from keras_pbasr.weights import is_cached
    from keras_pbasr.weights.niqe_params import niqe_params_path

    calls = {
        "psnr": metrics.psnr,
        "ssim": metrics.ssim,
        "ms_ssim": metrics.ms_ssim,
        "gmsd": metrics.gmsd,
        "vif": metrics.vif,
        "vsi": metrics.vsi,
    }
    if niqe_params_path().is_file():
        calls["niqe"] = lambda sr, hr: metrics.niqe(sr)
    if is_cached("alexnet") and is_cached("lpips_alex"):
        calls["lpips_alex"] = metrics.lpips_score
    if is_cached("vgg16") and is_cached("dists"):
        calls["dists"] = metrics.dists_score
    return calls


def _median_seconds(fn, repeats: int) -> float:
    return float(np.median(time_callable(fn, warmup=1, repeats=repeats)))


def reference_worker(repeats: int) -> None:
    """Runs in the subprocess: times every metric on Keras' numpy backend, prints JSON."""
    import keras

    sr, hr = image_pair()
    out = {}
    for name, fn in metric_calls().items():
        if name in NO_NUMPY_REFERENCE:
            continue
        out[name] = _median_seconds(lambda fn=fn: keras.ops.convert_to_numpy(fn(sr, hr)),
                                    repeats)
    print("RESULT " + json.dumps(out))


def _reference_timings(repeats: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    code = f"from benchmarks.bench_metrics import reference_worker; reference_worker({repeats})"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=3600)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"numpy-backend reference failed:\n{result.stderr[-2000:]}")


def run(bench) -> None:
    import keras

    sr, hr = image_pair()
    repeats = 1 if bench.quick else 5
    bench.note("Reference = the same keras.ops code on Keras' numpy backend (subprocess); "
               "piq/pyiqa need torchvision, which does not import beside torch 2.13 here.")
    bench.note("LPIPS and DISTS have no numpy reference (their CNNs take minutes per image "
               "on Keras' numpy backend).")
    bench.note("Timings taken on a shared 2-core machine are noisy; rerun on a quiet one.")
    reference = _reference_timings(repeats)
    calls = metric_calls()
    for name in ("niqe", "lpips_alex", "dists"):
        if name not in calls:
            bench.note(f"{name} skipped: its weights/parameters are not cached")
    backend = keras.backend.backend()
    for name, fn in calls.items():
        if name in reference:
            bench.record(name, "keras numpy backend (reference)", reference[name],
                         reference=True)
        bench.measure(name, f"keras {backend}",
                      lambda fn=fn: keras.ops.convert_to_numpy(fn(sr, hr)),
                      warmup=1, repeats=repeats, pixels=f"{SIZE}x{SIZE}")
