"""Per-pixel GAN losses on discriminator logits: vanilla (BCE with logits), LSGAN and hinge.

The generator term and the discriminator's real and fake terms are separate functions/values so
that each network's step uses only its own term; each takes an optional region weight map
(weighted mean over the map, see keras_pbasr.losses.weighting).
"""

from __future__ import annotations

from keras import ops

from keras_pbasr.losses.weighting import weighted_mean

GAN_TYPES = ("vanilla", "lsgan", "hinge")


def _check_gan_type(gan_type: str) -> None:
    if gan_type not in GAN_TYPES:
        raise ValueError(f"gan_type must be one of {GAN_TYPES}, got {gan_type!r}")


def gan_loss_map(logits, target_is_real: bool, gan_type: str, for_discriminator: bool = True):
    """Per-pixel GAN loss of `logits` (float32, same shape).

    vanilla: binary cross-entropy with logits against 1 (real) or 0 (fake), numerically stable.
    lsgan: (logits - 1)^2 or logits^2.
    hinge (paper Eq. 1): discriminator relu(1 - D(real)) and relu(1 + D(fake));
    generator -D(fake) (`target_is_real` must then be True, as for the other types).
    """
    _check_gan_type(gan_type)
    x = ops.cast(logits, "float32")
    if gan_type == "vanilla":
        # BCE(x, t) = max(x, 0) - x*t + log(1 + exp(-|x|)); t = 1 gives softplus(-x).
        return ops.softplus(-x) if target_is_real else ops.softplus(x)
    if gan_type == "lsgan":
        return ops.square(x - 1.0) if target_is_real else ops.square(x)
    if not for_discriminator:
        if not target_is_real:
            raise ValueError("the hinge generator loss is defined for target_is_real=True only")
        return -x
    return ops.relu(1.0 - x) if target_is_real else ops.relu(1.0 + x)


def gan_generator_loss(fake_logits, gan_type: str, weight=None):
    """The generator's adversarial term: D(SR) pushed towards real.

    Depends only on the logits of the generated image: the caller keeps the discriminator frozen
    (its variables are not updated by the generator step).

    Example:
    >>> import numpy as np
    >>> float(gan_generator_loss(np.array([[[[2.0]], [[-1.0]]]]), "hinge"))
    -0.5
    """
    return weighted_mean(gan_loss_map(fake_logits, True, gan_type, for_discriminator=False), weight)


def gan_discriminator_loss(real_logits, fake_logits, gan_type: str, weight=None):
    """The discriminator's terms (real_term, fake_term); the D loss is their sum.

    Compute fake_logits from a detached SR (ops.stop_gradient) so that no gradient reaches the
    generator. With gan_type="hinge", real_term + fake_term is the paper's Eq. 1 (weight=None);
    `weight` weights both terms with the same per-pixel map.

    Example:
    >>> import numpy as np
    >>> real_logits, fake_logits = np.full((1, 2, 2, 1), 0.5), np.zeros((1, 2, 2, 1))
    >>> real, fake = gan_discriminator_loss(real_logits, fake_logits, "hinge")
    >>> float(real), float(fake)
    (0.5, 1.0)
    """
    real_term = weighted_mean(gan_loss_map(real_logits, True, gan_type), weight)
    fake_term = weighted_mean(gan_loss_map(fake_logits, False, gan_type), weight)
    return real_term, fake_term
