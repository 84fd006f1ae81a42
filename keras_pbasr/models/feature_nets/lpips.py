"""LPIPS v0.1 (Zhang et al. 2018) with AlexNet or VGG16 features, as a Keras model.

Conventions of the reference `lpips` package / pyiqa: RGB in [0, 1] is mapped to [-1, 1],
then shifted and scaled per channel; at each tap (AlexNet relu1..relu5, VGG16 relu1_2,
relu2_2, relu3_3, relu4_3, relu5_3) the channel vectors are unit-normalised (eps 1e-10),
their squared difference goes through a 1x1 linear head (no bias), is averaged over space,
and the layers are summed.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_pbasr.models.feature_nets.feature_extractor import FeatureExtractor
from keras_pbasr.models.feature_nets.pooling import weighted_spatial_mean
from keras_pbasr.weights.store import load_weights_arrays, require_cached

LPIPS_TAPS = {
    "alex": ("alexnet", ("relu1", "relu2", "relu3", "relu4", "relu5")),
    "vgg": ("vgg16", ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")),
}
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def lpips_scaling(images, normalize: bool = True):
    """RGB -> the input of LPIPS' feature network. normalize=True: images in [0, 1] are first
    mapped to [-1, 1] (lpips' `normalize=True`); False: used as given (lpips' default)."""
    shift = ops.convert_to_tensor(LPIPS_SHIFT, "float32")
    scale = ops.convert_to_tensor(LPIPS_SCALE, "float32")
    images = ops.cast(images, "float32")
    if normalize:
        images = images * 2.0 - 1.0
    return (images - shift) / scale


def unit_normalize(features, eps: float = 1e-10):
    """Divides each channel vector by its L2 norm (+ eps), as lpips.normalize_tensor."""
    norm = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))
    return features / (norm + eps)


@keras.saving.register_keras_serializable(package="keras_pbasr")
class LPIPS(keras.Model):
    """LPIPS v0.1 distance between image batches: `lpips(x, y)` -> (N,) scores.

    Inputs are NHWC RGB in [0, 1]. `layer_maps(x, y)` returns each layer's per-pixel
    distance map (N, h_l, w_l, 1) before the spatial mean (the score is the sum over layers
    of their means); `lpips(x, y, weight=w)` takes a region weight map (N, H, W, 1) at input
    resolution, area-averages it to each layer and uses weighted spatial means.

    Args:
        net: "alex" (AlexNet) or "vgg" (VGG16).
        weights: "pretrained" loads the cached ImageNet features and LPIPS v0.1 heads (a
            MissingWeightsError names `pbasr weights fetch ...` when absent); None leaves
            every weight zero, for callers that set weights themselves (tests).

    Example:
    >>> import numpy as np
    >>> lpips = LPIPS(net="alex")  # doctest: +SKIP
    >>> lpips(np.zeros((2, 64, 64, 3)), np.ones((2, 64, 64, 3))).shape  # doctest: +SKIP
    (2,)
    """

    def __init__(self, net: str = "alex", weights: str | None = "pretrained", **kwargs):
        if net not in LPIPS_TAPS:
            raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")
        if weights not in ("pretrained", None):
            raise ValueError(f"weights must be 'pretrained' or None, got {weights!r}")
        trainable = kwargs.pop("trainable", False)
        super().__init__(**kwargs)
        network, taps = LPIPS_TAPS[net]
        pretrained = weights == "pretrained"
        if pretrained:
            require_cached([network, f"lpips_{net}"], f"LPIPS(net={net!r})")
        heads = load_weights_arrays(f"lpips_{net}") if pretrained else None
        self.net = net
        self.pretrained = weights
        self.features = FeatureExtractor(
            network, taps, weights="imagenet" if pretrained else None, name=network
        )
        self.heads = []
        for i, tap in enumerate(self.features.outputs):
            head = keras.layers.Conv2D(
                1, 1, use_bias=False, kernel_initializer="zeros", name=f"lin{i}"
            )
            head.build((None, None, None, tap.shape[-1]))
            if heads is not None:
                head.set_weights([heads[f"lin{i}/kernel"]])
            self.heads.append(head)
        self.trainable = trainable  # the setter freezes the sub-layers created above
        self.built = True  # every variable exists now (needed by stateless_call)

    def layer_maps(self, x, y, normalize: bool = True) -> list:
        """Per-layer distance maps [(N, h_l, w_l, 1)], before the spatial mean.
        normalize=False skips the [0, 1] -> [-1, 1] mapping (inputs already in [-1, 1])."""
        # x and y through the network as one batch: one pass instead of two.
        both = self.features(lpips_scaling(ops.concatenate([x, y], axis=0), normalize))
        maps = []
        for head, features in zip(self.heads, both):
            fx, fy = ops.split(unit_normalize(features), 2, axis=0)
            maps.append(head(ops.square(fx - fy)))
        return maps

    def call(self, x, y, weight=None, normalize: bool = True):
        maps = self.layer_maps(x, y, normalize)
        per_layer = [weighted_spatial_mean(m, weight)[:, 0] for m in maps]
        return ops.sum(ops.stack(per_layer, axis=0), axis=0)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "net": self.net,
            "weights": self.pretrained,
        }
