"""Per-pixel U-Net discriminators with torch-faithful spectral norm."""

from keras_pbasr.models.discriminators.conditional_unet_discriminator import (
    ConditionalUNetDiscriminatorSN,
    conditional_from_unconditional,
)
from keras_pbasr.models.discriminators.unet_discriminator import UNetDiscriminatorSN

__all__ = [
    "ConditionalUNetDiscriminatorSN",
    "UNetDiscriminatorSN",
    "conditional_from_unconditional",
]
