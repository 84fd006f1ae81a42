"""Building blocks of FeMaSR: the pre-activation ResBlock, the vector quantizer and the Swin
transformer layers (SwinIR's RSTB) of the LQ encoder.

Feature maps are channels_last (N, H, W, C). Shapes that depend on the image size are read
with `keras.ops.shape` at call time, so H and W stay dynamic on every backend.
"""

from __future__ import annotations

from keras import KerasTensor, initializers, layers, ops, saving

from keras_pbasr.layers.windows import (
    SHIFTED_WINDOW_MASK_VALUE,
    WindowAttentionBase,
    attend_shifted_windows,
    relative_position_index,
    trunc_normal_002,
    window_region_labels,
)

# FeMaSR's NormLayer('gn'): GroupNorm with 32 groups and eps 1e-6 (Keras defaults to 1e-3).
GROUP_NORM_GROUPS = 32
GROUP_NORM_EPSILON = 1e-6
ACTIVATIONS = ("silu", "leakyrelu", "relu", "gelu")


def _activation(name: str):
    """FeMaSR's ActLayer without parameters (its 'prelu' option is not supported)."""
    if name == "silu":
        return ops.silu
    if name == "leakyrelu":
        return lambda x: ops.leaky_relu(x, negative_slope=0.2)
    if name == "relu":
        return ops.relu
    if name == "gelu":
        return lambda x: ops.gelu(x, approximate=False)
    raise ValueError(f"act_type must be one of {ACTIVATIONS}, got {name!r}")


# ----------------------------------------------------------------------------------------------
# Pure functions: vector-quantization losses and the Swin index / mask.
# ----------------------------------------------------------------------------------------------


def gram_matrix(x):
    """(N, H, W, C) -> (N, C, C) channel Gram matrix divided by H*W."""
    batch, height, width, channels = ops.shape(x)
    flat = ops.reshape(x, (batch, height * width, channels))
    return ops.matmul(ops.transpose(flat, (0, 2, 1)), flat) / ops.cast(height * width, x.dtype)


def gram_matrix_loss(x, y):
    """mean((gram(x) - gram(y))^2): FeMaSR's texture (feature-matching) term."""
    return ops.mean(ops.square(gram_matrix(x) - gram_matrix(y)))


def vq_codebook_loss(z, z_q, beta: float):
    """The VQ-VAE loss without ground-truth codes: ||sg(z) - z_q||^2 (moves the codebook)
    + beta * ||z - sg(z_q)||^2 (commits the encoder)."""
    codebook_term = ops.mean(ops.square(z_q - ops.stop_gradient(z)))
    commitment = ops.mean(ops.square(ops.stop_gradient(z_q) - z))
    return codebook_term + beta * commitment


def code_matching_losses(z, z_q_gt, beta: float) -> dict:
    """FeMaSR LQ-stage losses against the codes of the HR image (from the HQ prior):
    {"codebook": beta * ||z - sg(z_q_gt)||^2, "code_gram": gram-matrix distance}."""
    target = ops.stop_gradient(z_q_gt)
    return {
        "codebook": beta * ops.mean(ops.square(target - z)),
        "code_gram": gram_matrix_loss(z, target),
    }


def swin_attention_mask(height, width, window_size: int, shift_size: int):
    """(nW, ws*ws, ws*ws) additive mask of shifted-window attention on an (H, W) map: 0 for
    token pairs from the same image region, -100 for pairs the cyclic shift brought together."""
    labels = window_region_labels(height, width, window_size, shift_size)
    same_region = ops.equal(labels[:, :, None], labels[:, None, :])
    return ops.where(same_region, 0.0, SHIFTED_WINDOW_MASK_VALUE)


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------


@saving.register_keras_serializable(package="keras_pbasr")
class ResBlock(layers.Layer):
    """Pre-activation residual block (taming / FeMaSR): x + conv2(act(norm2(conv1(act(norm1(x)))))).

    Official keys: conv.0.norm (GroupNorm), conv.2 (3x3 conv), conv.3.norm, conv.5.

    Example:
    >>> import numpy as np
    >>> ResBlock(32)(np.zeros((1, 5, 7, 32), "float32")).shape
    (1, 5, 7, 32)
    """

    def __init__(self, channels: int, act_type: str = "silu", **kwargs):
        super().__init__(**kwargs)
        if channels % GROUP_NORM_GROUPS:
            raise ValueError(f"channels must be a multiple of {GROUP_NORM_GROUPS}, got {channels}")
        self.channels = channels
        self.act_type = act_type
        self.activation = _activation(act_type)
        self.norm1 = layers.GroupNormalization(GROUP_NORM_GROUPS, epsilon=GROUP_NORM_EPSILON,
                                               name="norm1")
        self.conv1 = layers.Conv2D(channels, 3, padding="same", name="conv1")
        self.norm2 = layers.GroupNormalization(GROUP_NORM_GROUPS, epsilon=GROUP_NORM_EPSILON,
                                               name="norm2")
        self.conv2 = layers.Conv2D(channels, 3, padding="same", name="conv2")

    def build(self, input_shape):
        shape = (None, None, None, self.channels)
        for layer in (self.norm1, self.conv1, self.norm2, self.conv2):
            layer.build(shape)

    def call(self, x):
        residual = self.conv1(self.activation(self.norm1(x)))
        residual = self.conv2(self.activation(self.norm2(residual)))
        return x + residual

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "act_type": self.act_type}


@saving.register_keras_serializable(package="keras_pbasr")
class VectorQuantizer(layers.Layer):
    """Nearest-codeword quantization of (N, H, W, C) features with a straight-through gradient.

    `call(z)` returns `(z_q, indices)`: z_q = z + sg(e[k] - z) (forward value e[k], gradient of
    the identity), indices (N, H, W) int32 with k = argmin_k ||z - e_k||^2. The codebook
    `embedding` is (codebook_size, code_dim), as the official nn.Embedding weight.

    Example:
    >>> import numpy as np
    >>> vq = VectorQuantizer(codebook_size=16, code_dim=8)
    >>> z_q, indices = vq(np.zeros((1, 4, 4, 8), "float32"))
    >>> z_q.shape, indices.shape
    ((1, 4, 4, 8), (1, 4, 4))
    """

    def __init__(self, codebook_size: int, code_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.codebook_size = int(codebook_size)
        self.code_dim = int(code_dim)

    def build(self, input_shape):
        # The official uniform(-1/n, 1/n) initialisation.
        limit = 1.0 / self.codebook_size
        self.embedding = self.add_weight(
            shape=(self.codebook_size, self.code_dim),
            initializer=initializers.RandomUniform(-limit, limit),
            name="embedding",
        )

    def nearest_indices(self, z):
        """(N, H, W) int32 index of the closest codeword of every feature vector."""
        batch, height, width, _ = ops.shape(z)
        flat = ops.reshape(z, (-1, self.code_dim))
        codebook = ops.cast(self.embedding, z.dtype)
        # ||z||^2 + ||e||^2 - 2 z.e, the official distance (||z||^2 kept for identical rounding).
        distances = (
            ops.sum(ops.square(flat), axis=1, keepdims=True)
            + ops.sum(ops.square(codebook), axis=1)[None, :]
            - 2.0 * ops.matmul(flat, ops.transpose(codebook))
        )
        indices = ops.cast(ops.argmin(distances, axis=1), "int32")
        return ops.reshape(indices, (batch, height, width))

    def lookup(self, indices):
        """Codewords of an (N, H, W) index map: (N, H, W, code_dim)."""
        return ops.take(self.embedding, indices, axis=0)

    def call(self, z):
        indices = self.nearest_indices(z)
        z_q = ops.cast(self.lookup(indices), z.dtype)
        return z + ops.stop_gradient(z_q - z), indices

    def compute_output_spec(self, z):
        n, h, w, _ = z.shape
        return (KerasTensor(z.shape, dtype=z.dtype), KerasTensor((n, h, w), dtype="int32"))

    def get_config(self):
        return {
            **super().get_config(),
            "codebook_size": self.codebook_size,
            "code_dim": self.code_dim,
        }


@saving.register_keras_serializable(package="keras_pbasr")
class WindowAttention(WindowAttentionBase):
    """Swin multi-head self-attention inside windows, with a relative position bias.

    Call on (num_windows*N, ws*ws, dim) with an optional additive `attention_mask` of shape
    (num_windows, ws*ws, ws*ws). Official keys: qkv, proj, relative_position_bias_table.

    Example:
    >>> import numpy as np
    >>> WindowAttention(dim=16, num_heads=2, window_size=4)(np.zeros((3, 16, 16), "float32")).shape
    (3, 16, 16)
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, **kwargs):
        super().__init__(dim, num_heads, window_size, bias_window_size=window_size, **kwargs)
        self.qkv = layers.Dense(3 * dim, kernel_initializer=trunc_normal_002(), name="qkv")
        self.proj = layers.Dense(dim, kernel_initializer=trunc_normal_002(), name="proj")
        self.position_index = relative_position_index(window_size).reshape(-1)

    def projections(self):
        return [self.qkv, self.proj]

    def queries_keys_values(self, x):
        n = self.window_size * self.window_size
        qkv = ops.reshape(self.qkv(x), (-1, n, 3, self.num_heads, self.head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # (3, B, heads, n, head_dim)
        return qkv[0] * ops.cast(self.scale, x.dtype), qkv[1], qkv[2]


@saving.register_keras_serializable(package="keras_pbasr")
class SwinTransformerBlock(layers.Layer):
    """x + W-MSA(norm1(x)) in (shifted) windows, then x + MLP(norm2(x)); on (N, H, W, C) maps
    whose H and W are multiples of `window_size`. The shifted-window mask is computed for the
    map's size at call time (the official code stores one for its training size).

    Example:
    >>> import numpy as np
    >>> block = SwinTransformerBlock(dim=16, num_heads=2, window_size=4, shift_size=2)
    >>> block(np.zeros((1, 8, 12, 16), "float32")).shape
    (1, 8, 12, 16)
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, {window_size}), got {shift_size}")
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.mlp_ratio = mlp_ratio
        # torch.nn.LayerNorm's eps (Keras defaults to 1e-3).
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1")
        self.attn = WindowAttention(dim, num_heads, window_size, name="attn")
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2")
        hidden = int(dim * mlp_ratio)
        self.fc1 = layers.Dense(hidden, kernel_initializer=trunc_normal_002(), name="fc1")
        self.fc2 = layers.Dense(dim, kernel_initializer=trunc_normal_002(), name="fc2")

    def build(self, input_shape):
        self.norm1.build((None, self.dim))
        self.attn.build((None, self.window_size * self.window_size, self.dim))
        self.norm2.build((None, self.dim))
        self.fc1.build((None, self.dim))
        self.fc2.build((None, int(self.dim * self.mlp_ratio)))

    def call(self, x, attention_mask=None):
        """attention_mask: the shifted-window mask for this map's size, if the caller already
        has it (a shifted block computes it otherwise; an unshifted one ignores it)."""
        shortcut = x
        x = attend_shifted_windows(self.norm1(x), self.attn, self.window_size, self.shift_size,
                                   attention_mask, swin_attention_mask)
        x = shortcut + x
        return x + self.fc2(ops.gelu(self.fc1(self.norm2(x)), approximate=False))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "window_size": self.window_size,
            "shift_size": self.shift_size,
            "mlp_ratio": self.mlp_ratio,
        }


@saving.register_keras_serializable(package="keras_pbasr")
class ResidualSwinTransformerBlock(layers.Layer):
    """SwinIR's RSTB with patch size 1: x + conv3x3(Swin blocks(x)), windows shifted by
    window_size/2 on odd blocks. Official keys: residual_group.blocks.{j}.*, conv.

    Example:
    >>> import numpy as np
    >>> rstb = ResidualSwinTransformerBlock(dim=16, depth=2, num_heads=2, window_size=4)
    >>> rstb(np.zeros((1, 8, 8, 16), "float32")).shape
    (1, 8, 8, 16)
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float = 4.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim = dim
        self.depth = depth
        self.num_heads = num_heads
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        self.blocks = [
            SwinTransformerBlock(
                dim,
                num_heads,
                window_size,
                shift_size=0 if j % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                name=f"blocks_{j}",
            )
            for j in range(depth)
        ]
        self.conv = layers.Conv2D(dim, 3, padding="same", name="conv")

    def build(self, input_shape):
        shape = (None, None, None, self.dim)
        for block in self.blocks:
            block.build(shape)
        self.conv.build(shape)

    def call(self, x):
        shortcut = x
        # The shifted blocks share one mask (same map size and shift).
        _, height, width, _ = ops.shape(x)
        shifted = [block for block in self.blocks if block.shift_size]
        attention_mask = (
            swin_attention_mask(height, width, shifted[0].window_size, shifted[0].shift_size)
            if shifted else None
        )
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask)
        return self.conv(x) + shortcut

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "window_size": self.window_size,
            "mlp_ratio": self.mlp_ratio,
        }
