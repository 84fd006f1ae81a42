"""Importing a user-supplied torchvision VGG16 / VGG19 / AlexNet state_dict into the cache.

torchvision keeps the conv layers of these networks in `features`; the layer at index i of
`features` is `feature_layer_names(network)[i]` (layouts.py), so `features.{i}.weight`
(O, I, kh, kw) becomes `<conv name>/kernel` (kh, kw, I, O). The classifier is ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_pbasr.utils.file_hash import file_sha256
from keras_pbasr.utils.torch_files import load_torch_state_dict, strip_module_prefix
from keras_pbasr.weights.layouts import FEATURE_NETWORKS, conv_shapes, feature_layer_names
from keras_pbasr.weights.store import save_weights_arrays


def torchvision_features_to_keras(
    state_dict: dict[str, np.ndarray], network: str, source: str = "state_dict"
) -> dict[str, np.ndarray]:
    """Converts torchvision `features.*` tensors to Keras-layout arrays named by layer.

    Example:
    >>> arrays = torchvision_features_to_keras(state_dict, "vgg19")  # doctest: +SKIP
    >>> arrays["conv5_4/kernel"].shape  # doctest: +SKIP
    (3, 3, 512, 512)
    """
    if network not in FEATURE_NETWORKS:
        raise ValueError(f"network must be one of {FEATURE_NETWORKS}, got {network!r}")
    state_dict = {strip_module_prefix(k): v for k, v in state_dict.items()}
    shapes = conv_shapes(network)
    arrays = {}
    for index, layer in enumerate(feature_layer_names(network)):
        if layer not in shapes:
            continue
        kernel_shape, bias_shape = shapes[layer]
        for suffix in ("weight", "bias"):
            key = f"features.{index}.{suffix}"
            if key not in state_dict:
                raise ValueError(
                    f"{source} has no {key} ({network} {layer}); is it a torchvision "
                    f"{network} state_dict?"
                )
        kernel = np.transpose(np.asarray(state_dict[f"features.{index}.weight"]), (2, 3, 1, 0))
        bias = np.asarray(state_dict[f"features.{index}.bias"])
        if kernel.shape != kernel_shape or bias.shape != bias_shape:
            raise ValueError(
                f"{source}: features.{index} ({layer}) has kernel {kernel.shape} and bias "
                f"{bias.shape} in Keras layout, expected {kernel_shape} and {bias_shape} for "
                f"{network}"
            )
        arrays[f"{layer}/kernel"] = kernel.astype(np.float32)
        arrays[f"{layer}/bias"] = bias.astype(np.float32)
    extra = sorted(
        k for k in state_dict
        if k.startswith("features.") and int(k.split(".")[1]) >= len(feature_layer_names(network))
    )
    if extra:
        raise ValueError(f"{source} has layers beyond {network}'s features ({extra[:3]}...)")
    return arrays


def import_torchvision_weights(path: str | Path, name: str) -> Path:
    """Converts a torchvision .pth (VGG16, VGG19 or AlexNet) and caches it as entry `name`.

    Example:
    >>> import_torchvision_weights("vgg19-dcbb9e9d.pth", "vgg19")  # doctest: +SKIP
    PosixPath('~/.keras/keras_pbasr/weights/vgg19.npz')
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    arrays = torchvision_features_to_keras(load_torch_state_dict(path), name, source=str(path))
    return save_weights_arrays(name, arrays, {
        "kind": "import",
        "description": f"torchvision {name} features imported from a user file",
        "file": path.name,
        "file_sha256": file_sha256(path),
    })
