"""The backbones' internal channel layout (data_format) and the layout-aware PReLU."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_pbasr import RRDBNet, SRVGGNetCompact
from keras_pbasr.layers.layout import PReLU, preferred_data_format, resolve_data_format

# TensorFlow's CPU convolution only runs channels_last, so channels_first models are only
# built on the other backends.
CHANNELS_FIRST_RUNS = keras.backend.backend() != "tensorflow"
LAYOUTS = ["channels_last"] + (["channels_first"] if CHANNELS_FIRST_RUNS else [])


def test_preferred_layout_is_channels_first_only_on_torch():
    expected = "channels_first" if keras.backend.backend() == "torch" else "channels_last"
    assert preferred_data_format() == expected
    assert resolve_data_format(None) == expected
    with pytest.raises(ValueError, match="data_format"):
        resolve_data_format("NCHW")


def test_default_layout_is_not_frozen_into_the_config():
    model = SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2)
    assert model.get_config()["data_format"] is None
    rebuilt = SRVGGNetCompact.from_config(model.get_config())
    assert rebuilt.get_config()["data_format"] is None
    explicit = RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4,
                       data_format="channels_last")
    assert explicit.get_config()["data_format"] == "channels_last"


@pytest.mark.parametrize("data_format", LAYOUTS)
def test_prelu_matches_the_torch_definition_and_keras_prelu_files(tmp_path, rng, data_format):
    x = rng.normal(size=(2, 5, 4, 3)).astype("float32")
    slopes = np.array([0.1, -0.5, 2.0], "float32")
    expected = np.where(x >= 0, x, x * slopes)

    # A weights file written by keras.layers.PReLU (what older SRVGGNetCompact files hold).
    inputs = keras.Input((None, None, 3))
    keras_prelu = keras.Model(inputs, keras.layers.PReLU(shared_axes=[1, 2])(inputs))
    keras_prelu.layers[-1].alpha.assign(slopes.reshape(1, 1, 3))
    keras_prelu.save_weights(tmp_path / "prelu.weights.h5")

    inputs = keras.Input((None, None, 3))
    layer = PReLU(data_format)
    internal = inputs if data_format == "channels_last" else keras.layers.Permute((3, 1, 2))(
        inputs)
    out = layer(internal)
    if data_format == "channels_first":
        out = keras.layers.Permute((2, 3, 1))(out)
    model = keras.Model(inputs, out)
    model.load_weights(tmp_path / "prelu.weights.h5")
    assert tuple(layer.alpha.shape) == (1, 1, 3)
    np.testing.assert_allclose(np.asarray(model.predict_on_batch(x)), expected, atol=1e-6)
