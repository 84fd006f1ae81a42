"""JAX/XLA CPU thread use for one x4plus forward: per-thread CPU seconds under XLA_FLAGS.

    KERAS_BACKEND=jax XLA_FLAGS=... python -m benchmarks.jax_threads [--size 64] [--save F]

Reads every thread's CPU time (/proc/self/task/*/stat, utime+stime) before and after one
call of the package's inference predictor (after a warm-up call), so the split of the work
over threads shows whether XLA ran the convolutions on one thread or several; this does
not depend on machine load the way wall time does. Prints one JSON line; with --compare F
also the largest difference to the output saved (--save F) by another flag set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import _inputs, _keras_predictor  # noqa: E402


def thread_cpu_seconds() -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jax_threads")
    parser.add_argument("--preset", default="realesrgan_x4plus")
    parser.add_argument("--size", default="64")
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--compare", type=Path, default=None)
    args = parser.parse_args()
    predict = _keras_predictor(args.preset, "upscale", "float32")
    x = _inputs(args.size)[0][None]
    predict(x)
    before, load = thread_cpu_seconds(), os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    out = predict(x)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = thread_cpu_seconds()
    busy = sorted((after[t] - before.get(t, 0.0) for t in after), reverse=True)
    result = {
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "size": args.size,
        "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "load1": round(load, 2),
        "threads_busy_s": [round(b, 2) for b in busy if b > 0.005],
    }
    if args.save:
        np.save(args.save, out)
    if args.compare:
        result["max_diff_to_saved"] = float(np.abs(out - np.load(args.compare)).max())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
