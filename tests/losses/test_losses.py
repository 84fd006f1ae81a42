"""Pixel, GAN and region-split losses against hand-computed numpy values, on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from grad_helpers import gradient

from keras_pbasr.layers.single_channel_conv import SingleChannelConv2D
from keras_pbasr.losses import (
    gan_discriminator_loss,
    gan_generator_loss,
    gan_loss_map,
    pixel_loss,
    pixel_loss_map,
    region_means,
)


def value(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


@pytest.fixture
def pair(rng):
    pred = rng.uniform(size=(2, 4, 5, 3)).astype("float32")
    target = rng.uniform(size=(2, 4, 5, 3)).astype("float32")
    weight = rng.uniform(size=(2, 4, 5, 1)).astype("float32")
    return pred, target, weight


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


# Pixel losses ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "criterion, per_element",
    [
        ("l1", lambda d: np.abs(d)),
        ("l2", lambda d: d**2),
        ("charbonnier", lambda d: np.sqrt(d**2 + 1e-12)),
    ],
)
def test_pixel_losses_equal_numpy(pair, criterion, per_element):
    pred, target, weight = pair
    elements = per_element(pred.astype("float64") - target)
    np.testing.assert_allclose(value(pixel_loss(pred, target, criterion)), elements.mean(), 1e-6)
    # A (N, H, W, 1) map weights all channels of a pixel: sum(w * l) / (C * sum(w)).
    weighted = (elements * weight).sum() / (weight.sum() * 3)
    np.testing.assert_allclose(value(pixel_loss(pred, target, criterion, weight)), weighted, 1e-6)
    ones = np.ones_like(weight)
    np.testing.assert_allclose(
        value(pixel_loss(pred, target, criterion, ones)),
        value(pixel_loss(pred, target, criterion)),
        rtol=1e-6,
    )
    np.testing.assert_allclose(value(pixel_loss_map(pred, target, criterion)), elements, 1e-5, 1e-7)


def test_pixel_loss_weight_selects_pixels_and_rejects_unknown_criteria(pair):
    pred, target, _ = pair
    mask = np.zeros((2, 4, 5, 1), "float32")
    mask[1, 2, 3] = 1.0
    expected = np.abs(pred[1, 2, 3] - target[1, 2, 3]).mean()
    np.testing.assert_allclose(value(pixel_loss(pred, target, "l1", mask)), expected, 1e-6)
    with pytest.raises(ValueError, match="criterion must be one of"):
        pixel_loss(pred, target, "l3")


def test_pixel_loss_is_float32_for_float16_inputs(pair):
    pred, target, _ = pair
    loss = pixel_loss(pred.astype("float16"), target.astype("float16"), "l2")
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"


# GAN losses ------------------------------------------------------------------------------------

def _numpy_gan_terms(real, fake, gan_type):
    """(generator map, discriminator real map, discriminator fake map), per pixel."""
    if gan_type == "vanilla":
        # BCE with logits: -t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x)).
        return softplus(-fake), softplus(-real), softplus(fake)
    if gan_type == "lsgan":
        return (fake - 1) ** 2, (real - 1) ** 2, fake**2
    # Paper Eq. 1 for D; -D(fake) for G.
    return -fake, np.maximum(0, 1 - real), np.maximum(0, 1 + fake)


@pytest.mark.parametrize("gan_type", ["vanilla", "lsgan", "hinge"])
def test_gan_losses_equal_numpy(gan_type, rng):
    real = (rng.standard_normal((2, 4, 5, 1)) * 2).astype("float32")
    fake = (rng.standard_normal((2, 4, 5, 1)) * 2).astype("float32")
    weight = rng.uniform(size=(2, 4, 5, 1)).astype("float32")
    g_map, real_map, fake_map = _numpy_gan_terms(real.astype("float64"), fake, gan_type)

    np.testing.assert_allclose(value(gan_generator_loss(fake, gan_type)), g_map.mean(), 1e-5)
    real_term, fake_term = gan_discriminator_loss(real, fake, gan_type)
    np.testing.assert_allclose(value(real_term), real_map.mean(), 1e-5)
    np.testing.assert_allclose(value(fake_term), fake_map.mean(), 1e-5)

    def weighted(m):
        return (m * weight).sum() / weight.sum()

    np.testing.assert_allclose(
        value(gan_generator_loss(fake, gan_type, weight)), weighted(g_map), 1e-5
    )
    real_w, fake_w = gan_discriminator_loss(real, fake, gan_type, weight)
    np.testing.assert_allclose(value(real_w), weighted(real_map), 1e-5)
    np.testing.assert_allclose(value(fake_w), weighted(fake_map), 1e-5)

    ones = np.ones_like(weight)
    np.testing.assert_allclose(
        value(gan_generator_loss(fake, gan_type, ones)), value(gan_generator_loss(fake, gan_type)),
        rtol=1e-6, atol=1e-7,
    )
    for with_ones, plain in zip(
        gan_discriminator_loss(real, fake, gan_type, ones),
        gan_discriminator_loss(real, fake, gan_type),
    ):
        np.testing.assert_allclose(value(with_ones), value(plain), rtol=1e-6)


def test_vanilla_gan_is_stable_for_large_logits():
    logits = np.array([-200.0, -30.0, 0.0, 30.0, 200.0], "float32").reshape(1, 1, 5, 1)
    real_map = value(gan_loss_map(logits, True, "vanilla"))
    assert np.all(np.isfinite(real_map))
    np.testing.assert_allclose(real_map.ravel(), [200, 30, np.log(2), 0, 0], atol=1e-6)


def test_hinge_matches_paper_eq1_and_rejects_misuse():
    # Eq. 1: mean over pixels of relu(1 - D(HR|M)) + relu(1 + D(SR|M)).
    real = np.array([2.0, 0.5, -1.0, 0.0], "float32").reshape(1, 2, 2, 1)
    fake = np.array([-2.0, 0.5, 1.0, -0.25], "float32").reshape(1, 2, 2, 1)
    real_term, fake_term = gan_discriminator_loss(real, fake, "hinge")
    expected = np.mean([0 + 0, 0.5 + 1.5, 2 + 2, 1 + 0.75])
    np.testing.assert_allclose(value(real_term) + value(fake_term), expected, 1e-6)
    with pytest.raises(ValueError, match="gan_type must be one of"):
        gan_generator_loss(fake, "wgan")
    with pytest.raises(ValueError, match="target_is_real=True"):
        gan_loss_map(fake, False, "hinge", for_discriminator=False)


def test_gan_terms_send_gradients_only_to_the_intended_network(rng):
    """With a detached SR, neither discriminator term reaches the generator (everything G
    produces enters through SR); the generator term does."""
    discriminator = keras.Sequential(
        [
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            SingleChannelConv2D(3, padding="same"),
        ]
    )
    hr = rng.uniform(size=(1, 8, 8, 3)).astype("float32")
    sr = rng.uniform(size=(1, 8, 8, 3)).astype("float32")
    discriminator(hr)  # build outside the traced functions

    def d_terms(x):
        return gan_discriminator_loss(
            discriminator(hr), discriminator(keras.ops.stop_gradient(x)), "hinge"
        )

    assert not np.any(gradient(lambda x: d_terms(x)[0] + d_terms(x)[1], sr))
    assert np.abs(gradient(lambda x: gan_generator_loss(discriminator(x), "hinge"), sr)).max() > 0
    # Without the detach, the fake term would reach G: the detach is what stops it.
    fake_term = lambda x: gan_discriminator_loss(discriminator(hr), discriminator(x), "hinge")[1]  # noqa: E731
    assert np.abs(gradient(fake_term, sr)).max() > 0


# Region split ----------------------------------------------------------------------------------

def test_region_means_split_blur_and_sharp_pixels(rng):
    loss = rng.uniform(size=(2, 4, 5, 3)).astype("float32")
    mask = (rng.uniform(size=(2, 4, 5, 1)) > 0.5).astype("float32")
    sharp = np.broadcast_to(mask, loss.shape).astype(bool)
    blur_mean, sharp_mean = region_means(loss, mask)
    np.testing.assert_allclose(value(blur_mean), loss[~sharp].mean(), 1e-6)
    np.testing.assert_allclose(value(sharp_mean), loss[sharp].mean(), 1e-6)

    blur_each, sharp_each = region_means(loss, mask, per_sample=True)
    assert value(blur_each).shape == (2,)
    for i in range(2):
        np.testing.assert_allclose(value(blur_each)[i], loss[i][~sharp[i]].mean(), 1e-6)
        np.testing.assert_allclose(value(sharp_each)[i], loss[i][sharp[i]].mean(), 1e-6)


def test_region_means_of_an_empty_region_are_nan(rng):
    loss = rng.uniform(size=(2, 4, 4, 1)).astype("float32")
    all_sharp = np.ones((2, 4, 4, 1), "float32")
    blur_mean, sharp_mean = region_means(loss, all_sharp)
    assert np.isnan(value(blur_mean))
    np.testing.assert_allclose(value(sharp_mean), loss.mean(), 1e-6)

    mask = all_sharp.copy()
    mask[1] = 0.0  # second image entirely blurred
    blur_each, sharp_each = region_means(loss, mask, per_sample=True)
    assert np.isnan(value(blur_each)[0]) and np.isnan(value(sharp_each)[1])
    np.testing.assert_allclose(value(blur_each)[1], loss[1].mean(), 1e-6)
