"""DISTS (Ding et al. 2020) as a Keras model, following the reference DISTS_pytorch / pyiqa.

The image is ImageNet-normalised and fed to VGG16 with its max-pools replaced by L2 pooling;
the stages are [x (the raw [0, 1] input), relu1_2, relu2_2, relu3_3, relu4_3, relu5_3]. For
every channel of every stage, S1 compares the spatial means and S2 the (co)variances
(c1 = c2 = 1e-6); alpha and beta (learned, one per channel, normalised by their total sum)
weight them, and score = 1 - sum(alpha*S1 + beta*S2).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_pbasr.models.feature_nets.feature_extractor import FeatureExtractor
from keras_pbasr.models.feature_nets.pooling import area_resize, weighted_spatial_mean
from keras_pbasr.weights.store import load_weights_arrays, require_cached

DISTS_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DISTS_C1 = 1e-6
DISTS_C2 = 1e-6


def imagenet_normalize(images):
    mean = ops.convert_to_tensor(IMAGENET_MEAN, "float32")
    std = ops.convert_to_tensor(IMAGENET_STD, "float32")
    return (ops.cast(images, "float32") - mean) / std


def dists_stage_terms(fx, fy, alpha, beta, weight=None):
    """One stage's (sum_c alpha_c*S1_c, sum_c beta_c*S2_c), each (N,). `weight` (N, H, W, 1)
    at input resolution turns the spatial means into area-resized weighted means."""
    if weight is not None:
        # Resized to this stage once; the five weighted means below use it as it is.
        weight = area_resize(weight, int(fx.shape[1]), int(fx.shape[2]))
    mean_x = weighted_spatial_mean(fx, weight)
    mean_y = weighted_spatial_mean(fy, weight)
    s1 = (2 * mean_x * mean_y + DISTS_C1) / (mean_x**2 + mean_y**2 + DISTS_C1)
    centred_x = fx - mean_x[:, None, None, :]
    centred_y = fy - mean_y[:, None, None, :]
    var_x = weighted_spatial_mean(centred_x**2, weight)
    var_y = weighted_spatial_mean(centred_y**2, weight)
    cov = weighted_spatial_mean(fx * fy, weight) - mean_x * mean_y
    s2 = (2 * cov + DISTS_C2) / (var_x + var_y + DISTS_C2)
    return ops.sum(alpha * s1, axis=-1), ops.sum(beta * s2, axis=-1)


@keras.saving.register_keras_serializable(package="keras_pbasr")
class DISTS(keras.Model):
    """DISTS between image batches: `dists(x, y)` -> (N,) scores (lower is more similar).

    Inputs are NHWC RGB in [0, 1]. `layer_terms(x, y, weight=None)` returns, per stage
    [x, relu1_2, ..., relu5_3], the pair (alpha term, beta term), each (N,); the score is
    1 - their total. `weight` (N, H, W, 1) at input resolution is area-averaged to each
    stage and makes every spatial mean, variance and covariance a weighted one.

    Args:
        weights: "pretrained" loads the cached VGG16 features and DISTS alpha/beta (a
            MissingWeightsError names `pbasr weights fetch vgg16 dists` when absent); None
            leaves zero features and alpha = beta = 0.1, for callers that set weights
            themselves (tests).

    Example:
    >>> import numpy as np
    >>> dists = DISTS()  # doctest: +SKIP
    >>> dists(np.zeros((1, 64, 64, 3)), np.ones((1, 64, 64, 3))).shape  # doctest: +SKIP
    (1,)
    """

    def __init__(self, weights: str | None = "pretrained", **kwargs):
        if weights not in ("pretrained", None):
            raise ValueError(f"weights must be 'pretrained' or None, got {weights!r}")
        trainable = kwargs.pop("trainable", False)
        super().__init__(**kwargs)
        pretrained = weights == "pretrained"
        if pretrained:
            require_cached(["vgg16", "dists"], "DISTS")
        self.pretrained = weights
        self.features = FeatureExtractor(
            "vgg16", DISTS_TAPS, pooling="l2", weights="imagenet" if pretrained else None,
            name="vgg16_l2pool",
        )
        total = sum(DISTS_CHANNELS)
        self.alpha = self.add_weight(
            shape=(total,), initializer=keras.initializers.Constant(0.1), trainable=False,
            name="alpha",
        )
        self.beta = self.add_weight(
            shape=(total,), initializer=keras.initializers.Constant(0.1), trainable=False,
            name="beta",
        )
        if pretrained:
            arrays = load_weights_arrays("dists")
            self.alpha.assign(arrays["alpha"])
            self.beta.assign(arrays["beta"])
        self.trainable = trainable  # the setter freezes the sub-layers created above
        self.built = True  # every variable exists now (needed by stateless_call)

    def layer_terms(self, x, y, weight=None) -> list[tuple]:
        x = ops.cast(x, "float32")
        y = ops.cast(y, "float32")
        # x and y through VGG16 as one batch: one pass instead of two.
        both = self.features(imagenet_normalize(ops.concatenate([x, y], axis=0)))
        halves = [ops.split(f, 2, axis=0) for f in both]
        stages_x = [x, *(fx for fx, _ in halves)]
        stages_y = [y, *(fy for _, fy in halves)]
        total = ops.sum(self.alpha) + ops.sum(self.beta)
        bounds = np.cumsum((0, *DISTS_CHANNELS))
        terms = []
        for k, (fx, fy) in enumerate(zip(stages_x, stages_y)):
            alpha = self.alpha[bounds[k]:bounds[k + 1]] / total
            beta = self.beta[bounds[k]:bounds[k + 1]] / total
            terms.append(dists_stage_terms(fx, fy, alpha, beta, weight))
        return terms

    def call(self, x, y, weight=None):
        terms = [a + b for a, b in self.layer_terms(x, y, weight)]
        return 1.0 - ops.sum(ops.stack(terms, axis=0), axis=0)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "weights": self.pretrained}
