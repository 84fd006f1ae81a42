"""LPIPS, DISTS and the perceptual loss on the Keras backend in use, against plain PyTorch
running the same computation (the independent references in tests/torch_reference) with the
same pretrained weights. Needs `pbasr weights fetch --all`.

    KERAS_BACKEND=jax python -m benchmarks perceptual [--quick]
"""

from __future__ import annotations

import numpy as np
import torch
from keras import ops

from keras_pbasr.losses.perceptual import PerceptualLoss
from keras_pbasr.models.feature_nets import DISTS, LPIPS
from keras_pbasr.weights import fetch_weights, load_weights_arrays
from keras_pbasr.weights.layouts import feature_layer_names
from tests.torch_reference.feature_nets import (
    DISTSReference,
    Features,
    LPIPSReference,
    basicsr_perceptual_loss,
    nhwc_to_torch,
    set_features_from_keras,
)


def _torch_features(network: str) -> Features:
    features = Features(network)
    set_features_from_keras(features, load_weights_arrays(network), feature_layer_names(network))
    return features.eval()


def torch_lpips_reference(net: str) -> LPIPSReference:
    reference = LPIPSReference(net, _torch_features("alexnet" if net == "alex" else "vgg16"))
    heads = load_weights_arrays(f"lpips_{net}")
    for i in range(5):
        weight = np.ascontiguousarray(heads[f"lin{i}/kernel"].transpose(3, 2, 0, 1))
        getattr(reference, f"lin{i}").model[1].weight.data = torch.from_numpy(weight)
    return reference.eval()


def torch_dists_reference() -> DISTSReference:
    reference = DISTSReference(_torch_features("vgg16"))
    arrays = load_weights_arrays("dists")
    reference.alpha.data = torch.from_numpy(arrays["alpha"].reshape(1, -1, 1, 1).copy())
    reference.beta.data = torch.from_numpy(arrays["beta"].reshape(1, -1, 1, 1).copy())
    return reference.eval()


def run(bench) -> None:
    fetch_weights()
    size = 128 if bench.quick else 256
    rng = np.random.default_rng(0)
    x = rng.random((1, size, size, 3), dtype=np.float32)
    y = np.clip(x + 0.05 * rng.standard_normal(x.shape, dtype=np.float32), 0, 1)
    tx, ty = nhwc_to_torch(x), nhwc_to_torch(y)
    shape = f"1x{size}x{size}"

    for net in ("alex", "vgg"):
        reference, model = torch_lpips_reference(net), LPIPS(net)

        def torch_lpips(reference=reference):
            with torch.no_grad():
                return reference(tx, ty)

        bench.measure(f"lpips_{net} {shape}", "torch reference", torch_lpips, reference=True)
        bench.measure(f"lpips_{net} {shape}", "keras",
                      lambda model=model: ops.convert_to_numpy(model(x, y)))

    reference, model = torch_dists_reference(), DISTS()

    def torch_dists():
        with torch.no_grad():
            return reference(tx, ty)

    bench.measure(f"dists {shape}", "torch reference", torch_dists, reference=True)
    bench.measure(f"dists {shape}", "keras", lambda: ops.convert_to_numpy(model(x, y)))

    # Perceptual loss forward (the VGG16 substitute: VGG19 has no registry source).
    loss = PerceptualLoss.default()
    names = feature_layer_names(loss.network)
    indices = {names.index(k): w for k, w in loss.layer_weights.items()}
    features = _torch_features(loss.network)

    def torch_loss():
        with torch.no_grad():
            return basicsr_perceptual_loss(features, indices, tx, ty)

    group = f"perceptual loss ({loss.network}) {shape}"
    bench.measure(group, "torch reference", torch_loss, reference=True)
    bench.measure(group, "keras", lambda: ops.convert_to_numpy(loss(y, x)))
    bench.note("Eager calls (no jit); timings on a shared machine are noisy.")
