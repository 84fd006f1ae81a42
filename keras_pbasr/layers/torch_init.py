"""torch's default initialisation of nn.Conv2d, as a Keras initializer.

nn.Conv2d draws its weight with kaiming_uniform_(a=sqrt(5)) and its bias uniformly, both from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Networks trained from scratch in the official code (the
discriminators) start from this distribution, not from Keras' glorot_uniform. Values come from
numpy (seeded by keras.utils.set_random_seed), which also spares JAX one compiled random
program per kernel shape.
"""

from __future__ import annotations

import math

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="keras_pbasr")
class TorchConvUniform(keras.initializers.Initializer):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)); fan_in = kh*kw*in for a (kh, kw, in, out) kernel, or
    given explicitly (a bias has no fan-in of its own).

    Example:
    >>> conv = keras.layers.Conv2D(
    ...     8, 3, kernel_initializer=TorchConvUniform(), bias_initializer=TorchConvUniform(27))
    """

    def __init__(self, fan_in: int | None = None, seed: int | None = None):
        self.fan_in = fan_in
        self.seed = seed

    def __call__(self, shape, dtype=None):
        fan_in = self.fan_in if self.fan_in is not None else math.prod(shape[:-1])
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        rng = np.random.default_rng(self.seed) if self.seed is not None else np.random
        values = rng.uniform(-bound, bound, size=shape).astype("float32")
        return keras.ops.convert_to_tensor(values, dtype=dtype)

    def get_config(self):
        return {"fan_in": self.fan_in, "seed": self.seed}
