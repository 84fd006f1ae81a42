"""VIF, the wavelet-domain (steerable pyramid, GSM) version pyiqa calls 'vif', by region.

Follows pyiqa's port of Sheikh & Bovik's vifvec: sp5 steerable pyramid with 4 levels and 6
orientations, M = 3 blocks, sigma_n^2 = 0.4, subbands 4, 7, ..., 25 of the reversed pyramid.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources

import numpy as np
from keras import ops

from keras_pbasr.metrics.color import luma_255
from keras_pbasr.metrics.compilation import compiled_metric
from keras_pbasr.metrics.functional import filter2d, filter_bank2d, mean_pool, pad2d
from keras_pbasr.metrics.regions import nan_if_empty, prepare_pair

# The order-5 steerable pyramid filters (sp5Filters of Simoncelli's matlabPyrTools), as data.
SP5_FILTERS_FILE = "sp5_filters.json"


@functools.lru_cache(maxsize=1)
def _sp5_filters_json() -> str:
    return resources.files("keras_pbasr.metrics").joinpath(SP5_FILTERS_FILE).read_text()


def sp5_filters() -> dict[str, np.ndarray]:
    """hi0filt (9x9), lo0filt (5x5), lofilt (9x9, times 2) and bfilts (49, 6): column b is
    the 7x7 band filter of orientation b, flattened in MATLAB (column-major) order.

    Example:
    >>> sp5_filters()["bfilts"].shape
    (49, 6)
    """
    return {name: np.asarray(values, np.float64)
            for name, values in json.loads(_sp5_filters_json()).items()}

LEVELS = 4
ORIENTATIONS = 6
BLOCK = 3  # M: GSM neighbourhoods are BLOCK x BLOCK
SUBBANDS = (4, 7, 10, 13, 16, 19, 22, 25)
SIGMA_NSQ = 0.4
TOL = 1e-12


def _band_of_subband(sub: int) -> tuple[int, int]:
    """(level, orientation) of 1-based subband `sub` of the reversed pyramid
    [lowpass, level-3 bands, ..., level-0 bands, hi0] that vifvec indexes."""
    original = LEVELS * ORIENTATIONS + 2 - sub  # index in [hi0, level 0 bands, ..., lowpass]
    return (original - 1) // ORIENTATIONS, (original - 1) % ORIENTATIONS


def _window_and_offset(sub: int) -> tuple[int, int]:
    """vifvec's GSM window size and border offset (in blocks) of 1-based subband `sub`."""
    winsize = int(2 ** math.ceil((sub - 2) / 6) + 1)
    offset = math.ceil(((2 ** math.ceil((sub - 1) / 6) + 1) - 1) / 2 / BLOCK)
    return winsize, offset


def corr_dn(x, filters: np.ndarray, step: int = 1):
    """Correlation with reflect padding (same size), then subsampling by `step`, of
    single-channel x (N, H, W, 1) with one (k, k) filter or a bank (k, k, F) -> F channels."""
    p = (filters.shape[0] - 1) // 2
    x = pad2d(x, p, p, p, p, mode="reflect")
    if filters.ndim == 2:
        return filter2d(x, filters, stride=step)
    return filter_bank2d(x, filters, stride=step)


def steerable_pyramid(x, bands: set[tuple[int, int]]) -> dict[int, object]:
    """The requested (level, orientation) bands of the sp5 steerable pyramid (pyiqa's
    SteerablePyramidSpace(height=4, order=5)) of x (N, H, W, 1), as {level: (N, h, w, B)}
    with the B requested orientations of that level in increasing order; other bands are
    not computed."""
    filters = sp5_filters()
    lo = corr_dn(x, filters["lo0filt"])
    size = int(math.isqrt(filters["bfilts"].shape[0]))
    out = {}
    for level in range(max(lvl for lvl, _ in bands) + 1):
        orientations = sorted(b for lvl, b in bands if lvl == level)
        if orientations:
            bank = np.stack([filters["bfilts"][:, b].reshape(size, size).T
                             for b in orientations], axis=-1)
            out[level] = corr_dn(lo, bank)  # one convolution for all orientations
        if level < max(lvl for lvl, _ in bands):
            lo = corr_dn(lo, filters["lofilt"], step=2)
    return out


def vif_min_size() -> int:
    """Smallest side for which the coarsest band still has one GSM block after the offset."""
    # level-3 bands are ceil(n / 8) wide and need reflect padding 4 at the previous level,
    # 3x3 blocks and an offset of one block on each side: 3 blocks of 3 -> 9 px -> n >= 65.
    return 65


def _window_sums(x, winsize: int):
    """pyiqa's corrDn_win with a box window: reflect-padded box sums at the block centres
    (rows and columns 1, 4, 7, ...), computed as two strided 1-D sums."""
    p = (winsize - 1) // 2
    h, w = x.shape[1], x.shape[2]
    start = BLOCK // 2
    rows = len(range(start, h - math.ceil(BLOCK / 2) + 1, BLOCK))
    cols = len(range(start, w - math.ceil(BLOCK / 2) + 1, BLOCK))
    padded = pad2d(x, p, p, p, p, mode="reflect")[:, start:, start:, :]
    sums = filter2d(padded, np.ones((winsize, 1)), stride=(BLOCK, 1))
    sums = filter2d(sums, np.ones((1, winsize)), stride=(1, BLOCK))
    return sums[:, :rows, :cols, :]


def distortion_channel(ref_band, dist_band, winsize: int):
    """Gain g and additive noise variance vv of the distortion channel per block and channel."""
    n = float(winsize * winsize)
    c = ref_band.shape[-1]
    # The five box sums in one filtering call (channels are filtered independently).
    moments = ops.concatenate([ref_band, dist_band, ref_band * dist_band, ref_band * ref_band,
                               dist_band * dist_band], axis=-1)
    sums = _window_sums(moments, winsize)
    sum_x, sum_y, sum_xy, sum_xx, sum_yy = (sums[..., i * c : (i + 1) * c] for i in range(5))
    mean_x, mean_y = sum_x / n, sum_y / n
    cov_xy = sum_xy - n * mean_x * mean_y
    ss_x = ops.relu(sum_xx - n * mean_x * mean_x)
    ss_y = ops.relu(sum_yy - n * mean_y * mean_y)
    g = cov_xy / (ss_x + TOL)
    vv = (ss_y - g * cov_xy) / n
    flat_ref = ss_x < TOL
    g = ops.where(flat_ref, 0.0, g)
    vv = ops.where(flat_ref, ss_y, vv)
    flat_dist = ss_y < TOL
    g = ops.where(flat_dist, 0.0, g)
    vv = ops.where(flat_dist, 0.0, vv)
    vv = ops.where(g < 0, ss_y, vv)
    g = ops.relu(g)
    vv = ops.where(vv < TOL, TOL, vv)
    return g, vv


def _neighbourhood_order() -> np.ndarray:
    """(3, 3, 9) one-hot kernels: channel j*3 + k picks the pixel at row k, column j of a 3x3
    neighbourhood (vifvec's column-major order)."""
    m = BLOCK
    picks = np.zeros((m, m, m * m))
    for j in range(m):
        for k in range(m):
            picks[k, j, j * m + k] = 1.0
    return picks


def reference_gsm(ref_band):
    """Per-block GSM multiplier s^2 (N, h/3, w/3, C) and the eigenvalues (N, C, 9) of the 9x9
    neighbourhood covariance of every channel (band) of ref_band (N, h, w, C); h and w are
    multiples of 3."""
    m = BLOCK
    n, h, w, c = ref_band.shape
    y = ops.reshape(ops.transpose(ref_band, (0, 3, 1, 2)), (n * c, h, w, 1))  # bands -> batch
    # All 3x3 neighbourhoods as 9 channels: a convolution with one-hot kernels (exact), which
    # compiles far faster under XLA than stacking 9 shifted slices.
    temp = ops.reshape(filter_bank2d(y, _neighbourhood_order()), (n * c, -1, m * m))
    centred = temp - ops.mean(temp, axis=1, keepdims=True)
    cu = ops.matmul(ops.transpose(centred, (0, 2, 1)), centred) / temp.shape[1]
    eigvals, eigvecs = ops.eigh(cu)
    # pinv(cu) from its eigen-decomposition (cu is symmetric), with torch.pinverse's cutoff.
    cutoff = 1e-15 * ops.max(ops.abs(eigvals), axis=1, keepdims=True)
    inv = ops.where(ops.abs(eigvals) > cutoff, 1.0 / ops.where(eigvals == 0, 1.0, eigvals), 0.0)
    pinv = ops.matmul(eigvecs * inv[:, None, :], ops.transpose(eigvecs, (0, 2, 1)))
    # The non-overlapping 3x3 blocks as (N*C, 9, B), same neighbourhood order.
    blocks = ops.reshape(y, (n * c, h // m, m, w // m, m))
    blocks = ops.reshape(ops.transpose(blocks, (0, 4, 2, 1, 3)), (n * c, m * m, -1))
    ss = ops.sum(ops.matmul(pinv, blocks) * blocks, axis=1) / (m * m)
    ss = ops.transpose(ops.reshape(ss, (n, c, h // m, w // m)), (0, 2, 3, 1))
    return ss, ops.reshape(eigvals, (n, c, m * m))


def band_weights(weight, levels: int) -> list:
    """The full-resolution weight map area-averaged to each pyramid level 0 .. levels - 1
    (level l was downsampled l times by stride 2, ceil sizes; odd sizes are padded by edge
    replication). Each level is pooled from the previous one."""
    weights = [weight]
    for _ in range(levels - 1):
        w = weights[-1]
        ph, pw = w.shape[1] % 2, w.shape[2] % 2
        weights.append(mean_pool(pad2d(w, 0, ph, 0, pw, mode="edge"), 2))
    return weights


def vif(sr, hr, weight=None, *, crop_border: int = 0, color_space: str = "yiq"):
    """VIF per image (higher is better), on luma*255 rounded, in float64.

    With a region weight, each GSM block's information terms are weighted by the weight
    area-averaged to that band and block. Returns (N,).
    """
    sr, hr, weight = prepare_pair(sr, hr, weight, crop_border, "VIF")
    h, w = sr.shape[1], sr.shape[2]
    if min(h, w) < vif_min_size():
        raise ValueError(f"VIF needs images of at least {vif_min_size()}x{vif_min_size()} px "
                         f"(4 pyramid levels and 3x3 blocks), got {h}x{w}")
    return _vif(sr, hr, weight, color_space=color_space)


@compiled_metric(static=("color_space",))
def _vif(sr, hr, weight, *, color_space: str):
    n = sr.shape[0]
    bands = {_band_of_subband(sub) for sub in SUBBANDS}
    # Reference and distorted images through the pyramid together (one batch).
    pyramid = steerable_pyramid(
        ops.concatenate([luma_255(hr, color_space), luma_255(sr, color_space)], axis=0), bands
    )
    weight = ops.cast(weight, "float64")
    weight_at_level = band_weights(weight, max(pyramid) + 1)
    num = den = 0.0
    for level, both in pyramid.items():
        # The subbands of one level share their size, window size and offset: vifvec's
        # per-subband loop becomes one pass over the level's orientations (channels).
        ((winsize, offset),) = {_window_and_offset(s) for s in SUBBANDS
                                if _band_of_subband(s)[0] == level}
        bh = both.shape[1] // BLOCK * BLOCK
        bw = both.shape[2] // BLOCK * BLOCK
        ref, dist = both[:n, :bh, :bw, :], both[n:, :bh, :bw, :]
        g, vv = distortion_channel(ref, dist, winsize)
        ss, eigvals = reference_gsm(ref)
        wb = mean_pool(weight_at_level[level][:, :bh, :bw, :], BLOCK)
        crop = (slice(None), slice(offset, g.shape[1] - offset), slice(offset, g.shape[2] - offset))
        g, vv, ss, wb = g[crop], vv[crop], ss[crop], wb[crop]
        # Every band's 9 eigenvalues at once, on a last axis.
        lam = eigvals[:, None, None, :, :]
        g, vv, ss, wb = g[..., None], vv[..., None], ss[..., None], wb[..., None]
        num = num + ops.sum(wb * ops.log2(1 + g * g * ss * lam / (vv + SIGMA_NSQ)),
                            axis=(1, 2, 3, 4))
        den = den + ops.sum(wb * ops.log2(1 + ss * lam / SIGMA_NSQ), axis=(1, 2, 3, 4))
    return nan_if_empty(num / (den + 1e-12), weight)
