"""The shared conformance check every generator family runs (keras-hub's
`run_vision_backbone_test` move): the `SRBackbone` contract, config, .keras and preset round
trips, dtype policies, channel layouts and input sizes, on the backend under test.

A family's test calls `run_sr_backbone_checks(cls, init_kwargs, input_shape, scale, folder)`
with a tiny configuration. The checks build the model up to six times and run it five times
(each new shape costs JAX compilations), so keep configurations and inputs small.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np

from keras_pbasr.layers.layout import resolve_data_format
from keras_pbasr.models import SRBackbone
from keras_pbasr.presets import save_to_preset
from keras_pbasr.presets.preset_io import load_preset_dir

POLICIES = ("mixed_float16", "mixed_bfloat16")


def _numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def _randomize(model: keras.Model, seed: int) -> None:
    """Random weights well away from the initialisers (some start at zero or identity)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if keras.backend.standardize_dtype(variable.dtype).startswith("float"):
            variable.assign(rng.normal(0.0, 0.05, variable.shape).astype(variable.dtype))


def _build(cls, init_kwargs: dict, policy: str = "float32") -> SRBackbone:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return cls(**init_kwargs)
    finally:
        keras.config.set_dtype_policy(previous)


def check_contract(model: SRBackbone, x: np.ndarray, scale: int) -> np.ndarray:
    """SRBackbone subclass, stated scale and channels, float32 output of scale x the input."""
    assert isinstance(model, SRBackbone), type(model)
    assert model.scale == scale
    assert model.input_channels == x.shape[-1]
    assert model.size_multiple >= 1 and model.training_size_multiple >= 1
    out = model(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    n, h, w, _ = x.shape
    assert tuple(out.shape) == (n, scale * h, scale * w, model.output_channels)
    return _numpy(out)


def _assert_same_weights(model: keras.Model, restored: keras.Model) -> None:
    for saved, loaded in zip(model.weights, restored.weights, strict=True):
        assert saved.path == loaded.path and saved.trainable == loaded.trainable, saved.path
        np.testing.assert_array_equal(_numpy(loaded), _numpy(saved))


def check_keras_file_round_trip(cls, model: SRBackbone, folder) -> None:
    """A .keras file rebuilds the class from get_config (constructor arguments only) with the
    same weights and trainable flags: the same model (outputs follow; the layout and
    mixed-precision checks run the forward)."""
    config = model.get_config()
    accepted = set(inspect.signature(cls.__init__).parameters) | {"name", "trainable"}
    assert set(config) <= accepted, sorted(set(config) - accepted)
    assert config["name"] == model.name and config["trainable"] is True
    path = folder / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is cls and restored.get_config() == config
    _assert_same_weights(model, restored)


def check_preset_round_trip(cls, model: SRBackbone, folder) -> None:
    save_to_preset(model, folder / "preset")
    restored = load_preset_dir(folder / "preset")
    assert type(restored) is cls and restored.get_config() == model.get_config()
    _assert_same_weights(model, restored)


def check_mixed_precision(cls, init_kwargs: dict, model: SRBackbone, x: np.ndarray,
                          expected: np.ndarray, tolerance: float):
    """Under each mixed policy the model computes in half precision and returns float32 close
    to the float32 model with the same weights (`tolerance`: half-precision rounding)."""
    for policy in POLICIES:
        mixed = _build(cls, init_kwargs, policy)
        mixed.set_weights(model.get_weights())
        out = mixed(x)
        assert keras.backend.standardize_dtype(out.dtype) == "float32", policy
        assert keras.backend.standardize_dtype(mixed.compute_dtype) == policy.split("_")[1]
        error = float(np.max(np.abs(_numpy(out) - expected)))
        assert error <= tolerance, f"{policy}: {error} > {tolerance}"


def check_layouts(cls, init_kwargs: dict, model: SRBackbone, x: np.ndarray,
                  expected: np.ndarray):
    """The other channel layout computes what the model's does from the same weights
    (backbones with a `data_format` argument, on backends whose CPU conv runs NCHW)."""
    if "data_format" not in inspect.signature(cls.__init__).parameters:
        return
    if keras.backend.backend() == "tensorflow":  # TensorFlow's CPU conv has no NCHW
        return
    other_layout = {"channels_last": "channels_first", "channels_first": "channels_last"}[
        resolve_data_format(init_kwargs.get("data_format"))]
    other = cls(**{**init_kwargs, "data_format": other_layout})
    other.set_weights(model.get_weights())
    # Measured below 2e-6: the same sums in another order.
    np.testing.assert_allclose(_numpy(other(x)), expected, atol=1e-5, rtol=0)


def check_sizes(model: SRBackbone, rng: np.random.Generator, odd_shapes):
    """Other H and W (multiples of `size_multiple`, odd ones included) give scale x H."""
    for h, w in odd_shapes:
        h, w = h * model.size_multiple, w * model.size_multiple
        x = rng.random((1, h, w, model.input_channels), dtype=np.float32)
        out = _numpy(model(x))
        assert out.shape == (1, model.scale * h, model.scale * w, model.output_channels)
        assert np.all(np.isfinite(out))


def run_sr_backbone_checks(cls, init_kwargs: dict, input_shape: tuple[int, int, int, int],
                           scale: int, folder, *, odd_shapes=((3, 5),),
                           mixed_tolerance: float = 0.05, seed: int = 0) -> None:
    """Every check above on a tiny `cls(**init_kwargs)` with random weights.

    Args:
        input_shape: the (N, H, W, C) input of the exact-output checks.
        scale: the upscaling factor the model must state and apply.
        folder: an empty directory for the .keras file and the preset.
        odd_shapes: (H, W) in units of `size_multiple`, run once each for the output shape.
        mixed_tolerance: the largest difference allowed between mixed and float32 outputs.
    """
    rng = np.random.default_rng(seed)
    model = _build(cls, init_kwargs)
    _randomize(model, seed)
    x = rng.random(input_shape, dtype=np.float32)
    expected = check_contract(model, x, scale)
    check_keras_file_round_trip(cls, model, folder)
    check_preset_round_trip(cls, model, folder)
    check_mixed_precision(cls, init_kwargs, model, x, expected, mixed_tolerance)
    check_layouts(cls, init_kwargs, model, x, expected)
    check_sizes(model, rng, odd_shapes)
