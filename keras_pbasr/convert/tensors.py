"""Pure numpy layout conversions from PyTorch tensors to Keras variables.

Keras stores conv kernels as (kh, kw, in, out), torch as (out, in, kh, kw); dense kernels
as (in, out), torch as (out, in). Pixel (un)shuffle orders sub-pixel channels differently:
torch puts sub-pixel (i, j) of channel c at c*r*r + i*r + j, Keras' depth_to_space /
space_to_depth at (i*r + j)*C + c. The permutations below reorder the conv channels that
feed a pixel shuffle or read a pixel unshuffle, so the Keras layers can keep Keras order.
"""

from __future__ import annotations

import numpy as np


def torch_conv_to_keras(weight: np.ndarray) -> np.ndarray:
    """Conv kernel (O, I, kh, kw) -> Conv2D kernel (kh, kw, I, O)."""
    _expect_ndim(weight, 4, "conv weight")
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))


def torch_depthwise_conv_to_keras(weight: np.ndarray, channel_multiplier: int = 1) -> np.ndarray:
    """Depthwise kernel (C*m, 1, kh, kw) (torch groups=C) -> DepthwiseConv2D (kh, kw, C, m).

    Both frameworks number the outputs of input channel c as c*m + k, so this is a
    reshape to (C, m, kh, kw) and a transpose.
    """
    _expect_ndim(weight, 4, "depthwise conv weight")
    out_channels, in_per_group, kh, kw = weight.shape
    if in_per_group != 1 or out_channels % channel_multiplier:
        raise ValueError(
            f"depthwise conv weight {weight.shape} does not fit channel_multiplier "
            f"{channel_multiplier} with one input channel per group"
        )
    grouped = weight.reshape(out_channels // channel_multiplier, channel_multiplier, kh, kw)
    return np.ascontiguousarray(np.transpose(grouped, (2, 3, 0, 1)))


def torch_linear_to_keras(weight: np.ndarray) -> np.ndarray:
    """Linear weight (out, in) -> Dense kernel (in, out)."""
    _expect_ndim(weight, 2, "linear weight")
    return np.ascontiguousarray(weight.T)


def pixel_shuffle_channel_permutation(channels: int, scale: int) -> np.ndarray:
    """Index array `p` with keras_channel k <- torch_channel p[k] for a (un)shuffle of
    `channels` image channels by `scale` (channels*scale*scale sub-pixel channels).

    Keras channel (i*r + j)*C + c holds what torch keeps at c*r*r + i*r + j.
    """
    r = int(scale)
    sub_pixel, channel = np.meshgrid(np.arange(r * r), np.arange(channels), indexing="ij")
    # Row-major over (sub_pixel, channel) is exactly the Keras order k = sub_pixel*C + c.
    return (channel * r * r + sub_pixel).reshape(-1)


def pixel_shuffle_out_channels(array: np.ndarray, channels: int, scale: int) -> np.ndarray:
    """Reorders the last axis of the Keras kernel (kh, kw, I, C*r*r) or bias (C*r*r,) of the
    conv that feeds a pixel shuffle, so Keras depth_to_space gives what torch's PixelShuffle
    gives."""
    perm = pixel_shuffle_channel_permutation(channels, scale)
    _expect_size(array.shape[-1], perm.size, "conv out-channels before pixel shuffle")
    return np.ascontiguousarray(array[..., perm])


def pixel_unshuffle_in_channels(kernel: np.ndarray, channels: int, scale: int) -> np.ndarray:
    """Reorders the in-channels of the Keras kernel (kh, kw, C*r*r, O) of the conv that reads
    Keras space_to_depth output, so it computes what torch computes after pixel_unshuffle."""
    _expect_ndim(kernel, 4, "conv kernel")
    perm = pixel_shuffle_channel_permutation(channels, scale)
    _expect_size(kernel.shape[2], perm.size, "conv in-channels after pixel unshuffle")
    return np.ascontiguousarray(kernel[:, :, perm, :])


def _expect_ndim(array: np.ndarray, ndim: int, what: str) -> None:
    if array.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {array.shape}")


def _expect_size(size: int, expected: int, what: str) -> None:
    if size != expected:
        raise ValueError(f"{what}: expected {expected} channels, got {size}")
