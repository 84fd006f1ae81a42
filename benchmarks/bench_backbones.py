"""Inference time of RRDBNet x4 (23 blocks) and SRVGGNetCompact x4 (realesr-general-x4v3)
under the current KERAS_BACKEND, against plain PyTorch with the same weights, in one run.

`python -m benchmarks backbones [--quick]` (set KERAS_BACKEND). Per model and input size the
reference is the faster of torch NCHW and channels_last (eval, no_grad); the Keras paths are
`model.predict_on_batch` (the compiled predict function Keras builds: tf.function without XLA
on a CPU-only TF, a jax.jit on JAX, eager on torch) and one backend-native compiled call
(tf.function with XLA, jax.jit of stateless_call, or torch.inference_mode). --quick skips
RRDBNet at 128x128 (several seconds per call on 2 cores) and uses 3 repeats.
PBASR_BENCH_BACKBONES=srvgg (or rrdbnet) limits the run to one family.

PBASR_BENCH_THREADS=N gives the PyTorch reference and the Keras backend the same N compute
threads (torch.set_num_threads; TensorFlow intra-op threads; XLA's CPU thread pool). On a
machine shared with other jobs, 1 avoids OpenMP threads spinning on busy cores, which made
2-thread torch timings 5-12x slower in session 1.
PBASR_BENCH_TORCH_COMPILE=1 (torch backend) also times `predict_on_batch` after
`model.compile(jit_compile=True)` (torch.compile with inductor) and records the compile time:
about 2 minutes for SRVGGNetCompact and 3.5 minutes for a 4-block RRDBNet on a loaded 2-core
machine, so it is off by default.

Each timing also records the median process CPU time per call (all threads) and its ratio
to the reference's: with PBASR_BENCH_THREADS=1 that ratio is far less disturbed by other
jobs on the machine than the wall-clock one.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

# The independent torch reference modules live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SIZES = (64, 128)
GOALS = {"tensorflow": 1.0, "jax": 1.3, "torch": 1.3}


def _pin_threads() -> int | None:
    """Applies PBASR_BENCH_THREADS (before any backend computation); returns it or None."""
    value = os.environ.get("PBASR_BENCH_THREADS")
    if not value:
        return None
    threads = int(value)
    import torch

    torch.set_num_threads(threads)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    elif backend == "jax":
        # Read when JAX creates its CPU client, i.e. at the first computation.
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
        ).strip()
    return threads


def _models():
    from torch_reference.rrdbnet import TorchRRDBNet
    from torch_reference.srvgg import TorchSRVGGNetCompact

    return {
        "rrdbnet_x4_23b": ("rrdbnet", lambda: TorchRRDBNet(scale=4)),
        "srvgg_x4_general_v3": ("srvgg", lambda: TorchSRVGGNetCompact(num_conv=32, upscale=4)),
    }


def _keras_paths(model, x):
    """name -> zero-argument callable running one forward pass."""
    backend = keras.backend.backend()
    paths = {f"predict_on_batch ({_layout(model)})": lambda: model.predict_on_batch(x)}
    if backend == "tensorflow":
        import tensorflow as tf

        xla = tf.function(lambda t: model(t, training=False), jit_compile=True)
        tensor = tf.constant(x)
        paths["tf.function(jit_compile=True)"] = lambda: xla(tensor).numpy()
    elif backend == "jax":
        import jax

        # Copies: predict_on_batch donates the variables' buffers to its jitted step.
        trainable = [jax.numpy.array(v.value) for v in model.trainable_variables]
        non_trainable = [jax.numpy.array(v.value) for v in model.non_trainable_variables]

        @jax.jit
        def forward(trainable, non_trainable, inputs):
            return model.stateless_call(trainable, non_trainable, inputs, training=False)[0]

        array = jax.numpy.asarray(x)
        paths["jax.jit(stateless_call)"] = lambda: np.asarray(
            forward(trainable, non_trainable, array)
        )
    else:
        import torch

        tensor = torch.from_numpy(x)

        def call():
            with torch.inference_mode():
                return model(tensor, training=False).numpy()

        paths["__call__ under inference_mode"] = call
    return paths


class CpuTimed:
    """Wraps a callable and keeps the process CPU time (all threads) of each call."""

    def __init__(self, fn):
        self.fn, self.cpu_s = fn, []

    def __call__(self):
        start = time.process_time()
        out = self.fn()
        self.cpu_s.append(time.process_time() - start)
        return out

    def median_ms(self) -> float:
        return statistics.median(self.cpu_s) * 1e3


def _measure(bench, group, name, fn, **kwargs):
    timed = CpuTimed(fn)
    timing = bench.measure(group, name, timed, **kwargs)
    timing.extra["cpu_ms_median"] = round(timed.median_ms(), 1)
    return timing


def _cpu_ratios(bench, group) -> None:
    timings = [t for t in bench.timings if t.group == group]
    reference = next(t for t in timings if t.is_reference).extra["cpu_ms_median"]
    for t in timings:
        t.extra["cpu_ratio"] = round(t.extra["cpu_ms_median"] / reference, 2)


def _layout(model) -> str:
    from keras_pbasr.layers.layout import resolve_data_format

    return resolve_data_format(model.data_format)


def _torch_compiled_path(model, x):
    """predict_on_batch through torch.compile; returns (callable, compile seconds)."""
    model.compile(jit_compile=True)
    start = time.perf_counter()
    model.predict_on_batch(x)
    return (lambda: model.predict_on_batch(x)), time.perf_counter() - start


def run(bench) -> None:
    threads = _pin_threads()
    import torch

    from keras_pbasr.convert import get_converter
    from keras_pbasr.utils.torch_files import state_dict_to_numpy

    backend = keras.backend.backend()
    bench.note(
        f"torch threads {torch.get_num_threads()}; goal for the {backend} backend: "
        f"<= {GOALS[backend]}x the PyTorch reference. Timings on a shared machine are noisy."
    )
    bench.note(f"PBASR_BENCH_THREADS={threads}: " + (
        "torch and the Keras backend both pinned to that many threads" if threads
        else "default thread counts"))
    compile_torch = backend == "torch" and os.environ.get("PBASR_BENCH_TORCH_COMPILE") == "1"
    rng = np.random.default_rng(0)
    families = os.environ.get("PBASR_BENCH_BACKBONES", "rrdbnet,srvgg").split(",")
    for label, (arch, make_torch) in _models().items():
        if arch not in families:
            continue
        torch.manual_seed(0)
        net = make_torch().eval()
        model, _ = get_converter(arch).convert(state_dict_to_numpy(net.state_dict()))
        for size in SIZES:
            if bench.quick and arch == "rrdbnet" and size == 128:
                bench.note(f"{label} at {size}x{size} skipped in --quick")
                continue
            heavy = arch == "rrdbnet" and size == 128
            warmup, repeats = (1, 5) if heavy else (2, 10)
            group = f"{label} 1x{size}x{size}x3"
            x = rng.random((1, size, size, 3), dtype=np.float32)
            nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            with torch.no_grad():
                expected = net(nchw).numpy().transpose(0, 2, 3, 1)
            # Both torch layouts are timed; the faster one becomes the group's reference.
            torch_timings = [
                _measure(bench, group, f"pytorch {name}", fn, warmup=warmup, repeats=repeats)
                for name, fn in _torch_paths(net, nchw).items()
            ]
            min(torch_timings, key=lambda t: t.median_s).is_reference = True
            for name, fn in _keras_paths(model, x).items():
                err = float(np.abs(np.asarray(fn()) - expected).max())  # also a warm-up
                _measure(bench, group, f"keras[{backend}] {name}", fn, warmup=warmup - 1,
                         repeats=repeats, max_abs_diff_vs_torch=f"{err:.1e}")
            if compile_torch:
                fn, compile_s = _torch_compiled_path(model, x)
                err = float(np.abs(np.asarray(fn()) - expected).max())
                _measure(bench, group, f"keras[{backend}] predict_on_batch, jit_compile=True", fn,
                         warmup=warmup - 1, repeats=repeats, max_abs_diff_vs_torch=f"{err:.1e}",
                         first_call_with_compile_s=round(compile_s, 1))
                model.compile(jit_compile=False)  # the next group's eager path stays eager
            _cpu_ratios(bench, group)
        del model, net
        keras.backend.clear_session()


def _torch_paths(net, nchw):
    import torch

    channels_last_net = _channels_last_copy(net)
    channels_last_x = nchw.contiguous(memory_format=torch.channels_last)

    def run_nchw():
        with torch.no_grad():
            return net(nchw)

    def run_channels_last():
        with torch.no_grad():
            return channels_last_net(channels_last_x)

    return {"NCHW": run_nchw, "channels_last": run_channels_last}


def _channels_last_copy(net):
    import copy

    import torch

    return copy.deepcopy(net).to(memory_format=torch.channels_last).eval()
