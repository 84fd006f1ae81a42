"""Per-pixel U-Net discriminators with torch-faithful spectral norm, and their converters."""

from keras_pbasr.models.discriminators.conditional_unet_discriminator import (
    ConditionalUNetDiscriminatorSN,
    conditional_from_unconditional,
)
from keras_pbasr.models.discriminators.discriminator_convert import (
    ConditionalUNetDiscriminatorSNConverter,
    UNetDiscriminatorSNConverter,
)
from keras_pbasr.models.discriminators.unet_discriminator import UNetDiscriminatorSN
from keras_pbasr.models.registry import register_preset_class

register_preset_class(UNetDiscriminatorSN)
register_preset_class(ConditionalUNetDiscriminatorSN)

__all__ = [
    "ConditionalUNetDiscriminatorSN",
    "ConditionalUNetDiscriminatorSNConverter",
    "UNetDiscriminatorSN",
    "UNetDiscriminatorSNConverter",
    "conditional_from_unconditional",
]
