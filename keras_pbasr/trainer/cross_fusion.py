"""The Cross Fusion Module (CFM, paper Eq. 2) as pure functions and a Keras callback.

Every `interval` training steps the two generator branches are pulled towards each other:

    cos  = W_G . W_B / (|W_G| |W_B|)
    lam  = lambda0 + (1 - lambda0) * cos / 2                (form "printed": paper Eq. 2)
    W_G' = lam * W_G + (1 - lam) * W_B
    W_B' = lam * W_B + (1 - lam) * W_G                      (both from the pre-update weights)

Only trainable generator weights are fused (the official ParallelNet interpolates parameters, not
buffers), and the optimizer moments are left untouched. The functions accept numpy arrays or
backend tensors: they only use `keras.ops`, so the same code serves the callback, the tests' numpy
reference comparison and the per-step cosine that the trainer logs.

Why the printed cos / 2 is the default: only it fits the paper's Fig. 10c. With it, lambda0 = 0
gives lam ~ 0.5 (the branches are averaged every k steps: "overly aggressive") and lambda0 = 1
gives lam = 1 ("absence of communication"). Without the /2 (form "unhalved") lambda0 = 0 would
give lam ~ cos ~ 1, i.e. no communication either, and at lambda0 = 0.99 each fusion moves a branch
by (1 - lambda0)(1 - cos) of the gap: ~1e-7 for fine-tuned branches, below float32 rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import keras
from keras import ops

from keras_pbasr.trainer.callbacks import GlobalStepCallback

COSINE_MODES = ("global", "per_tensor")
FUSION_FORMS = ("printed", "unhalved", "constant")


def branch_cosine(wg_list: Sequence, wb_list: Sequence, mode: str = "global"):
    """Cosine similarity of two branches' weight lists.

    mode "global": all tensors flattened into one vector each (every weight counts equally).
    mode "per_tensor": mean over tensors of each tensor's cosine (official ParallelNet; every
    tensor counts equally, whatever its size).

    Example:
    >>> import numpy as np
    >>> float(branch_cosine([np.ones(3)], [np.ones(3)]))
    1.0
    """
    if mode not in COSINE_MODES:
        raise ValueError(f"cosine mode must be one of {COSINE_MODES}, got {mode!r}")
    if len(wg_list) != len(wb_list) or not wg_list:
        raise ValueError(
            f"branch_cosine needs two equally long, non-empty weight lists; got {len(wg_list)} "
            f"and {len(wb_list)}"
        )
    dots, norms_g, norms_b = [], [], []
    for wg, wb in zip(wg_list, wb_list):
        wg = ops.cast(wg, "float32")
        wb = ops.cast(wb, "float32")
        dots.append(ops.sum(wg * wb))
        norms_g.append(ops.sum(wg * wg))
        norms_b.append(ops.sum(wb * wb))
    dots, norms_g, norms_b = ops.stack(dots), ops.stack(norms_g), ops.stack(norms_b)
    # torch.nn.functional.cosine_similarity clamps each norm at eps = 1e-8.
    eps = 1e-8
    if mode == "global":
        denominator = ops.maximum(ops.sqrt(ops.sum(norms_g)), eps) * ops.maximum(
            ops.sqrt(ops.sum(norms_b)), eps
        )
        return ops.sum(dots) / denominator
    per_tensor = dots / (ops.maximum(ops.sqrt(norms_g), eps) * ops.maximum(ops.sqrt(norms_b), eps))
    return ops.mean(per_tensor)


def cross_fusion_ratio(cos, lambda0: float, form: str = "printed"):
    """The interpolation ratio lam of one fusion.

    form "printed":  lam = lambda0 + (1 - lambda0) * cos / 2   (paper Eq. 2 as printed)
    form "unhalved": lam = lambda0 + (1 - lambda0) * cos
    form "constant": lam = lambda0                             (official ParallelNet_ncb: 0.999)

    Example:
    >>> round(cross_fusion_ratio(1.0, 0.99), 6)   # identical branches: pull 1 - lam = 0.005
    0.995
    """
    if not 0.0 <= lambda0 <= 1.0:
        raise ValueError(f"lambda0 must be in [0, 1], got {lambda0}")
    if form == "printed":
        return lambda0 + (1.0 - lambda0) * (cos / 2.0)
    if form == "unhalved":
        return lambda0 + (1.0 - lambda0) * cos
    if form == "constant":
        # Same type as the other forms (a tensor when cos is one), so callers can log it alike.
        return lambda0 + 0.0 * cos
    raise ValueError(f"form must be one of {FUSION_FORMS}, got {form!r}")


def cross_fuse(wg_list: Sequence, wb_list: Sequence, lam) -> tuple[list, list]:
    """Simultaneous symmetric interpolation; returns (new W_G list, new W_B list)."""
    new_g, new_b = [], []
    for wg, wb in zip(wg_list, wb_list):
        new_g.append(lam * wg + (1.0 - lam) * wb)
        new_b.append(lam * wb + (1.0 - lam) * wg)
    return new_g, new_b


def fused_weights(wg_list: Sequence, wb_list: Sequence, lambda0: float, mode: str, form: str):
    """One CFM application: returns (cos, lam, new W_G list, new W_B list)."""
    cos = branch_cosine(wg_list, wb_list, mode)
    lam = cross_fusion_ratio(cos, lambda0, form)
    new_g, new_b = cross_fuse(wg_list, wb_list, lam)
    return cos, lam, new_g, new_b


class CrossFusion(GlobalStepCallback):
    """The CFM as a callback for `PBaSRTrainer.fit`.

    After every `interval`-th training step (global step counted by the trainer's optimizer, so a
    resumed run keeps the phase) the generator branches' trainable weights are fused:
    W_G' = lam W_G + (1 - lam) W_B and W_B' = lam W_B + (1 - lam) W_G.

    Args:
        interval: k, steps between fusions (paper: 20).
        lambda0: paper: 0.99. Must be in [0, 1]; 1 disables the exchange.
        cosine: "global" (one cosine over all trainable generator weights, Eq. 2 as printed) or
            "per_tensor" (mean of per-tensor cosines, the official ParallelNet).
        form: "printed" (default, lam = lambda0 + (1 - lambda0) cos / 2), "unhalved"
            (lam = lambda0 + (1 - lambda0) cos) or "constant" (lam = lambda0; the official
            ParallelNet_ncb uses 0.999).

    Each fusion moves each branch by the fraction 1 - lam of the gap W_B - W_G. At lambda0 0.99:

        cos                  0.9      0.99     0.999    0.99999
        printed  (1 - lam)   0.0055   0.00505  0.005005 0.005
        unhalved (1 - lam)   0.001    1e-4     1e-5     1e-7
        constant 0.999       0.001    0.001    0.001    0.001

    Measured on real weights: branches fine-tuned from realesrgan_x4plus (the main job, 100
    steps) sat at global cos 0.999989 (step 20) to 0.999965 (step 100), so the unhalved form
    moves them by 1e-7 to 3.5e-7 of the gap per fusion, at the level of float32 rounding,
    while the printed form moves them by 0.005 (notes/issue-16-pbasr-training.md).

    Every fusion is logged: `self.history` is a list of {"step", "cosine", "lambda"} dicts,
    `self.last_lambda` / `self.last_cosine` hold the latest, and the step logs of a fusion step
    get `cfm_lambda` and `cfm_cosine` (list CrossFusion before loggers in `callbacks`).

    Under the JAX backend the trainer state lives outside the variables during `fit`; the
    callback first calls `model.jax_state_sync()` (which writes the state back and marks it as
    synced, so the next step re-reads the variables), then assigns the fused weights. On
    TensorFlow and torch the variables are live and are assigned directly.

    Example:
    >>> cfm = CrossFusion(interval=20, lambda0=0.99)                       # paper Eq. 2
    >>> official = CrossFusion(lambda0=0.999, form="constant", cosine="per_tensor")
    >>> # trainer.fit(dataset, steps_per_epoch=1000, callbacks=[cfm]); cfm.history[-1]
    """

    def __init__(
        self,
        interval: int = 20,
        lambda0: float = 0.99,
        cosine: str = "global",
        form: str = "printed",
    ):
        super().__init__()
        if isinstance(interval, bool) or int(interval) != interval or int(interval) < 1:
            raise ValueError(f"interval must be an integer >= 1, got {interval!r}")
        if cosine not in COSINE_MODES:
            raise ValueError(f"cosine must be one of {COSINE_MODES}, got {cosine!r}")
        if form not in FUSION_FORMS:
            raise ValueError(f"form must be one of {FUSION_FORMS}, got {form!r}")
        cross_fusion_ratio(0.0, lambda0, form)  # validates lambda0
        self.interval = int(interval)
        self.lambda0 = float(lambda0)
        self.cosine = cosine
        self.form = form
        self.last_lambda = None
        self.last_cosine = None
        self.history: list[dict] = []
        self._fuse = functools.partial(
            fused_weights, lambda0=self.lambda0, mode=self.cosine, form=self.form
        )
        if keras.backend.backend() == "jax":
            import jax

            # One compiled program instead of hundreds of eagerly dispatched small ops.
            self._fuse = jax.jit(self._fuse)

    @property
    def fusion_steps(self) -> list[int]:
        """Global steps after which a fusion ran (from `history`)."""
        return [entry["step"] for entry in self.history]

    def on_train_begin(self, logs=None):
        if getattr(self.model, "steps_per_execution", 1) != 1:
            raise ValueError(
                "CrossFusion counts steps in on_train_batch_end and needs steps_per_execution=1"
            )
        if not hasattr(self.model, "generator_branch_weights"):
            raise TypeError("CrossFusion works on a PBaSRTrainer (two generator branches)")
        super().on_train_begin(logs)

    def on_global_step(self, step, logs):
        if step % self.interval:
            return
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        wg_vars, wb_vars = self.model.generator_branch_weights()
        cos, lam = self.fuse_variables(wg_vars, wb_vars)
        self.last_cosine = float(keras.ops.convert_to_numpy(cos))
        self.last_lambda = float(keras.ops.convert_to_numpy(lam))
        self.history.append(
            {"step": step, "cosine": self.last_cosine, "lambda": self.last_lambda}
        )
        if logs is not None:
            logs["cfm_cosine"] = self.last_cosine
            logs["cfm_lambda"] = self.last_lambda

    def fuse_variables(self, wg_vars: Sequence, wb_vars: Sequence):
        """Fuse two lists of keras.Variable in place; returns (cos, lam)."""
        cos, lam, new_g, new_b = self._fuse([v.value for v in wg_vars], [v.value for v in wb_vars])
        for var, value in zip(wg_vars, new_g):
            var.assign(value)
        for var, value in zip(wb_vars, new_b):
            var.assign(value)
        return cos, lam

    def get_config(self):
        return {
            "interval": self.interval,
            "lambda0": self.lambda0,
            "cosine": self.cosine,
            "form": self.form,
        }
