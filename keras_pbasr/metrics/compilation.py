"""Compiling the metric functions, in one place: jax.jit on JAX, eager elsewhere.

Why: in eager mode JAX compiles every primitive for every new shape, so a VIF call on a new
image size ran hundreds of small compilations (~35 s on the shared test machine); one jitted
program per shape compiles in a few seconds and then runs at XLA speed. TensorFlow and torch
run eagerly without per-shape costs: tf.function made the second call on a 512x512 pair
faster (VIF 3.3 -> 1.6 s) but the first call on every new image size slower (VIF 3.4 -> 8.4 s,
tracing and graph optimisation), and evaluation data sets have images of many sizes (the
evaluation test went from 14.5 to 20 s). torch.compile would cost more than it saves too.

The networks (LPIPS, DISTS) go through `keras_pbasr.utils.compiled_call.compiled_model_call`,
shared with `keras_pbasr.inference.upscale`.

The compiled functions are pure: tensors in, tensors out, every Python-valued setting
(crop border, colour space, ...) a keyword argument named in `static`, each new value of which
compiles a new program. Shapes are static too (the metrics branch on them in Python).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import keras

from keras_pbasr.metrics.functional import float64_scope


def _compile(fn: Callable, static: tuple[str, ...]) -> Callable:
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn, static_argnames=static)
    return fn


def compiled_metric(static: tuple[str, ...] = ()) -> Callable:
    """Decorator: on JAX, compiles a pure tensor function once per input shape and static
    setting; on TensorFlow and torch the function runs eagerly. The function runs (and on
    JAX, is traced) with float64 enabled, so its float64 math is float64 on every backend
    (see functional.float64_scope).

    Example:
    >>> from keras import ops
    >>> @compiled_metric(static=("power",))
    ... def norm(x, *, power: int):
    ...     return ops.sum(ops.abs(x) ** power, axis=-1)
    >>> float(norm(ops.ones((1, 4)), power=2)[0])
    4.0
    """

    def decorate(fn: Callable) -> Callable:
        compiled = _compile(fn, static)  # KERAS_BACKEND is fixed once keras is imported

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with float64_scope():
                return compiled(*args, **kwargs)

        return wrapper

    return decorate
