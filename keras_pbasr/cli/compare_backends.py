"""`pbasr compare-backends`: the same model and training on several backends, side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from keras_pbasr.models import BACKBONES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare-backends",
        help="run the same model (and PBaSR training) on TensorFlow, JAX and PyTorch",
        description="Runs each backend in its own subprocess on identical inputs and starting "
        "weights; reports inference latency (eager and jit/compiled), throughput, PBaSR "
        "train-step time, peak memory and agreement with the first backend. Writes "
        "report.md, report.json and latency.png into --out.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="preset name or directory")
    source.add_argument("--arch", choices=sorted(BACKBONES),
                        help="build this architecture with fresh weights")
    p.add_argument("--config", type=json.loads, default=None,
                   help='JSON constructor arguments for --arch, e.g. \'{"num_conv": 4}\'')
    p.add_argument("--backends", default="tensorflow,jax,torch",
                   help="comma-separated, the first is the agreement reference")
    p.add_argument("--train-steps", type=int, default=0,
                   help="PBaSR train steps per backend (0 = inference only)")
    p.add_argument("--size", default="64x64", help="LR input HxW (default 64x64)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--repeats", type=int, default=10, help="timed runs after warm-up")
    p.add_argument("--out", type=Path, default=Path("compare-backends"), help="report folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keras_pbasr.compare import compare_backends

    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"--size must look like 64x64, got {args.size!r}") from exc
    compare_backends(
        preset=args.preset, arch=args.arch, arch_config=args.config,
        backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()),
        size=(h, w), train_steps=args.train_steps, device=args.device,
        repeats=args.repeats, out_dir=args.out,
    )
    print(f"\nwrote {args.out}/report.md, report.json, latency.png")
    return 0
