"""VGG16, VGG19 and AlexNet feature extractors with torchvision semantics (channels_last)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from keras_pbasr.models.feature_nets.pooling import L2Pooling2D
from keras_pbasr.weights.layouts import ALEXNET_CONVS, conv_shapes, feature_layer_names
from keras_pbasr.weights.store import load_weights_arrays

# Pretrained values are assigned after construction; zeros (not random) until then, which is
# also what weights=None leaves, and cheap to create on every backend.
_ZEROS = {"kernel_initializer": "zeros", "bias_initializer": "zeros"}


def _conv_layer(network: str, name: str, out_channels: int) -> list[keras.layers.Layer]:
    if network == "alexnet":
        _, _, kernel, stride, padding = next(c for c in ALEXNET_CONVS if c[0] == name)
        if stride == 1:
            # Odd kernel, stride 1: Keras 'same' pads (k-1)/2 on both sides, like torch.
            return [
                keras.layers.Conv2D(out_channels, kernel, padding="same", name=name, **_ZEROS)
            ]
        # conv1 (k11, s4, p2): torch pads explicitly; 'same' would pad differently.
        return [
            keras.layers.ZeroPadding2D(padding, name=f"{name}_pad"),
            keras.layers.Conv2D(out_channels, kernel, strides=stride, name=name, **_ZEROS),
        ]
    return [keras.layers.Conv2D(out_channels, 3, padding="same", name=name, **_ZEROS)]


def _pool_layer(network: str, name: str, pooling: str) -> keras.layers.Layer:
    if network == "alexnet":
        return keras.layers.MaxPooling2D(3, strides=2, name=name)
    if pooling == "l2":
        return L2Pooling2D(name=name)
    return keras.layers.MaxPooling2D(2, strides=2, name=name)


def load_pretrained_arrays(network: str, weights: str | None) -> dict[str, np.ndarray] | None:
    """weights: "imagenet" (the cache entry named after the network), a path to a
    Keras-layout .npz, or None (no pretrained weights: the caller sets them)."""
    if weights is None:
        return None
    if weights == "imagenet":
        return load_weights_arrays(network)
    path = Path(weights)
    if path.suffix != ".npz" or not path.is_file():
        raise ValueError(
            f"weights must be 'imagenet', None or an existing .npz file, got {weights!r}"
        )
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assign_conv_weights(model: keras.Model, arrays: dict[str, np.ndarray], source: str) -> None:
    """Sets every Conv2D of `model` from arrays[`<name>/kernel`], arrays[`<name>/bias`]."""
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        try:
            kernel, bias = arrays[f"{layer.name}/kernel"], arrays[f"{layer.name}/bias"]
        except KeyError:
            raise ValueError(f"{source} has no weights for {layer.name}") from None
        if kernel.shape != tuple(layer.kernel.shape):
            raise ValueError(
                f"{source}: {layer.name} kernel is {kernel.shape}, "
                f"the layer needs {tuple(layer.kernel.shape)}"
            )
        layer.set_weights([kernel, bias])


@keras.saving.register_keras_serializable(package="keras_pbasr")
class FeatureExtractor(keras.Model):
    """The `features` part of torchvision's VGG16, VGG19 or AlexNet, returning the
    activations of chosen layers (a list in the order of `output_layers`).

    Layer names follow BasicSR: VGG `convB_I` (pre-ReLU), `reluB_I` (post-ReLU), `poolB`;
    AlexNet `conv1`..`conv5`, `relu1`..`relu5`, `pool1`, `pool2`, `pool5`. The network is
    cut after the last requested layer. Inputs are channels_last and used as given (apply
    ImageNet normalisation yourself). Frozen (trainable=False) unless told otherwise.

    Args:
        network: "vgg16", "vgg19" or "alexnet".
        output_layers: names of the layers whose outputs are returned.
        pooling: VGG only: "max" (torchvision) or "l2" (DISTS' L2 pooling).
        weights: "imagenet" loads the cache entry named after the network (missing: an
            error naming `pbasr weights fetch`/`import`); a path loads a Keras-layout .npz;
            None leaves every weight zero, for callers that set weights themselves.

    Example:
    >>> import numpy as np
    >>> net = FeatureExtractor("vgg16", ["conv1_2", "relu2_2"], weights=None)
    >>> [t.shape for t in net(np.zeros((1, 33, 35, 3), "float32"))]
    [(1, 33, 35, 64), (1, 16, 17, 128)]
    """

    def __init__(
        self,
        network: str = "vgg19",
        output_layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
        pooling: str = "max",
        weights: str | None = "imagenet",
        **kwargs,
    ):
        all_layers = feature_layer_names(network)
        output_layers = list(output_layers)
        unknown = [n for n in output_layers if n not in all_layers]
        if unknown or not output_layers:
            raise ValueError(f"unknown {network} layers {unknown}; choose from {all_layers}")
        if pooling not in ("max", "l2") or (pooling == "l2" and network == "alexnet"):
            raise ValueError(f"pooling must be 'max' or (VGG only) 'l2', got {pooling!r}")
        arrays = load_pretrained_arrays(network, weights)

        shapes = conv_shapes(network)
        last = max(all_layers.index(n) for n in output_layers)
        inputs = keras.Input((None, None, 3), name="image")
        x, taps = inputs, {}
        for name in all_layers[: last + 1]:
            if name.startswith("conv"):
                for layer in _conv_layer(network, name, shapes[name][1][0]):
                    x = layer(x)
            elif name.startswith("relu"):
                x = keras.layers.ReLU(name=name)(x)
            else:
                x = _pool_layer(network, name, pooling)(x)
            taps[name] = x
        trainable = kwargs.pop("trainable", False)
        super().__init__(inputs=inputs, outputs=[taps[n] for n in output_layers], **kwargs)
        self.trainable = trainable  # the setter freezes every layer

        self.network = network
        self.output_layers = output_layers
        self.pooling = pooling
        self.pretrained = weights
        if arrays is not None:
            assign_conv_weights(self, arrays, f"{network} weights ({weights})")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "network": self.network,
            "output_layers": list(self.output_layers),
            "pooling": self.pooling,
            "weights": self.pretrained,
        }
