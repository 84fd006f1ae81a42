"""Keeping the `pbasr` command quiet: TensorFlow's C++ log lines only with --verbose.

TensorFlow (2.21) logs through Abseil from C++: start-up lines (cpu_feature_guard, oneDNN) on
import and grappler's "remapper failed" errors while tracing. Abseil writes them straight to
file descriptor 2 before anyone can initialise it, and TF_CPP_MIN_LOG_LEVEL no longer stops
them. So the CLI filters descriptor 2 itself: `quiet_native_logs_for_cli` (called first thing
by `keras_pbasr/__init__.py`, before Keras and TensorFlow are imported) points Python's
`sys.stderr` at a copy of the real stderr and connects descriptor 2 to a pipe whose reader
thread forwards every line except Abseil / TensorFlow log records (NATIVE_LOG_LINE). It acts
only when the process is the `pbasr` command (or `python -m keras_pbasr.cli`) without
--verbose; library users keep TensorFlow's defaults.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Sequence

CLI_NAME = "pbasr"
CLI_MODULE = "keras_pbasr.cli"
VERBOSE_FLAG = "--verbose"
# Abseil / glog records ("I0000 00:00:1796544002.478193    5964 port.cc:153] ..."), Abseil's
# warning that it is not initialised, and the second line of cpu_feature_guard's record.
NATIVE_LOG_LINE = re.compile(
    rb"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|To enable the following instructions: .* rebuild TensorFlow)"
)
# Still set for older TensorFlow builds, which honour it (never overriding the user's value).
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}


def invoked_as_cli(argv: Sequence[str]) -> bool:
    """Whether a process's original command line (`sys.orig_argv`) runs the `pbasr` CLI.

    Example:
    >>> invoked_as_cli(["/venv/bin/pbasr", "upscale", "a.png", "b.png"])
    True
    >>> invoked_as_cli(["python", "-m", "pytest"])
    False
    """
    argv = list(argv)
    if not argv:
        return False
    if os.path.basename(argv[0]) == CLI_NAME:
        return True
    if len(argv) > 1 and os.path.basename(argv[1]) == CLI_NAME:  # `python /venv/bin/pbasr`
        return True
    return any(
        flag == "-m" and module.startswith(CLI_MODULE) for flag, module in zip(argv, argv[1:])
    )


def is_native_log_line(line: bytes) -> bool:
    """Whether one line written to descriptor 2 is an Abseil / TensorFlow C++ log record.

    Example:
    >>> is_native_log_line(b"E0000 00:00:17.5  12 meta_optimizer.cc:966] remapper failed")
    True
    >>> is_native_log_line(b"pbasr: error: a.png: file not found")
    False
    """
    return NATIVE_LOG_LINE.match(line) is not None


def quiet_native_logs_for_cli(argv: Sequence[str] | None = None) -> bool:
    """Filters C++ log records out of stderr when `argv` (default: this process's command
    line) runs the CLI without --verbose; returns whether it did."""
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    if not invoked_as_cli(argv) or VERBOSE_FLAG in argv:
        return False
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    _filter_descriptor_2()
    return True


def _filter_descriptor_2() -> None:
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    # Python's own messages (errors, progress, tracebacks) bypass the filter, in order.
    sys.stderr = open(  # noqa: SIM115 - lives as long as the process
        real_stderr, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace",
        closefd=False,
    )

    def write(data: bytes) -> None:
        # Keep draining even when stderr is gone (e.g. `pbasr ... 2>&1 | head`): a full pipe
        # would block every later native write.
        with contextlib.suppress(OSError):
            os.write(real_stderr, data)

    def forward() -> None:
        with open(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not is_native_log_line(line))
                if kept:
                    write(kept)
            if pending and not is_native_log_line(pending):
                write(pending)

    threading.Thread(target=forward, name="pbasr-native-log-filter", daemon=True).start()
