"""A spectrally normalised 2D convolution with the semantics of torch.nn.utils.spectral_norm.

torch keeps the raw kernel (`weight_orig`) trainable and two unit vectors u [out] and v [in*kh*kw]
as buffers. Every training-mode forward does one power iteration that updates u and v, and the
convolution uses W / sigma with sigma = u . (W v). Inference uses the stored u and v unchanged.
keras.layers.SpectralNormalization differs (it overwrites the trainable kernel with W / sigma during
training and convolves with the raw kernel at inference), so it cannot load torch checkpoints nor
train like them.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# torch.nn.functional.normalize's default eps, used by spectral_norm.
TORCH_NORMALIZE_EPS = 1e-12


def l2_normalize(vector, eps: float = TORCH_NORMALIZE_EPS):
    """vector / max(||vector||_2, eps), as torch.nn.functional.normalize(dim=0)."""
    norm = ops.sqrt(ops.sum(ops.square(vector)))
    return vector / ops.maximum(norm, eps)


def kernel_to_matrix(kernel):
    """Keras kernel (kh, kw, in, out) -> torch's weight matrix (out, in*kh*kw).

    torch flattens weight (out, in, kh, kw) row-major, so v is ordered (in, kh, kw); keeping that
    order lets converted checkpoints copy weight_v unchanged.
    """
    out_channels = kernel.shape[-1]
    return ops.reshape(ops.transpose(kernel, (3, 2, 0, 1)), (out_channels, -1))


def power_iteration(weight_matrix, u, v, eps: float = TORCH_NORMALIZE_EPS):
    """One step of torch's power iteration: v <- normalize(W^T u), u <- normalize(W v)."""
    v = l2_normalize(ops.matmul(ops.transpose(weight_matrix), u), eps)
    u = l2_normalize(ops.matmul(weight_matrix, v), eps)
    return u, v


def spectral_sigma(weight_matrix, u, v):
    """sigma = u . (W v); differentiable in W, with u and v treated as constants."""
    return ops.sum(u * ops.matmul(weight_matrix, v))


def _unit_normal_initializer(shape, dtype=None):
    # torch initialises u and v as normalised standard-normal draws. numpy (seeded by
    # keras.utils.set_random_seed) because JAX compiles one random program per vector shape.
    draw = np.random.standard_normal(shape)
    unit = draw / max(float(np.linalg.norm(draw)), TORCH_NORMALIZE_EPS)
    return ops.convert_to_tensor(unit, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_pbasr")
class SpectralNormConv2D(keras.layers.Layer):
    """Conv2D whose kernel is divided by its largest singular value, exactly like
    `torch.nn.utils.spectral_norm(nn.Conv2d(...))` with one power iteration.

    Weights: `weight_orig` (kh, kw, in, out), trainable; `weight_u` (out,) and `weight_v`
    (in*kh*kw,), non-trainable, updated by every call with `training=True` (also inside a JAX
    `stateless_call`, which returns them among the non-trainable variables); optional `bias`.
    `padding` is torch's explicit integer zero padding (k4 s2 p1 is not Keras 'same' on odd sizes).

    Example:
    >>> import numpy as np
    >>> conv = SpectralNormConv2D(8, 4, strides=2, padding=1, use_bias=False)
    >>> conv(np.zeros((1, 9, 9, 3), "float32"), training=True).shape
    (1, 4, 4, 8)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        padding: int = 0,
        use_bias: bool = True,
        eps: float = TORCH_NORMALIZE_EPS,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.padding = int(padding)
        self.use_bias = bool(use_bias)
        self.eps = float(eps)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"{self.name}: the channel dimension of the input must be known")
        k = self.kernel_size
        self.weight_orig = self.add_weight(
            shape=(k, k, in_channels, self.filters),
            initializer=self.kernel_initializer,
            name="weight_orig",
        )
        self.weight_u = self.add_weight(
            shape=(self.filters,),
            initializer=_unit_normal_initializer,
            trainable=False,
            name="weight_u",
        )
        self.weight_v = self.add_weight(
            shape=(in_channels * k * k,),
            initializer=_unit_normal_initializer,
            trainable=False,
            name="weight_v",
        )
        self.bias = (
            self.add_weight(shape=(self.filters,), initializer=self.bias_initializer, name="bias")
            if self.use_bias
            else None
        )

    def normalized_kernel(self, training: bool = False):
        """W / sigma in the Keras kernel layout; with training=True, first advances u and v."""
        weight_matrix = kernel_to_matrix(self.weight_orig)
        u, v = self.weight_u, self.weight_v
        if training:
            # torch runs the iteration under no_grad: u and v are constants for the gradient.
            u, v = power_iteration(ops.stop_gradient(weight_matrix), u, v, self.eps)
            u, v = ops.stop_gradient(u), ops.stop_gradient(v)
            self.weight_u.assign(u)
            self.weight_v.assign(v)
        return self.weight_orig / spectral_sigma(weight_matrix, u, v)

    def call(self, inputs, training=None):
        kernel = ops.cast(self.normalized_kernel(bool(training)), self.compute_dtype)
        if self.padding:
            p = self.padding
            inputs = ops.pad(inputs, ((0, 0), (p, p), (p, p), (0, 0)))
        outputs = ops.conv(inputs, kernel, strides=self.strides, padding="valid")
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape

        def out_size(size):
            if size is None:
                return None
            return (size + 2 * self.padding - self.kernel_size) // self.strides + 1

        return (n, out_size(h), out_size(w), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "use_bias": self.use_bias,
            "eps": self.eps,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
