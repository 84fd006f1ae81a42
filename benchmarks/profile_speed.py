"""Where one x4plus forward spends its time, per engine: the top ops of the backend's profiler.

    KERAS_BACKEND=torch python -m benchmarks.profile_speed --engine keras [--path upscale]
    python -m benchmarks.profile_speed --engine torch          (plain PyTorch, channels_last)
    KERAS_BACKEND=tensorflow python -m benchmarks.profile_speed --engine keras
    KERAS_BACKEND=jax python -m benchmarks.profile_speed --engine keras

One warm-up call, then one profiled call on a 64x64 centre crop (same inputs as
`python -m benchmarks speed`), 2 threads. torch: torch.profiler's self-CPU table; TensorFlow:
tf.profiler's trace (op statistics from the trace events); JAX: the compiled HLO's op counts
and cost analysis plus wall and CPU seconds (XLA CPU runs the whole program as one
executable; `XLA_FLAGS` is echoed so flag experiments are recorded). Prints markdown.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import (  # noqa: E402
    _inputs,
    _keras_predictor,
    _ncnn_files,
    _set_threads,
    _torch_predictor,
)


def _timed(fn, x):
    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    fn(x)
    return time.perf_counter() - wall, time.process_time() - cpu, load


def profile_torch(predict, x, rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        predict(x)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    print(table)


def profile_tensorflow(predict, x, rows: int, folder: Path) -> None:
    import gzip
    import json

    import tensorflow as tf

    tf.profiler.experimental.start(str(folder))
    predict(x)
    tf.profiler.experimental.stop()
    traces = sorted(folder.rglob("*.trace.json.gz"))
    if not traces:
        print(f"no trace written under {folder}")
        return
    events = json.loads(gzip.decompress(traces[-1].read_bytes()))["traceEvents"]
    total = collections.Counter()
    count = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            name = e["name"]
            total[name] += e["dur"]
            count[name] += 1
    print("| op (trace event) | calls | total ms |\n|---|---:|---:|")
    for name, dur in total.most_common(rows):
        print(f"| {name} | {count[name]} | {dur / 1e3:.1f} |")


def profile_jax(model, x, rows: int) -> None:
    import jax

    from keras_pbasr.metrics.compilation import compiled_model_call

    compiled_model_call(model)  # same jitted function as the predictor
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def forward(t, n, inputs):
        return model.stateless_call(t, n, inputs)[0]

    compiled = jax.jit(forward).lower(trainable, non_trainable, x).compile()
    text = compiled.as_text()
    ops = collections.Counter()
    for line in text.splitlines():
        line = line.strip()
        if "=" in line and not line.startswith(("HloModule", "ENTRY", "}", "ROOT %tuple")):
            rhs = line.split("=", 1)[1].strip()
            parts = rhs.split(" ", 1)
            if len(parts) == 2:
                op = parts[1].split("(", 1)[0]
                if "custom_call_target=" in rhs:
                    op += " " + rhs.split("custom_call_target=", 1)[1].split(",")[0]
                ops[op] += 1
    print("| HLO op (optimised module) | count |\n|---|---:|")
    for op, n in ops.most_common(rows):
        print(f"| {op} | {n} |")
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    print(f"\nXLA cost analysis: {cost.get('flops', 0) / 1e9:.1f} GFLOP, "
          f"{cost.get('bytes accessed', 0) / 1e9:.2f} GB accessed")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_speed")
    parser.add_argument("--engine", choices=("keras", "torch"), default="keras")
    parser.add_argument("--path", choices=("upscale", "call"), default="upscale")
    parser.add_argument("--preset", default="realesrgan_x4plus")
    parser.add_argument("--size", default="64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--artifacts", default=None)
    args = parser.parse_args()
    import tempfile

    import keras

    backend = keras.backend.backend() if args.engine == "keras" else "torch"
    engine = f"keras-{backend}" if args.engine == "keras" else "torch"
    _set_threads(engine, args.threads)
    image, _ = _inputs(args.size)
    x = image[None]
    with tempfile.TemporaryDirectory() as tmp:
        if args.engine == "torch":
            predict = _torch_predictor(_ncnn_files(args.preset, args.artifacts, Path(tmp)))
        else:
            predict = _keras_predictor(args.preset, args.path, "float32")
        predict(x)
        wall, cpu, load = _timed(predict, x)
        print(f"## {engine} ({args.path if args.engine == 'keras' else 'plain'}), "
              f"{args.preset} {args.size}x{args.size}, {args.threads} threads\n")
        print(f"one call: {wall:.2f} s wall, {cpu:.2f} CPU-s, load1 {load:.2f}; "
              f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}\n")
        if engine.endswith("torch"):
            profile_torch(predict, x, args.rows)
        elif backend == "tensorflow":
            profile_tensorflow(predict, x, args.rows, Path(tmp) / "tf_profile")
        else:
            from keras_pbasr.presets import from_preset

            profile_jax(from_preset(args.preset), x, args.rows)


if __name__ == "__main__":
    main()
