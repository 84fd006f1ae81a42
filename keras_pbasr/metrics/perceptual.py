"""LPIPS and DISTS as metric functions with region weights (networks in models/feature_nets/).

The networks run in float32 like the references, compiled (keras_pbasr/utils/compiled_call.py).
A region weight is area-averaged to each layer's resolution inside the networks (weighted spatial
means; never the metric of x * w).
Pretrained weights come from `pbasr weights fetch ...`; missing ones raise
MissingWeightsError naming that command.
"""

from __future__ import annotations

import functools

from keras import ops

from keras_pbasr.metrics.regions import nan_if_empty, prepare_pair
from keras_pbasr.models.feature_nets import DISTS, LPIPS
from keras_pbasr.utils.compiled_call import compiled_model_call


@functools.lru_cache(maxsize=4)
def lpips_model(net: str = "alex"):
    return LPIPS(net=net)


@functools.lru_cache(maxsize=1)
def dists_model():
    return DISTS()


def lpips(sr, hr, weight=None, *, crop_border: int = 0, net: str = "alex", model=None):
    """LPIPS v0.1 per image (lower is better) of (N, H, W, 3) RGB in [0, 1]; (N,)."""
    sr, hr, weight = prepare_pair(sr, hr, weight, crop_border, f"LPIPS-{net}")
    score = compiled_model_call(model or lpips_model(net))(sr, hr, weight)
    return nan_if_empty(ops.cast(score, "float32"), weight)


def dists(sr, hr, weight=None, *, crop_border: int = 0, model=None):
    """DISTS per image (lower is better) of (N, H, W, 3) RGB in [0, 1]; (N,)."""
    sr, hr, weight = prepare_pair(sr, hr, weight, crop_border, "DISTS")
    score = compiled_model_call(model or dists_model())(sr, hr, weight)
    return nan_if_empty(ops.cast(score, "float32"), weight)
