"""Pixel losses (L1, L2, Charbonnier) with an optional per-pixel weight map."""

from __future__ import annotations

from keras import ops

from keras_pbasr.losses.weighting import weighted_mean

PIXEL_CRITERIA = ("l1", "l2", "charbonnier")
# BasicSR's CharbonnierLoss default.
CHARBONNIER_EPS = 1e-12


def pixel_loss_map(pred, target, criterion: str = "l1", charbonnier_eps: float = CHARBONNIER_EPS):
    """Element-wise loss, same shape as pred: |d|, d^2 or sqrt(d^2 + eps) with d = pred - target.

    Computed in float32 whatever the inputs' dtype (mixed precision).
    """
    if criterion not in PIXEL_CRITERIA:
        raise ValueError(f"criterion must be one of {PIXEL_CRITERIA}, got {criterion!r}")
    diff = ops.cast(pred, "float32") - ops.cast(target, "float32")
    if criterion == "l1":
        return ops.abs(diff)
    if criterion == "l2":
        return ops.square(diff)
    return ops.sqrt(ops.square(diff) + charbonnier_eps)


def pixel_loss(
    pred,
    target,
    criterion: str = "l1",
    weight=None,
    charbonnier_eps: float = CHARBONNIER_EPS,
):
    """Scalar pixel loss: the mean of `pixel_loss_map`, or its weighted mean over `weight`
    (a per-pixel map broadcastable to pred, typically (N, H, W, 1)).

    Example:
    >>> import numpy as np
    >>> float(pixel_loss(np.ones((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)), "l2"))
    1.0
    """
    return weighted_mean(pixel_loss_map(pred, target, criterion, charbonnier_eps), weight)
