"""Building blocks of SRFormer: permuted self-attention (PSA), the ConvFFN, the PSA block and
the shifted-window attention mask that the shifted blocks share.

Feature maps stay channels_last (N, H, W, C) between blocks; inside a block they are cut into
non-overlapping windows of `window_size` x `window_size` tokens. Every shape that depends on
the image size is read with `keras.ops.shape` at call time, so H and W stay dynamic on every
backend (the model pads them to a multiple of the window first).
"""

from __future__ import annotations

import numpy as np
from keras import layers, ops, random, saving

from keras_pbasr.layers.windows import (
    SHIFTED_WINDOW_MASK_VALUE,
    WindowAttentionBase,
    attend_shifted_windows,
    relative_position_index,
    trunc_normal_002,
    window_region_labels,
)

# ----------------------------------------------------------------------------------------------
# Pure functions: the aligned relative position index and the shifted-window mask.
# ----------------------------------------------------------------------------------------------


def aligned_relative_position_index(window_size: int) -> np.ndarray:
    """(ws*ws, (ws/2)^2) index into the relative position bias table.

    Keys live on the permuted (ws/2 x ws/2) grid. A query at full-resolution window position
    (y, x) uses the relative position of its permuted cell (y // 2, x // 2) to each key cell,
    encoded as (dy + p - 1) * (2p - 1) + (dx + p - 1) with p = ws / 2.
    """
    permuted = window_size // 2
    permuted_index = relative_position_index(permuted)  # (p*p, p*p)

    y, x = np.meshgrid(np.arange(window_size), np.arange(window_size), indexing="ij")
    query_cell = (y // 2) * permuted + (x // 2)  # permuted cell of every full-res query
    return permuted_index[query_cell.reshape(-1)].astype("int32")


def shifted_window_attention_mask(height, width, window_size: int, shift_size: int):
    """(nW, ws*ws, (ws/2)^2) additive mask for shifted permuted self-attention on an (H, W)
    map: 0 where query and key come from the same image region, -100 elsewhere.

    Queries are labelled on the full-resolution grid (last `shift_size` rows/cols wrapped);
    keys on the half-resolution permuted grid, where the official code marks the last
    ceil(shift_size / 2) cells as wrapped (its `-shift_size // 2` slice). Replicated as is.
    """
    query_labels = window_region_labels(height, width, window_size, shift_size)
    key_labels = window_region_labels(
        height // 2, width // 2, window_size // 2, -(-shift_size // 2)
    )
    same_region = ops.equal(query_labels[:, :, None], key_labels[:, None, :])
    return ops.where(same_region, 0.0, SHIFTED_WINDOW_MASK_VALUE)


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------


@saving.register_keras_serializable(package="keras_pbasr")
class MeanShift(layers.Layer):
    """Adds `sign * rgb_mean` per channel (SRFormer subtracts the DIV2K mean before the body
    and adds it back after the reconstruction)."""

    def __init__(self, rgb_mean: tuple[float, ...], sign: float, **kwargs):
        super().__init__(**kwargs)
        self.rgb_mean = tuple(float(v) for v in rgb_mean)
        self.sign = float(sign)

    def call(self, x):
        return x + ops.cast(ops.convert_to_tensor(self.rgb_mean), x.dtype) * self.sign

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rgb_mean": list(self.rgb_mean), "sign": self.sign}


@saving.register_keras_serializable(package="keras_pbasr")
class PermutedSelfAttention(WindowAttentionBase):
    """Permuted self-attention (PSA) over windows of tokens (official name: PSA).

    Queries keep all `dim` channels at full window resolution (n = ws*ws tokens). Keys and
    values come from one `dim/2`-wide projection whose `dim/4` key (and value) channels of
    each 2x2 neighbourhood are stacked into one token of `dim` channels, so n queries attend
    to n/4 keys: attention cost drops 4x while every key still covers the whole window.

    Call on (num_windows*N, ws*ws, dim) with an optional additive `attention_mask` of shape
    (num_windows, ws*ws, ws*ws/4).

    Example:
    >>> import numpy as np
    >>> psa = PermutedSelfAttention(dim=24, num_heads=2, window_size=8)
    >>> psa(np.zeros((3, 64, 24), "float32")).shape
    (3, 64, 24)
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, **kwargs):
        if dim % 4 or dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by 4 and by num_heads {num_heads}")
        if window_size % 2:
            raise ValueError(f"window_size must be even (2x2 key folding), got {window_size}")
        super().__init__(dim, num_heads, window_size, bias_window_size=window_size // 2,
                         **kwargs)
        self.permuted_window_size = window_size // 2
        self.q = layers.Dense(dim, kernel_initializer=trunc_normal_002(), name="q")
        self.kv = layers.Dense(dim // 2, kernel_initializer=trunc_normal_002(), name="kv")
        self.proj = layers.Dense(dim, kernel_initializer=trunc_normal_002(), name="proj")
        self.position_index = aligned_relative_position_index(window_size).reshape(-1)

    def projections(self):
        return [self.q, self.kv, self.proj]

    def queries_keys_values(self, x):
        n = self.window_size * self.window_size
        p = self.permuted_window_size
        heads, head_dim, quarter = self.num_heads, self.head_dim, self.dim // 4

        q = ops.reshape(self.q(x), (-1, n, heads, head_dim))
        q = ops.transpose(q, (0, 2, 1, 3)) * ops.cast(self.scale, x.dtype)

        # Fold each 2x2 neighbourhood: (B, p, 2, p, 2, [k|v], dim/4) -> (B, p*p, [k|v], dim).
        kv = ops.reshape(self.kv(x), (-1, p, 2, p, 2, 2, quarter))
        kv = ops.transpose(kv, (0, 1, 3, 5, 2, 4, 6))
        kv = ops.reshape(kv, (-1, n // 4, 2, heads, head_dim))
        k = ops.transpose(kv[:, :, 0], (0, 2, 1, 3))  # (B, heads, n/4, head_dim)
        v = ops.transpose(kv[:, :, 1], (0, 2, 1, 3))
        return q, k, v


@saving.register_keras_serializable(package="keras_pbasr")
class ConvFFN(layers.Layer):
    """fc1 -> GELU -> x + GELU(depthwise 5x5 conv(x)) -> fc2, on (N, H, W, C) maps.

    Example:
    >>> import numpy as np
    >>> ConvFFN(dim=24, hidden_dim=48)(np.zeros((1, 8, 8, 24), "float32")).shape
    (1, 8, 8, 24)
    """

    def __init__(self, dim: int, hidden_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.fc1 = layers.Dense(hidden_dim, kernel_initializer=trunc_normal_002(), name="fc1")
        self.dwconv = layers.DepthwiseConv2D(5, padding="same", name="dwconv")
        self.fc2 = layers.Dense(dim, kernel_initializer=trunc_normal_002(), name="fc2")

    def build(self, input_shape):
        self.fc1.build((None, self.dim))
        self.dwconv.build((None, None, None, self.hidden_dim))
        self.fc2.build((None, self.hidden_dim))

    def call(self, x):
        x = ops.gelu(self.fc1(x), approximate=False)
        x = x + ops.gelu(self.dwconv(x), approximate=False)
        return self.fc2(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_dim": self.hidden_dim}


@saving.register_keras_serializable(package="keras_pbasr")
class ShiftedWindowAttentionMask(layers.Layer):
    """The additive attention mask of the shifted-window PSA blocks for the input's size.

    The mask depends only on the map's H and W, the window and the shift, which all shifted
    blocks of an SRFormer share: the model computes it once per forward pass with this layer
    and passes it to every shifted block instead of having each block rebuild it. Output:
    (nW, ws*ws, (ws/2)^2) float32, 0 or -100 (see `shifted_window_attention_mask`).

    Example:
    >>> import numpy as np
    >>> ShiftedWindowAttentionMask(8, 4)(np.zeros((1, 16, 24, 5), "float32")).shape
    (6, 64, 16)
    """

    def __init__(self, window_size: int, shift_size: int, **kwargs):
        super().__init__(**kwargs)
        self.window_size = window_size
        self.shift_size = shift_size

    def call(self, x):
        _, height, width, _ = ops.shape(x)
        return shifted_window_attention_mask(height, width, self.window_size, self.shift_size)

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        known = height is not None and width is not None
        num_windows = (height // self.window_size) * (width // self.window_size) if known else None
        return (num_windows, self.window_size**2, (self.window_size // 2) ** 2)

    def get_config(self):
        return {
            **super().get_config(),
            "window_size": self.window_size,
            "shift_size": self.shift_size,
        }


@saving.register_keras_serializable(package="keras_pbasr")
class PSABlock(layers.Layer):
    """One transformer block: x + PSA(norm1(x)) in (shifted) windows, then x + ConvFFN(norm2(x)).

    With `shift_size > 0` the map is rolled by -shift_size before windowing and back after,
    and attention is masked with `attention_mask` (from `ShiftedWindowAttentionMask`, which
    SRFormer computes once per forward pass for all its shifted blocks), or, when none is
    given, with a mask computed here for the map's size. Input H and W must be multiples of
    `window_size` (SRFormer pads the image to guarantee it).

    Example:
    >>> import numpy as np
    >>> block = PSABlock(dim=24, num_heads=2, window_size=8, shift_size=4, mlp_ratio=2.0)
    >>> block(np.zeros((1, 16, 24, 24), "float32")).shape
    (1, 16, 24, 24)
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int = 0,
        mlp_ratio: float = 2.0,
        drop_path_rate: float = 0.0,
        seed: int | None = None,
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
        self.drop_path_rate = drop_path_rate
        self.seed = seed
        # torch.nn.LayerNorm's eps (Keras defaults to 1e-3).
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1")
        self.attn = PermutedSelfAttention(dim, num_heads, window_size, name="attn")
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2")
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio), name="mlp")
        self.seed_generator = random.SeedGenerator(seed) if drop_path_rate > 0 else None

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.attn.build((None, self.window_size * self.window_size, self.dim))
        self.norm2.build(input_shape)
        self.mlp.build(input_shape)

    def call(self, x, attention_mask=None, training=None):
        shortcut = x
        x = attend_shifted_windows(self.norm1(x), self.attn, self.window_size, self.shift_size,
                                   attention_mask, shifted_window_attention_mask)
        x = shortcut + self._drop_path(x, training)
        return x + self._drop_path(self.mlp(self.norm2(x)), training)

    def _drop_path(self, x, training):
        """Stochastic depth: drops the whole residual branch per sample while training."""
        if not training or self.seed_generator is None:
            return x
        keep = 1.0 - self.drop_path_rate
        noise = random.uniform((ops.shape(x)[0], 1, 1, 1), seed=self.seed_generator)
        return x * ops.cast(ops.floor(keep + noise) / keep, x.dtype)

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
            "drop_path_rate": self.drop_path_rate,
            "seed": self.seed,
        }
