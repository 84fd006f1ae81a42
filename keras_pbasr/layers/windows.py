"""Window attention pieces shared by the Swin-style backbones (SRFormer's permuted
self-attention, FeMaSR's Swin blocks): window partitioning, the region labels behind the
shifted-window mask, the relative position index, the masked softmax attention inside
windows, and `WindowAttentionBase`, the layer both attentions subclass.

Shapes that depend on the image size are read with `keras.ops.shape` at call time, so H and W
stay dynamic on every backend.
"""

from __future__ import annotations

import numpy as np
from keras import initializers, layers, ops

# Value added to the logits of token pairs that the cyclic shift brought together from
# different image regions (the official codes' masked_fill value).
SHIFTED_WINDOW_MASK_VALUE = -100.0


def trunc_normal_002() -> initializers.Initializer:
    """The official codes initialise Linear weights and the bias tables with timm's
    trunc_normal_(std=.02), which truncates at +-2 absolute, i.e. 100 std: a plain normal."""
    return initializers.RandomNormal(stddev=0.02)


def window_partition(x, window_size: int):
    """(N, H, W, C) -> (N * H/ws * W/ws, ws*ws, C); tokens of a window in row-major order.

    H and W must be multiples of `window_size`.
    """
    batch, height, width, channels = ops.shape(x)
    x = ops.reshape(
        x,
        (batch, height // window_size, window_size, width // window_size, window_size, channels),
    )
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, window_size * window_size, channels))


def window_reverse(windows, window_size: int, batch, height, width):
    """Inverse of `window_partition`: (N * nW, ws*ws, C) -> (N, H, W, C)."""
    channels = ops.shape(windows)[-1]
    x = ops.reshape(
        windows,
        (batch, height // window_size, width // window_size, window_size, window_size, channels),
    )
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (batch, height, width, channels))


def attend_shifted_windows(x, attention, window_size: int, shift_size: int, attention_mask,
                           make_mask):
    """Swin's (shifted) window attention on a (B, H, W, C) map, back as a (B, H, W, C) map.

    A shifted block rolls the map by -shift_size, attends within windows under the mask
    (`attention_mask`, or `make_mask(height, width, window_size, shift_size)` when None) and
    rolls back; an unshifted block attends without a mask. `attention` maps
    (B * nW, ws * ws, C) windows to the same shape.
    """
    batch, height, width, _ = ops.shape(x)
    if shift_size:
        x = ops.roll(x, shift=(-shift_size, -shift_size), axis=(1, 2))
        if attention_mask is None:
            attention_mask = make_mask(height, width, window_size, shift_size)
    else:
        attention_mask = None
    windows = attention(window_partition(x, window_size), attention_mask=attention_mask)
    x = window_reverse(windows, window_size, batch, height, width)
    if shift_size:
        x = ops.roll(x, shift=(shift_size, shift_size), axis=(1, 2))
    return x


def _shift_region_labels(length, window_size: int, wrapped: int):
    """Per position along one axis of a cyclically shifted map: 0 before the last window,
    1 in the last window but not wrapped around, 2 in the `wrapped` positions that came from
    the other end of the image."""
    positions = ops.arange(length)
    in_last_window = ops.cast(positions >= length - window_size, "int32")
    wrapped_around = ops.cast(positions >= length - wrapped, "int32")
    return in_last_window + wrapped_around


def window_region_labels(height, width, window_size: int, wrapped: int):
    """(nW, ws*ws) region label of every token of every window of an (H, W) map whose last
    `wrapped` rows and columns came around from the other side (cyclic shift)."""
    rows = _shift_region_labels(height, window_size, wrapped)
    cols = _shift_region_labels(width, window_size, wrapped)
    labels = rows[:, None] * 3 + cols[None, :]
    labels = ops.reshape(labels, (1, height, width, 1))
    return ops.squeeze(window_partition(labels, window_size), axis=-1)


def attend_in_windows(queries, keys, values, bias_table, position_index, attention_mask=None):
    """Window attention with a relative position bias, heads merged back.

    queries (B*nW, heads, n, d), already scaled; keys and values (B*nW, heads, m, d);
    `bias_table[position_index]` gives each (query, key) pair's (heads,) bias; the additive
    (nW, n, m) mask of shifted windows is shared by every image of the batch and every head.
    Returns (B*nW, n, heads*d).
    """
    heads, n, head_dim = queries.shape[1:]
    m = keys.shape[2]
    logits = ops.matmul(queries, ops.transpose(keys, (0, 1, 3, 2)))  # (B*nW, heads, n, m)
    bias = ops.take(bias_table, position_index, axis=0)
    bias = ops.transpose(ops.reshape(bias, (n, m, heads)), (2, 0, 1))
    logits = logits + ops.cast(bias, logits.dtype)[None]
    if attention_mask is not None:
        num_windows = ops.shape(attention_mask)[0]
        logits = ops.reshape(logits, (-1, num_windows, heads, n, m))
        logits = logits + ops.cast(attention_mask, logits.dtype)[None, :, None]
        logits = ops.reshape(logits, (-1, heads, n, m))
    out = ops.matmul(ops.softmax(logits, axis=-1), values)
    return ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (-1, n, heads * head_dim))


def relative_position_index(window_size: int) -> np.ndarray:
    """(ws*ws, ws*ws) rows of Swin's relative position bias table:
    (dy + ws - 1) * (2ws - 1) + (dx + ws - 1) for every query / key pair of a window.

    Example:
    >>> relative_position_index(2)
    array([[4, 3, 1, 0],
           [5, 4, 2, 1],
           [7, 6, 4, 3],
           [8, 7, 5, 4]], dtype=int32)
    """
    rows, cols = np.meshgrid(np.arange(window_size), np.arange(window_size), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    delta_rows = rows[:, None] - rows[None, :] + window_size - 1
    delta_cols = cols[:, None] - cols[None, :] + window_size - 1
    return (delta_rows * (2 * window_size - 1) + delta_cols).astype("int32")


class WindowAttentionBase(layers.Layer):
    """Multi-head attention inside windows with a relative position bias, then `proj`.

    The shared part of FeMaSR's Swin `WindowAttention` and SRFormer's
    `PermutedSelfAttention`: settings, the (2b - 1)^2 x heads bias table (b =
    `bias_window_size`, the side of the key grid), the attention and the output projection.
    A subclass creates its input projections and `proj` (Dense layers, built here in the
    order `projections()` lists them), sets `position_index` (the bias table row of each
    (query, key) pair) and implements `queries_keys_values(x)`.

    Call on (num_windows*N, ws*ws, dim) with an optional additive `attention_mask` of shape
    (num_windows, queries, keys).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, bias_window_size: int,
                 **kwargs):
        super().__init__(**kwargs)
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.bias_window_size = bias_window_size
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5

    def projections(self) -> list[layers.Layer]:
        """The Dense layers on tokens of `dim` channels, in build order (`proj` last)."""
        raise NotImplementedError

    def queries_keys_values(self, x):
        """(queries scaled by `scale`, keys, values), each (B*nW, heads, tokens, head_dim)."""
        raise NotImplementedError

    def build(self, input_shape):
        for projection in self.projections():
            projection.build((None, self.dim))
        self.relative_position_bias_table = self.add_weight(
            shape=((2 * self.bias_window_size - 1) ** 2, self.num_heads),
            initializer=trunc_normal_002(),
            name="relative_position_bias_table",
        )

    def call(self, x, attention_mask=None):
        q, k, v = self.queries_keys_values(x)
        out = attend_in_windows(
            q, k, v, self.relative_position_bias_table, self.position_index, attention_mask
        )
        return self.proj(out)

    def compute_output_shape(self, input_shape, attention_mask_shape=None):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "window_size": self.window_size,
        }
