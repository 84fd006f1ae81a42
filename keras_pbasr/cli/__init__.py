"""The `pbasr` command line.

Each subcommand lives in its own module of this package, exposing
`register(subparsers)` which adds its parser and sets `func` to a callable taking the
parsed arguments and returning an exit code. Heavy imports happen inside `func`, so
`pbasr --help` stays fast.

Errors: every expected failure (a bad input, a missing or unwritable file, a refused
overwrite) is an exception of a type in EXPECTED_ERRORS; `main` prints it as one line,
`pbasr: error: MESSAGE`, and returns 1. `--debug` (anywhere on the line) shows the traceback
instead. `--verbose` keeps TensorFlow's C++ log lines, hidden by default (see
`keras_pbasr.utils.native_logs`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

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


# Failures a user can cause and fix: bad or missing files and values, refused overwrites,
# unreadable checkpoints and presets (all ValueError subclasses), missing weights, no memory,
# a training whose loss became NaN (NonFiniteLossError, a FloatingPointError).
EXPECTED_ERRORS = (ValueError, OSError, MemoryError, FloatingPointError)
GLOBAL_FLAGS = ("--debug", "--verbose")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbasr",
        description="Blur-aware blind super-resolution (PBaSR) for Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"keras_pbasr {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (any position on the line)")
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's C++ log lines (any position on the line)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def split_global_flags(argv: list[str]) -> tuple[list[str], set[str]]:
    """Removes --debug / --verbose wherever they appear (before a `--`), so they work after
    a subcommand too; returns the remaining arguments and the flags found.

    Example:
    >>> split_global_flags(["upscale", "a.png", "b.png", "--debug"])
    (['upscale', 'a.png', 'b.png'], {'--debug'})
    """
    end = argv.index("--") if "--" in argv else len(argv)
    found = {a for a in argv[:end] if a in GLOBAL_FLAGS}
    return [a for a in argv[:end] if a not in GLOBAL_FLAGS] + argv[end:], found


def main(argv: list[str] | None = None) -> int:
    """Runs `pbasr ARGS`; returns the exit code (0 success, 1 error, 2 usage, 130 Ctrl-C)."""
    argv, flags = split_global_flags(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug, args.verbose = "--debug" in flags, "--verbose" in flags
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\npbasr: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as error:
        if args.debug:
            traceback.print_exc()
        print(f"pbasr: error: {error_message(error)}", file=sys.stderr)
        return 1


def error_message(error: BaseException) -> str:
    """The message of an expected error (its type name where it has none)."""
    if isinstance(error, MemoryError):
        detail = f" ({error})" if str(error) else ""
        return f"out of memory{detail}; use a smaller --tile or a smaller image"
    return str(error) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
