"""Training-safety callbacks for PBaSRTrainer."""

from __future__ import annotations

import math

import keras

# D_B's loss split by region is NaN by design when a batch has no blurred (or no sharp) pixel.
REGION_DIAGNOSTICS = ("d_blur_on_blur_pixels", "d_blur_on_sharp_pixels")


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or inf."""


class GlobalStepCallback(keras.callbacks.Callback):
    """Base of the callbacks that act on the trainer's global step (its optimizer's
    `iterations`, which BackupAndRestore restores): `on_global_step(step, logs)` runs after
    every training step with the step just finished (1 after the first step of a new run).

    The step is read at the first batch, not in on_train_begin: BackupAndRestore restores it
    in its own on_train_begin, which may run after this one; variables are live in
    on_train_batch_begin on every backend (JAX purges them only after that hook). From then
    on it is counted here, so no variable is read per step.

    Example:
    >>> class PrintStep(GlobalStepCallback):
    ...     def on_global_step(self, step, logs):
    ...         print(step)
    """

    def __init__(self):
        super().__init__()
        self.global_step: int | None = None

    def on_train_begin(self, logs=None):
        self.global_step = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.global_step is None:
            self.global_step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        self.on_global_step(self.global_step, logs)

    def on_global_step(self, step: int, logs: dict | None) -> None:
        """What the callback does after global step `step`; `logs` may be written to."""


class StopOnNonFiniteLoss(GlobalStepCallback):
    """Stops `fit` with NonFiniteLossError, naming the global step and the loss, as soon as any
    logged loss is NaN or inf (`ignore`: diagnostics that may legitimately be NaN).

    Raising (rather than setting `stop_training`) skips the epoch-end hooks, so a
    BackupAndRestore checkpoint written at epoch ends is never overwritten with the broken state:
    the last good checkpoint stays on disk. With BackupAndRestore(save_freq=<int>) list this
    callback first so it runs before the checkpoint of the same step.

    Example:
    >>> guard = StopOnNonFiniteLoss(checkpoint_dir="runs/x/backup")
    >>> # trainer.fit(data, callbacks=[guard, keras.callbacks.BackupAndRestore("runs/x/backup")])
    """

    def __init__(
        self, checkpoint_dir: str | None = None, ignore: tuple[str, ...] = REGION_DIAGNOSTICS
    ):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.ignore = set(ignore)

    def on_global_step(self, step, logs):
        bad = {}
        for name, value in (logs or {}).items():
            if name in self.ignore:
                continue
            value = float(keras.ops.convert_to_numpy(value))
            if not math.isfinite(value):
                bad[name] = value
        if bad:
            where = (
                f"; the last good checkpoint is kept in {self.checkpoint_dir} (re-run to resume "
                "from it)"
                if self.checkpoint_dir
                else ""
            )
            details = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            raise NonFiniteLossError(
                f"non-finite loss at training step {step}: {details}; "
                f"training stopped{where}"
            )
