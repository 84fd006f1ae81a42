"""Counting and reporting of bad input files (on_error="skip").

Each skipped file prints one line through the package's shared folder-run policy
(`keras_pbasr.utils.image_files.SkippedFiles`), as `pbasr upscale`, `blurmap` and `evaluate` do.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import keras

from keras_pbasr.utils.image_files import SkippedFiles

logger = logging.getLogger("keras_pbasr.data")


@dataclass(frozen=True)
class DataError:
    path: str
    reason: str
    stage: str  # "preflight" (before training) or "decode" (while iterating)


class DataErrorCounter:
    """Thread-safe record of skipped files; `DataErrorReport` prints it after each epoch."""

    def __init__(self):
        self._lock = threading.Lock()
        self._errors: list[DataError] = []
        self._reported = 0
        self._lines = SkippedFiles("training data")

    def add(self, path: str, reason: str, stage: str) -> None:
        with self._lock:
            self._errors.append(DataError(str(path), reason, stage))
        self._lines.skip(path, f"{reason} ({stage})")

    @property
    def exit_code(self) -> int:
        """1 when any file was skipped (the CLI's exit status), else 0."""
        return self._lines.exit_code

    @property
    def errors(self) -> list[DataError]:
        with self._lock:
            return list(self._errors)

    def __len__(self) -> int:
        with self._lock:
            return len(self._errors)

    def counts(self) -> dict[str, int]:
        """Number of skipped files per stage."""
        result: dict[str, int] = {}
        for error in self.errors:
            result[error.stage] = result.get(error.stage, 0) + 1
        return result

    def report(self) -> str:
        """One line: totals per stage and how many were new since the previous report."""
        with self._lock:
            new = len(self._errors) - self._reported
            self._reported = len(self._errors)
        counts = self.counts()
        detail = ", ".join(f"{stage} {n}" for stage, n in sorted(counts.items())) or "none"
        return f"skipped input files: {sum(counts.values())} ({detail}); {new} new"


class DataErrorReport(keras.callbacks.Callback):
    """Logs the DataErrorCounter's counts at the end of each epoch.

    Example:
    >>> counter = DataErrorCounter()
    >>> # ds = mixed_dataset(..., on_error="skip", error_counter=counter)
    >>> # model.fit(ds, callbacks=[DataErrorReport(counter)], ...)
    """

    def __init__(self, counter: DataErrorCounter, print_fn=print):
        super().__init__()
        self.counter = counter
        self.print_fn = print_fn

    def on_epoch_end(self, epoch, logs=None):
        line = self.counter.report()
        logger.info("epoch %d: %s", epoch + 1, line)
        self.print_fn(f"epoch {epoch + 1}: {line}")
