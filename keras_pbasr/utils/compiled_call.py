"""`compiled_model_call`: a built model's inference call, jitted on JAX (eager elsewhere).

Shared by `keras_pbasr.inference.upscale` and the network metrics (LPIPS, DISTS). Why jit on
JAX only: eager JAX compiles every primitive for every new shape, while TensorFlow and torch
run eagerly without per-shape costs (measurements in keras_pbasr/metrics/compilation.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import keras

_compiled_models: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_model_call(model: keras.Model) -> Callable:
    """An inference call `f(*inputs)` of a built Keras model (cached per model), jitted on JAX.

    On JAX the model's variables go in as arguments of a jitted stateless call (the weights
    are not baked into the program as constants, which would make compiling slow), so
    concurrent calls share nothing mutable.

    Example:
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> tuple(compiled_model_call(model)(np.ones((3, 2), "float32")).shape)
    (3, 1)
    """
    if keras.backend.backend() != "jax":
        return model
    if model in _compiled_models:
        return _compiled_models[model]
    import jax

    model_ref = weakref.ref(model)  # the cache must not keep the model alive

    @jax.jit
    def forward(trainable, non_trainable, *inputs):
        # No `training` argument: some callers' call() takes none, and None means inference.
        outputs, _ = model_ref().stateless_call(trainable, non_trainable, *inputs)
        return outputs

    def call(*inputs):
        m = model_ref()
        return forward([v.value for v in m.trainable_variables],
                       [v.value for v in m.non_trainable_variables], *inputs)

    _compiled_models[model] = call
    return call
