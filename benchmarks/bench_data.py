"""Patches per second of the tf.data pipeline vs a per-sample numpy/scipy reference.

Workload: 256 x 256 HR patches, x4, from BSD100 (shared/data; skimage's sample images when
absent), each degradation. The pipeline is `keras_pbasr.data.mixed_dataset` (decode, crop,
flips, LR synthesis, batching; half general, half blur samples from shared cuhk_blur when
present), timed per two batches of 16 after warm-up. The reference (benchmarks/
reference_degradations.py) makes the same 32 patches one at a time in this process.

Besides wall-clock rates, each path records the process CPU time per patch (all threads,
warm-up included), which other jobs on a shared machine disturb much less than wall time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks import reference_degradations

BATCH, PATCH, SCALE = 16, 256, 4
# Each timed call makes this many patches (two pipeline batches), so that the few batches
# tf.data buffers ahead cannot flatter the pipeline's rate.
PATCHES_PER_CALL = 2 * BATCH


def _shared_data() -> Path | None:
    path = Path(os.environ.get("PBASR_SHARED_DATA",
                               Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    return path if path.is_dir() else None


def _inputs(tmp: Path):
    from keras_pbasr import data

    shared = _shared_data()
    if shared is not None:
        general = data.general_folder(shared / "bsd100" / "HR")
        blur = data.blur_folder(shared / "cuhk_blur" / "image", shared / "cuhk_blur" / "mask")
        return general, blur, list(general.hr_paths)
    import skimage.data
    from PIL import Image

    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(skimage.data, name)()).save(tmp / f"{name}.png")
    general = data.general_folder(tmp)
    return general, None, list(general.hr_paths)


class CpuTimed:
    """Wraps a callable and adds up the process CPU time (all threads) of its calls."""

    def __init__(self, fn):
        self.fn, self.calls, self.cpu_s = fn, 0, 0.0

    def __call__(self):
        start = time.process_time()
        out = self.fn()
        self.cpu_s += time.process_time() - start
        self.calls += 1
        return out

    def ms_per_patch(self) -> float:
        return self.cpu_s / max(self.calls, 1) / PATCHES_PER_CALL * 1e3


def run(bench) -> None:
    import os as _os

    from keras_pbasr import data

    general, blur, paths = _inputs(Path("/tmp/pbasr_bench_data"))
    cores = _os.cpu_count() or 1
    repeats = 3 if bench.quick else 8
    for degradation in ("bsrgan", "realesrgan"):
        group = f"{degradation} 256px x4, {PATCHES_PER_CALL} patches per call"
        rng = np.random.default_rng(0)
        reference_fn = CpuTimed(
            lambda: reference_degradations.reference_patches(  # noqa: B023
                paths, PATCHES_PER_CALL, PATCH, SCALE, degradation, rng))  # noqa: B023
        reference = bench.measure(group, "numpy/scipy per-sample reference", reference_fn,
                                  reference=True, warmup=1, repeats=repeats)
        dataset = data.mixed_dataset(
            general, blur, batch_size=BATCH, patch_size=PATCH, scale=SCALE,
            degradation=degradation, blur_ratio=0.5 if blur is not None else 0.0, seed=0,
        )
        iterator = iter(dataset)
        pipeline_fn = CpuTimed(
            lambda: [next(iterator) for _ in range(PATCHES_PER_CALL // BATCH)])  # noqa: B023
        pipeline = bench.measure(group, "tf.data mixed_dataset (batch 16)", pipeline_fn,
                                 warmup=2, repeats=repeats)
        for timing, timed in ((reference, reference_fn), (pipeline, pipeline_fn)):
            per_s = PATCHES_PER_CALL / timing.median_s
            timing.extra.update(patches_per_s=round(per_s, 1),
                                patches_per_s_per_core=round(per_s / cores, 1),
                                cpu_ms_per_patch=round(timed.ms_per_patch(), 1))
        speedup = reference.median_s / pipeline.median_s
        rate = PATCHES_PER_CALL / pipeline.median_s
        bench.note(f"{degradation}: pipeline {rate:.1f} patches/s "
                   f"({rate / cores:.1f} per core, {cores} cores), "
                   f"reference {PATCHES_PER_CALL / reference.median_s:.1f} patches/s; "
                   f"speed-up {speedup:.2f}x; CPU time per patch: pipeline "
                   f"{pipeline_fn.ms_per_patch():.1f} ms, reference "
                   f"{reference_fn.ms_per_patch():.1f} ms; load average "
                   f"{os.getloadavg()[0]:.1f}")
