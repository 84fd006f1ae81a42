"""VSI (visual saliency-induced index, pyiqa/piq port), optionally restricted to a region."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_pbasr.metrics.color import rgb_to_lab, rgb_to_lmn
from keras_pbasr.metrics.compilation import compiled_metric
from keras_pbasr.metrics.functional import gradient_magnitude, mean_pool, pad2d
from keras_pbasr.metrics.regions import nan_if_empty, prepare_pair
from keras_pbasr.metrics.resize import resize_bilinear

C1, C2, C3 = 1.27, 386.0, 130.0
ALPHA, BETA = 0.4, 0.02
OMEGA_0, SIGMA_F, SIGMA_D, SIGMA_C = 0.021, 1.34, 145.0, 0.001
SDSP_SIZE = 256
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # pyiqa's similarity_map uses the float32 eps
FLOAT64_EPS = float(np.finfo(np.float64).eps)
SCHARR_X = np.array([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 16.0


def _centred_grid(size: int) -> np.ndarray:
    if size % 2:
        return np.arange(-(size - 1) / 2, size / 2) / (size - 1)
    return np.arange(-size / 2, size / 2) / size


def log_gabor(size: int = SDSP_SIZE) -> np.ndarray:
    """Frequency response of SDSP's log-Gabor filter, in unshifted FFT order."""
    g = _centred_grid(size).astype("float32")  # torch.arange gives float32 in the reference
    xx, yy = np.meshgrid(g, g, indexing="ij")
    radius = np.sqrt(xx**2 + yy**2)
    r = np.fft.ifftshift(radius * (radius <= 0.5))
    r[0, 0] = 1
    with np.errstate(divide="ignore"):  # radius 0 outside the disc: log(0) -> weight 0
        lg = np.exp(-(np.log(r / OMEGA_0) ** 2) / (2 * SIGMA_F**2))
    lg[0, 0] = 0
    return lg.astype("float64")


def centre_prior(size: int = SDSP_SIZE) -> np.ndarray:
    """SDSP's location prior exp(-|coords|^2 / sigma_d^2) (coords as in pyiqa)."""
    g = _centred_grid(size) * size + 1
    xx, yy = np.meshgrid(g, g, indexing="ij")
    return np.exp(-(xx**2 + yy**2) / SIGMA_D**2)


def _min_max_normalise(x, eps: float):
    lo = ops.min(x, axis=(1, 2), keepdims=True)
    hi = ops.max(x, axis=(1, 2), keepdims=True)
    return (x - lo) / (hi - lo + eps)


def sdsp(rgb_255):
    """SDSP saliency map (N, H, W, 1) of RGB images in [0, 255] (float64)."""
    h, w = rgb_255.shape[1], rgb_255.shape[2]
    small = resize_bilinear(rgb_255, (SDSP_SIZE, SDSP_SIZE), align_corners=False)
    lab = rgb_to_lab(small / 255.0)
    planes = ops.transpose(lab, (0, 3, 1, 2))  # fft over the last two axes
    real, imag = ops.fft2((planes, ops.zeros_like(planes)))
    lg = ops.cast(ops.convert_to_tensor(log_gabor()), planes.dtype)
    filtered, _ = ops.ifft2((real * lg, imag * lg))
    s_f = ops.sqrt(ops.sum(filtered * filtered, axis=1) + FLOAT64_EPS)[..., None]
    s_d = ops.cast(ops.convert_to_tensor(centre_prior()[None, :, :, None]), lab.dtype)
    normalised = _min_max_normalise(lab, FLOAT64_EPS)
    chroma = ops.sum(normalised[..., 1:] ** 2, axis=-1, keepdims=True)
    s_c = 1 - ops.exp(-chroma / SIGMA_C**2)
    saliency = resize_bilinear(s_f * s_d * s_c, (h, w), align_corners=True)
    return _min_max_normalise(saliency, FLOAT64_EPS)


def similarity(a, b, constant: float):
    return (2.0 * a * b + constant) / (a * a + b * b + constant + FLOAT32_EPS)


def pool_like_vsi(x, k: int):
    """Replicate padding (k // 2 before, (k - 1) // 2 after) then k x k average pooling."""
    if k == 1:
        return x
    before, after = k // 2, (k - 1) // 2
    return mean_pool(pad2d(x, before, after, before, after, mode="edge"), k)


def vsi(sr, hr, weight=None, *, crop_border: int = 0):
    """VSI per image (higher is better) on RGB in [0, 1], float64.

    A region weight is pooled like the images and multiplies the saliency weighting of the
    final pooling. The saliency maps themselves depend on the whole image (resize to 256 and
    min-max normalisation), so VSI is not local: changes outside the region can move it.
    Returns (N,).
    """
    sr, hr, weight = prepare_pair(sr, hr, weight, crop_border, "VSI")
    return _vsi(sr, hr, weight)


@compiled_metric()
def _vsi(sr, hr, weight):
    n = sr.shape[0]
    # SR and HR as one batch (every step below is per image).
    both = ops.cast(ops.concatenate([sr, hr], axis=0), "float64") * 255.0
    saliency = sdsp(both)
    k = max(1, round(min(saliency.shape[1], saliency.shape[2]) / 256))
    pooled = pool_like_vsi(ops.concatenate([saliency, rgb_to_lmn(both)], axis=-1), k)
    vs_x, vs_y = pooled[:n, ..., :1], pooled[n:, ..., :1]
    x_lmn, y_lmn = pooled[:n, ..., 1:], pooled[n:, ..., 1:]
    w = pool_like_vsi(ops.cast(weight, "float64"), k)
    s_vs = similarity(vs_x, vs_y, C1)
    gradients = gradient_magnitude(pooled[..., 1:2], SCHARR_X, FLOAT64_EPS)
    s_gm = similarity(gradients[:n], gradients[n:], C2)
    s_c = similarity(x_lmn[..., 1:2], y_lmn[..., 1:2], C3) * similarity(
        x_lmn[..., 2:], y_lmn[..., 2:], C3
    )
    # Real part of the complex power s_c ** beta (s_c may be negative).
    angle = ops.arctan2(ops.zeros_like(s_c), s_c)
    s_c_pow = ops.power(ops.abs(s_c), BETA) * ops.cos(angle * BETA)
    s = s_vs * ops.power(s_gm, ALPHA) * s_c_pow
    vs_max = ops.maximum(vs_x, vs_y) * w
    value = (ops.sum(s * vs_max, axis=(1, 2, 3)) + FLOAT64_EPS) / (
        ops.sum(vs_max, axis=(1, 2, 3)) + FLOAT64_EPS
    )
    return nan_if_empty(value, w)
