"""Seconds per 512x512 image pair for each metric on the current Keras backend, against a
reference implementation timed in the same run.

piq and pyiqa need torchvision, which is not installed beside torch 2.13 here, so the
references are:

- PSNR, SSIM: scikit-image (`peak_signal_noise_ratio`, `structural_similarity` with pyiqa's
  settings: Gaussian 11x11, sigma 1.5, population covariance) on the same YIQ luma;
- LPIPS (AlexNet), DISTS: the independent plain-PyTorch modules of tests/torch_reference
  with the same pretrained weights (what the parity tests compare against);
- MS-SSIM, GMSD, VIF, VSI, NIQE (no independent implementation runs here): our own keras.ops
  code on Keras' numpy backend (numpy/scipy, in a subprocess with KERAS_BACKEND=numpy).

Each row also gives the first call (on JAX: compilation for a new image size) and the value,
so that reference and candidate can be seen to compute the same thing. Metrics whose weights
are not cached (LPIPS/DISTS: `pbasr weights fetch alexnet lpips_alex vgg16 dists`; NIQE:
`python -m keras_pbasr.weights.niqe_params`) are skipped with a note.

    KERAS_BACKEND=jax python -m benchmarks metrics [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from keras_pbasr.utils.timing import time_callable

SIZE = 512
METRIC_NAMES = ("psnr", "ssim", "ms_ssim", "gmsd", "vif", "vsi", "niqe", "lpips_alex", "dists")
NUMPY_BACKEND_REFERENCE = ("ms_ssim", "gmsd", "vif", "vsi", "niqe")
YIQ_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def image_pair() -> tuple[np.ndarray, np.ndarray]:
    """skimage's astronaut (CC0, 512x512) and a blurred, noisy copy, as (1, 512, 512, 3)."""
    from scipy.ndimage import gaussian_filter
    from skimage import data

    hr = data.astronaut().astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    sr = gaussian_filter(hr, sigma=(1.2, 1.2, 0)) + 0.02 * rng.standard_normal(hr.shape)
    sr = np.round(np.clip(sr, 0, 1) * 255) / 255
    return sr[None].astype(np.float32), hr[None]


def available_metrics() -> dict:
    """{name: callable(sr, hr) -> (N,)} of our metrics whose weights are available."""
    from keras_pbasr import metrics
    from keras_pbasr.weights import is_cached
    from keras_pbasr.weights.niqe_params import niqe_params_path

    calls = {name: metrics.METRICS[name].fn
             for name in ("psnr", "ssim", "ms_ssim", "gmsd", "vif", "vsi")}
    if niqe_params_path().is_file():
        calls["niqe"] = lambda sr, hr: metrics.niqe(sr)
    if is_cached("alexnet") and is_cached("lpips_alex"):
        calls["lpips_alex"] = metrics.lpips_score
    if is_cached("vgg16") and is_cached("dists"):
        calls["dists"] = metrics.dists_score
    return calls


# ---- references --------------------------------------------------------------------------


def skimage_psnr(sr: np.ndarray, hr: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return peak_signal_noise_ratio(hr[0] @ YIQ_LUMA, sr[0] @ YIQ_LUMA, data_range=1.0)


def skimage_ssim(sr: np.ndarray, hr: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    def luma_255(x):
        return np.round((x[0] @ YIQ_LUMA) * 255.0).astype(np.float64)

    return structural_similarity(luma_255(sr), luma_255(hr), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255.0)


def torch_references(names) -> dict:
    """{name: callable(sr, hr)} running the plain-PyTorch LPIPS / DISTS references."""
    import torch

    from benchmarks.bench_perceptual import torch_dists_reference, torch_lpips_reference
    from tests.torch_reference.feature_nets import nhwc_to_torch

    modules = {}
    if "lpips_alex" in names:
        modules["lpips_alex"] = torch_lpips_reference("alex")
    if "dists" in names:
        modules["dists"] = torch_dists_reference()

    def call(module):
        def run(sr, hr):
            with torch.no_grad():
                return float(module(nhwc_to_torch(sr), nhwc_to_torch(hr)).reshape(-1)[0])
        return run

    return {name: call(module) for name, module in modules.items()}


def _first_and_samples(fn, repeats: int) -> tuple[float, list[float], object]:
    """(first call's seconds, the timed calls after it, the value)."""
    t0 = time.perf_counter()
    value = fn()
    first = time.perf_counter() - t0
    return first, list(time_callable(fn, warmup=0, repeats=repeats)), value


def numpy_backend_worker(names: list[str], repeats: int) -> None:
    """Runs in the subprocess (KERAS_BACKEND=numpy): times our metrics, prints JSON."""
    import keras

    sr, hr = image_pair()
    calls = available_metrics()
    out = {}
    for name in names:
        if name in calls:
            first, samples, value = _first_and_samples(
                lambda fn=calls[name]: keras.ops.convert_to_numpy(fn(sr, hr)), repeats)
            out[name] = {"first": first, "samples": samples, "value": float(value[0])}
    print("RESULT " + json.dumps(out))


def _numpy_backend_timings(names: list[str], repeats: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    code = ("from benchmarks.bench_metrics import numpy_backend_worker; "
            f"numpy_backend_worker({names!r}, {repeats})")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=3600)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"numpy-backend reference failed:\n{result.stderr[-2000:]}")


def run(bench) -> None:
    import keras

    sr, hr = image_pair()
    repeats = 1 if bench.quick else 3
    backend = keras.backend.backend()
    calls = available_metrics()
    for name in METRIC_NAMES:
        if name not in calls:
            bench.note(f"{name} skipped: its weights/parameters are not cached")
    references = {"psnr": skimage_psnr, "ssim": skimage_ssim, **torch_references(calls)}
    reference_names = {"psnr": "scikit-image (reference)", "ssim": "scikit-image (reference)",
                       "lpips_alex": "torch reference module (reference)",
                       "dists": "torch reference module (reference)"}
    numpy_backend = _numpy_backend_timings(
        [n for n in NUMPY_BACKEND_REFERENCE if n in calls], repeats)
    for name, fn in calls.items():
        if name in numpy_backend:
            ref = numpy_backend[name]
            bench.record(name, "our code on Keras' numpy backend (reference)", ref["samples"],
                         reference=True, first_call_s=f"{ref['first']:.2f}",
                         value=f"{ref['value']:.6f}")
        else:
            first, samples, value = _first_and_samples(lambda ref=references[name]: ref(sr, hr),
                                                       repeats)
            bench.record(name, reference_names[name], samples, reference=True,
                         first_call_s=f"{first:.2f}", value=f"{float(value):.6f}")
        first, samples, value = _first_and_samples(
            lambda fn=fn: keras.ops.convert_to_numpy(fn(sr, hr)), repeats)
        ours = bench.record(name, f"keras_pbasr on {backend}", samples,
                            first_call_s=f"{first:.2f}", value=f"{float(value[0]):.6f}")
        print(f"  {name}: {backend} {ours.median_s:.3f} s (first call {first:.2f} s)",
              flush=True)
    bench.note("Seconds per 512x512 pair (skimage astronaut vs a blurred noisy copy): median of "
               f"{repeats} call(s) after a first call, which is reported separately "
               "(on JAX it includes compiling the metric for this image size).")
    bench.note("References: scikit-image for PSNR and SSIM; the plain-PyTorch modules of "
               "tests/torch_reference for LPIPS and DISTS; for MS-SSIM, GMSD, VIF, VSI and NIQE "
               "our own keras.ops code on Keras' numpy backend (piq/pyiqa need torchvision, "
               "which is not installed beside torch 2.13 here).")
    bench.note("Timings taken on a shared 2-core machine are noisy; rerun on a quiet one.")
