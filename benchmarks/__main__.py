"""`python -m benchmarks NAME [--quick] [--out DIR]`: runs benchmarks/bench_NAME.py.

A module with its own options defines `cli(argv)`, which gets every argument after NAME.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks.harness import Benchmark


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("name", choices=available())
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args, rest = parser.parse_known_args()
    module = importlib.import_module(f"benchmarks.bench_{args.name}")
    if hasattr(module, "cli"):
        module.cli(sys.argv[2:])
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    bench = Benchmark(args.name, quick=args.quick)
    module.run(bench)
    bench.write(args.out)


if __name__ == "__main__":
    main()
