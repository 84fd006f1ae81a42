"""Preset handles: what `from_preset` accepts and how remote ones become local directories.

- a built-in name (`realesr_general_x4v3`, hyphens allowed);
- a local directory holding config.json;
- `hf://OWNER/REPO[/SUBDIR]` (needs huggingface_hub);
- `kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]` (needs kagglehub);
- `https://.../preset.zip#sha256=HEX` or `.tar.gz`: an archive of a preset directory, checked
  against the sha256 before it is unpacked into the cache.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from keras_pbasr.models.registry import cache_dir
from keras_pbasr.presets.preset_io import PresetError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PresetHandle:
    """A parsed preset reference. `kind` is builtin, local, hf, kaggle or https."""

    kind: str
    location: str
    subdir: str = ""
    sha256: str | None = None


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def parse_handle(handle: str, sha256: str | None = None) -> PresetHandle:
    """Classifies a preset reference without touching the network.

    Example:
    >>> parse_handle("hf://keras-pbasr/realesrgan/x4")
    PresetHandle(kind='hf', location='keras-pbasr/realesrgan', subdir='x4', sha256=None)
    """
    text = str(handle).strip()
    if text.startswith("hf://"):
        parts = [p for p in text[len("hf://") :].split("/") if p]
        if len(parts) < 2:
            raise PresetError(f"{text!r}: a Hugging Face handle is hf://OWNER/REPO[/SUBDIR]")
        return PresetHandle("hf", "/".join(parts[:2]), "/".join(parts[2:]))
    if text.startswith("kaggle://"):
        parts = [p for p in text[len("kaggle://") :].split("/") if p]
        if len(parts) not in (4, 5):
            raise PresetError(
                f"{text!r}: a Kaggle handle is kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]"
            )
        return PresetHandle("kaggle", "/".join(parts))
    if text.startswith(("https://", "http://")):
        if text.startswith("http://"):
            raise PresetError(f"{text!r}: only https URLs are accepted for presets")
        url, _, fragment = text.partition("#")
        fragment_sha = urllib.parse.parse_qs(fragment).get("sha256", [None])[0]
        digest = (sha256 or fragment_sha or "").lower() or None
        if digest is None:
            raise PresetError(
                f"{url}: a preset URL needs its sha256 (append #sha256=HEX or pass sha256=...)"
            )
        if not _SHA256.match(digest):
            raise PresetError(f"{url}: {digest!r} is not a sha256 hex digest")
        suffix = Path(urllib.parse.urlparse(url).path).name.lower()
        if not suffix.endswith((".zip", ".tar.gz", ".tgz", ".tar")):
            raise PresetError(f"{url}: a preset URL must point to a .zip, .tar.gz or .tar archive")
        return PresetHandle("https", url, sha256=digest)
    if "://" in text:
        raise PresetError(
            f"{text!r}: unknown preset scheme (use a built-in name, a directory, hf://, "
            "kaggle:// or https://...#sha256=HEX)"
        )
    path = Path(text).expanduser()
    if path.exists() or "/" in text or "\\" in text or text.startswith("."):
        return PresetHandle("local", str(path))
    return PresetHandle("builtin", normalize_name(text))


def resolve_remote(handle: PresetHandle) -> Path:
    """Downloads (or finds in the cache) a remote preset and returns its local directory."""
    if handle.kind == "hf":
        try:
            import huggingface_hub
        except ImportError as exc:
            raise PresetError(
                f"hf://{handle.location} needs huggingface_hub: pip install huggingface_hub"
            ) from exc
        root = Path(huggingface_hub.snapshot_download(repo_id=handle.location))
        return root / handle.subdir if handle.subdir else root
    if handle.kind == "kaggle":
        try:
            import kagglehub
        except ImportError as exc:
            raise PresetError(
                f"kaggle://{handle.location} needs kagglehub: pip install kagglehub"
            ) from exc
        return Path(kagglehub.model_download(handle.location))
    if handle.kind == "https":
        return _download_archive(handle.location, handle.sha256)
    raise PresetError(f"{handle} is not a remote preset")


def _download_archive(url: str, sha256: str) -> Path:
    target = cache_dir() / "downloads" / sha256
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlparse(url).path).name
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / name
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as f:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
        except OSError as exc:
            raise PresetError(f"cannot download {url}: {exc}") from exc
        if digest.hexdigest() != sha256:
            raise PresetError(
                f"{url} has sha256 {digest.hexdigest()}, expected {sha256}: refusing to use it"
            )
        unpacked = Path(tmp) / "preset"
        _extract(archive, unpacked)
        root = _preset_root(unpacked, url)
        shutil.move(str(root), str(target))
    return target


def _extract(archive: Path, destination: Path) -> None:
    """Unpacks a zip or tar archive, refusing members that would land outside `destination`."""
    destination.mkdir(parents=True)
    base = destination.resolve()

    def check(member_name: str) -> None:
        if not (base / member_name).resolve().is_relative_to(base):
            raise PresetError(f"{archive.name} holds an unsafe path {member_name!r}")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                check(member)
            zf.extractall(destination)
        return
    try:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                check(member.name)
                if not (member.isfile() or member.isdir()):
                    raise PresetError(f"{archive.name} holds a link or device {member.name!r}")
            tf.extractall(destination)
    except tarfile.TarError as exc:
        raise PresetError(f"{archive.name} is neither a zip nor a tar archive: {exc}") from exc


def _preset_root(unpacked: Path, url: str) -> Path:
    """The directory holding config.json: the archive root or its single top folder."""
    if (unpacked / "config.json").is_file():
        return unpacked
    children = [p for p in unpacked.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / "config.json").is_file():
        return children[0]
    raise PresetError(f"the archive at {url} holds no preset (no config.json at its top)")
