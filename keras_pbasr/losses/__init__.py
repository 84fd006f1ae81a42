"""Losses usable inside any backend's train step (keras.ops only)."""

from keras_pbasr.losses.gan import (
    GAN_TYPES,
    gan_discriminator_loss,
    gan_generator_loss,
    gan_loss_map,
)
from keras_pbasr.losses.perceptual import LPIPSLoss, PerceptualLoss
from keras_pbasr.losses.pixel import PIXEL_CRITERIA, pixel_loss, pixel_loss_map
from keras_pbasr.losses.region import region_means
from keras_pbasr.losses.weighting import weighted_mean

__all__ = [
    "GAN_TYPES",
    "LPIPSLoss",
    "PIXEL_CRITERIA",
    "PerceptualLoss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gan_loss_map",
    "pixel_loss",
    "pixel_loss_map",
    "region_means",
    "weighted_mean",
]
