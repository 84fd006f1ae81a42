"""Tiled upscaling on CPU: seconds per output megapixel and peak RSS, per backend.

Each configuration runs in its own subprocess (so its peak RSS is its own) with the
realesr-general-x4v3 architecture (SRVGGNetCompact, 64 features, 32 convs; random weights,
which cost the same as the official ones). The target: a 2000x1500 image upscaled x4 with
tiling stays under 3 GiB peak RSS. Untiled inference is compared on a quarter-size image
(1000x750), where it fits in memory; --quick shrinks both sizes 5x.

    python -m benchmarks inference [--quick]
    python -m benchmarks.bench_inference --worker --height H --width W --tile T  (one config)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
MEMORY_TARGET_MIB = 3 * 1024
TILE, TILE_OVERLAP = 256, 32


def worker(height: int, width: int, tile: int) -> dict:
    """Runs one upscale in this process and returns its timing and peak RSS."""
    import numpy as np

    from keras_pbasr import upscale
    from keras_pbasr.presets import from_preset

    model = from_preset("realesr_general_x4v3", load_weights=False)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    # Warm-up on a small crop, so compilation (JAX, TF) is not timed for the tile shape.
    warm = min(tile or 64, height, width)
    upscale(model, image[:warm, :warm], tile=tile or None, tile_overlap=TILE_OVERLAP)
    start = time.perf_counter()
    result = upscale(model, image, tile=tile or None, tile_overlap=TILE_OVERLAP)
    seconds = time.perf_counter() - start
    output_mp = result.shape[0] * result.shape[1] / 1e6
    return {
        "seconds": seconds,
        "output_megapixels": output_mp,
        "seconds_per_output_mp": seconds / output_mp,
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_config(backend: str, height: int, width: int, tile: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "benchmarks.bench_inference", "--worker",
               "--height", str(height), "--width", str(width), "--tile", str(tile)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(bench) -> None:
    shrink = 5 if bench.quick else 1
    big = (1500 // shrink, 2000 // shrink)
    small = (750 // shrink, 1000 // shrink)
    configs = [
        ("tiled", big, TILE),
        ("tiled", small, TILE),
        ("untiled", small, 0),
    ]
    bench.note(
        f"realesr-general-x4v3 architecture, x4, tile {TILE}, overlap {TILE_OVERLAP}, "
        "one timed call after a warm-up on a crop; each config in its own process. "
        "Timings on a shared 2-core machine are noisy."
    )
    for backend in BACKENDS:
        for label, (height, width), tile in configs:
            name = f"{label} {width}x{height}"
            result = _run_config(backend, height, width, tile)
            if "error" in result:
                bench.note(f"{backend} {name}: failed: {result['error']}")
                print(f"  {backend} | {name}: failed: {result['error']}", flush=True)
                continue
            reference = label == "untiled"
            bench.record(
                backend, name, result["seconds"], reference=reference,
                s_per_output_mp=round(result["seconds_per_output_mp"], 3),
                peak_rss_mib=round(result["peak_rss_mib"]),
            )
            print(
                f"  {backend} | {name}: {result['seconds']:.1f} s, "
                f"{result['seconds_per_output_mp']:.2f} s/output MP, "
                f"peak RSS {result['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            if label == "tiled" and (height, width) == big:
                verdict = "within" if result["peak_rss_mib"] < MEMORY_TARGET_MIB else "EXCEEDS"
                bench.note(
                    f"{backend}: tiled {width}x{height} x4 peak RSS "
                    f"{result['peak_rss_mib']:.0f} MiB, {verdict} the 3 GiB target"
                )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_inference")
    parser.add_argument("--worker", action="store_true", help="run one configuration")
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--tile", type=int, default=TILE, help="0 = untiled")
    args = parser.parse_args()
    print(json.dumps(worker(args.height, args.width, args.tile)))


if __name__ == "__main__":
    main()
