"""NIQE (no-reference; lower is better), pyiqa's port of the official MATLAB code.

Luma*255 rounded, float64; 96x96 blocks (partial blocks dropped) at two scales (the second
a MATLAB bicubic x0.5 resize), 18 AGGD features per block and scale, and the Mahalanobis-like
distance between the image's MVG fit and the pristine model shipped with basicsr 1.4.2.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from keras import ops

from keras_pbasr.metrics.color import luma_255
from keras_pbasr.metrics.compilation import compiled_metric
from keras_pbasr.metrics.functional import filter2d, gaussian_window, pad2d
from keras_pbasr.metrics.regions import crop_border as crop
from keras_pbasr.metrics.resize import imresize_matlab
from keras_pbasr.weights.niqe_params import load_niqe_params

BLOCK_SIZE = 96
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@functools.lru_cache(maxsize=1)
def _gamma_tables() -> dict[str, np.ndarray]:
    """Grid of AGGD shape values and the log-gamma terms the estimator needs at each."""
    gam = np.arange(0.2, 10 + 0.001, 0.001).astype("float32").astype("float64")
    lgamma = np.vectorize(math.lgamma)
    lg1, lg2, lg3 = lgamma(1.0 / gam), lgamma(2.0 / gam), lgamma(3.0 / gam)
    return {
        "gam": gam,
        "r_gam": np.exp(2 * lg2 - (lg1 + lg3)),
        "beta_factor": np.sqrt(np.exp(lg1 - lg3)),
        "mean_factor": np.exp(lg2 - lg1),
    }


def _table(name: str, dtype):
    return ops.cast(ops.convert_to_tensor(_gamma_tables()[name]), dtype)


def aggd_params(block):
    """AGGD shape alpha, left/right scales beta_l, beta_r and the mean factor of blocks
    (B, h, w) by moment matching on the tabulated grid. NaN when a side is empty."""
    left = ops.cast(block < 0, block.dtype)
    right = ops.cast(block > 0, block.dtype)
    sq = block * block
    left_std = ops.sqrt(ops.sum(sq * left, axis=(1, 2)) / ops.sum(left, axis=(1, 2)))
    right_std = ops.sqrt(ops.sum(sq * right, axis=(1, 2)) / ops.sum(right, axis=(1, 2)))
    gammahat = left_std / right_std
    rhat = ops.mean(ops.abs(block), axis=(1, 2)) ** 2 / ops.mean(sq, axis=(1, 2))
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    distance = ops.abs(_table("r_gam", block.dtype)[None, :] - rhatnorm[:, None])
    index = ops.argmin(ops.where(ops.isnan(distance), np.inf, distance), axis=1)
    alpha = ops.take(_table("gam", block.dtype), index)
    factor = ops.take(_table("beta_factor", block.dtype), index)
    mean_factor = ops.take(_table("mean_factor", block.dtype), index)
    # A NaN ratio (empty side) has no match in the reference either: keep it NaN.
    alpha = ops.where(ops.isnan(rhatnorm), np.nan, alpha)
    return alpha, left_std * factor, right_std * factor, mean_factor


def block_features(blocks):
    """The 18 NIQE features of blocks (B, h, w) -> (B, 18)."""
    alpha, beta_l, beta_r, _ = aggd_params(blocks)
    feats = [alpha, (beta_l + beta_r) / 2]
    for shift in SHIFTS:
        shifted = ops.roll(ops.roll(blocks, shift[0], axis=1), shift[1], axis=2)
        alpha, beta_l, beta_r, mean_factor = aggd_params(blocks * shifted)
        feats += [alpha, (beta_r - beta_l) * mean_factor, beta_l, beta_r]
    return ops.stack(feats, axis=1)


def mscn(img, window: np.ndarray):
    """Mean-subtracted contrast-normalised coefficients (replicate padding, C = 1)."""
    p = window.shape[0] // 2
    # The local mean and second moment in one filtering call (channels filtered independently).
    moments = filter2d(pad2d(ops.concatenate([img, img * img], axis=-1), p, p, p, p, mode="edge"),
                       window)
    mu, second = moments[..., :1], moments[..., 1:]
    sigma = ops.sqrt(ops.abs(second - mu * mu) + np.finfo(np.float64).eps)
    return (img - mu) / (sigma + 1.0)


def _blocks(x, size: int):
    n, h, w, _ = x.shape
    x = ops.reshape(x[..., 0], (n, h // size, size, w // size, size))
    x = ops.transpose(x, (0, 1, 3, 2, 4))
    return ops.reshape(x, (n, -1, size, size))


def _nan_mvg(features):
    """Column means ignoring NaN entries and the covariance of the rows without NaN."""
    finite = ops.logical_not(ops.isnan(features))
    zeroed = ops.where(finite, features, 0.0)
    counts = ops.sum(ops.cast(finite, features.dtype), axis=1)
    mean = ops.sum(zeroed, axis=1) / counts
    row_ok = ops.cast(ops.all(finite, axis=2, keepdims=True), features.dtype)
    n_ok = ops.sum(row_ok, axis=1, keepdims=True)
    row_mean = ops.sum(zeroed * row_ok, axis=1, keepdims=True) / n_ok
    centred = (zeroed - row_mean) * row_ok
    cov = ops.matmul(ops.transpose(centred, (0, 2, 1)), centred) / (n_ok - 1)
    return mean, cov


def niqe(img, *, crop_border: int = 0, color_space: str = "yiq", params=None):
    """NIQE per image of (N, H, W, 3) RGB in [0, 1]; images need at least 96x96 px.

    params: {'mu', 'cov'} of the pristine model; default: the cached basicsr 1.4.2
    parameters (raises MissingWeightsError naming the fetch command when absent).
    Returns (N,) float64.
    """
    if params is None:
        params = load_niqe_params()
    img = ops.cast(ops.convert_to_tensor(img), "float32")
    img = crop(img, int(crop_border))
    h, w = img.shape[1], img.shape[2]
    if min(h, w) < BLOCK_SIZE:
        raise ValueError(f"NIQE needs images of at least {BLOCK_SIZE}x{BLOCK_SIZE} px, "
                         f"got {h}x{w}")
    return _niqe(img, np.asarray(params["mu"], "float64"), np.asarray(params["cov"], "float64"),
                 color_space=color_space)


@compiled_metric(static=("color_space",))
def _niqe(img, mu_pris, cov_pris, *, color_space: str):
    h, w = img.shape[1], img.shape[2]
    y = luma_255(img, color_space)
    y = y[:, : h // BLOCK_SIZE * BLOCK_SIZE, : w // BLOCK_SIZE * BLOCK_SIZE, :]
    window = gaussian_window(7, 7.0 / 6.0)
    features = []
    for scale in (1, 2):
        blocks = _blocks(mscn(y, window), BLOCK_SIZE // scale)
        n, b = blocks.shape[0], blocks.shape[1]
        flat = ops.reshape(blocks, (n * b, blocks.shape[2], blocks.shape[3]))
        features.append(ops.reshape(block_features(flat), (n, b, -1)))
        if scale == 1:
            # pyiqa's imresize runs in float32 whatever the input dtype; doing the same
            # matters because the AGGD fit snaps to a grid and amplifies small differences.
            small = imresize_matlab(ops.cast(y / 255.0, "float32"), 0.5)
            y = ops.cast(small, "float64") * 255.0
    features = ops.concatenate(features, axis=-1)
    mean, cov = _nan_mvg(features)
    mu_pris = ops.cast(mu_pris, "float64")
    inv = ops.pinv((ops.cast(cov_pris, "float64")[None] + cov) / 2)
    diff = (mu_pris[None] - mean)[:, None, :]
    quality = ops.matmul(ops.matmul(diff, inv), ops.transpose(diff, (0, 2, 1)))
    return ops.sqrt(ops.reshape(quality, (-1,)))
