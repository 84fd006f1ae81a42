"""The `pbasr` command line.

Each subcommand lives in its own module of this package, exposing
`register(subparsers)` which adds its parser and sets `func` to a callable taking the
parsed arguments and returning an exit code. Heavy imports happen inside `func`, so
`pbasr --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from keras_pbasr.version import __version__

# Subcommand modules, in the order `pbasr --help` lists them.
SUBCOMMAND_MODULES = [
    "keras_pbasr.cli.info",
    "keras_pbasr.cli.train",
    "keras_pbasr.cli.convert",
    "keras_pbasr.cli.blurmap",
    "keras_pbasr.cli.compare_backends",
    "keras_pbasr.cli.upscale",
    "keras_pbasr.cli.export",
    "keras_pbasr.cli.weights",
    "keras_pbasr.cli.evaluate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbasr",
        description="Blur-aware blind super-resolution (PBaSR) for Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"keras_pbasr {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
