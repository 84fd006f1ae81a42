"""VIF, the wavelet-domain (steerable pyramid, GSM) version pyiqa calls 'vif', by region.

Follows pyiqa's port of Sheikh & Bovik's vifvec: sp5 steerable pyramid with 4 levels and 6
orientations, M = 3 blocks, sigma_n^2 = 0.4, subbands 4, 7, ..., 25 of the reversed pyramid.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from keras_pbasr.metrics._sp5_filters import sp5_filters
from keras_pbasr.metrics.color import luma_255
from keras_pbasr.metrics.functional import computes_in_float64, filter2d, mean_pool, pad2d
from keras_pbasr.metrics.regions import nan_if_empty, prepare_pair

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


def corr_dn(x, filt: np.ndarray, step: int = 1):
    """Correlation with reflect padding (same size), then subsampling by `step`."""
    p = (filt.shape[0] - 1) // 2
    x = pad2d(x, p, p, p, p, mode="reflect")
    return filter2d(x, filt, stride=step)


def steerable_pyramid(x, bands: set[tuple[int, int]]) -> dict[tuple[int, int], object]:
    """The requested (level, orientation) bands of the sp5 steerable pyramid (pyiqa's
    SteerablePyramidSpace(height=4, order=5)); other bands are not computed."""
    filters = sp5_filters()
    lo = corr_dn(x, filters["lo0filt"])
    size = int(math.isqrt(filters["bfilts"].shape[0]))
    out = {}
    for level in range(LEVELS):
        for b in range(ORIENTATIONS):
            if (level, b) in bands:
                band_filter = filters["bfilts"][:, b].reshape(size, size).T
                out[(level, b)] = corr_dn(lo, band_filter)
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
    """Gain g and additive noise variance vv of the distortion channel per block."""
    n = float(winsize * winsize)
    mean_x = _window_sums(ref_band, winsize) / n
    mean_y = _window_sums(dist_band, winsize) / n
    cov_xy = _window_sums(ref_band * dist_band, winsize) - n * mean_x * mean_y
    ss_x = ops.relu(_window_sums(ref_band * ref_band, winsize) - n * mean_x * mean_x)
    ss_y = ops.relu(_window_sums(dist_band * dist_band, winsize) - n * mean_y * mean_y)
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


def reference_gsm(ref_band):
    """Per-block GSM multiplier s^2 and the eigenvalues of the 9x9 neighbourhood covariance."""
    m = BLOCK
    n, h, w, _ = ref_band.shape
    y = ref_band[..., 0]
    shifted = [
        ops.reshape(y[:, k : h - (m - k) + 1, j : w - (m - j) + 1], (n, -1))
        for j in range(m)
        for k in range(m)
    ]
    temp = ops.stack(shifted, axis=2)  # (N, L, 9)
    centred = temp - ops.mean(temp, axis=1, keepdims=True)
    cu = ops.matmul(ops.transpose(centred, (0, 2, 1)), centred) / temp.shape[1]
    eigvals, eigvecs = ops.eigh(cu)
    # pinv(cu) from its eigen-decomposition (cu is symmetric), with torch.pinverse's cutoff.
    cutoff = 1e-15 * ops.max(ops.abs(eigvals), axis=1, keepdims=True)
    inv = ops.where(ops.abs(eigvals) > cutoff, 1.0 / ops.where(eigvals == 0, 1.0, eigvals), 0.0)
    pinv = ops.matmul(eigvecs * inv[:, None, :], ops.transpose(eigvecs, (0, 2, 1)))
    blocks = [
        ops.reshape(y[:, k : h + 1 : m, j : w + 1 : m], (n, -1)) for j in range(m) for k in range(m)
    ]
    blocks = ops.stack(blocks, axis=1)  # (N, 9, B)
    ss = ops.sum(ops.matmul(pinv, blocks) * blocks, axis=1) / (m * m)
    ss = ops.reshape(ss, (n, h // m, w // m, 1))
    return ss, eigvals


def band_weight(weight, level: int):
    """Area-average a full-resolution weight map to a band that was downsampled `level`
    times by stride 2 (ceil sizes), padding odd sizes by edge replication."""
    w = weight
    for _ in range(level):
        ph, pw = w.shape[1] % 2, w.shape[2] % 2
        w = pad2d(w, 0, ph, 0, pw, mode="edge")
        w = mean_pool(w, 2)
    return w


@computes_in_float64
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
    bands = {_band_of_subband(sub) for sub in SUBBANDS}
    dist_pyr = steerable_pyramid(luma_255(sr, color_space), bands)
    ref_pyr = steerable_pyramid(luma_255(hr, color_space), bands)
    weight = ops.cast(weight, "float64")
    num = den = 0.0
    for sub in SUBBANDS:
        index = sub - 1
        winsize = int(2 ** math.ceil((index - 1) / 6) + 1)
        level, _ = _band_of_subband(sub)
        ref, dist = ref_pyr[_band_of_subband(sub)], dist_pyr[_band_of_subband(sub)]
        bh = ref.shape[1] // BLOCK * BLOCK
        bw = ref.shape[2] // BLOCK * BLOCK
        ref, dist = ref[:, :bh, :bw, :], dist[:, :bh, :bw, :]
        g, vv = distortion_channel(ref, dist, winsize)
        ss, eigvals = reference_gsm(ref)
        wb = band_weight(weight, level)[:, :bh, :bw, :]
        wb = mean_pool(wb, BLOCK)
        offset = math.ceil(((2 ** math.ceil((sub - 1) / 6) + 1) - 1) / 2 / BLOCK)
        crop = (slice(None), slice(offset, g.shape[1] - offset), slice(offset, g.shape[2] - offset))
        g, vv, ss, wb = g[crop], vv[crop], ss[crop], wb[crop]
        # All 9 eigenvalues at once, on the last axis.
        lam = eigvals[:, None, None, :]
        num = num + ops.sum(wb * ops.log2(1 + g * g * ss * lam / (vv + SIGMA_NSQ)),
                            axis=(1, 2, 3))
        den = den + ops.sum(wb * ops.log2(1 + ss * lam / SIGMA_NSQ), axis=(1, 2, 3))
    return nan_if_empty(num / (den + 1e-12), weight)
