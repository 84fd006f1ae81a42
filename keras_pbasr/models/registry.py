"""The architecture registry: every backbone family, its converters and its built-in presets.

Each family's `__init__.py` registers itself with the class object
(`register_backbone("rrdbnet", RRDBNet, converters=...)`, `register_presets(PRESETS, RRDBNet)`);
everything that needs the list of architectures reads it from here: the `--arch` choices of
`pbasr compare-backends`, `pbasr train`'s `backbone: {class: ...}`, `keras_pbasr.presets` and
the converters. Adding a family therefore touches one folder (`keras_pbasr/models/<family>/`).

The preset descriptions (`BuiltinPreset`, where the official weights come from) are plain
data; loading, fetching and converting them is `keras_pbasr.presets`' job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras

from keras_pbasr.models.backbone import SRBackbone
from keras_pbasr.weights.artifacts import PyPIArtifact


@dataclass(frozen=True)
class Architecture:
    """One registered backbone: its short name, class and checkpoint converter names."""

    name: str
    cls: type[SRBackbone]
    converters: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointSource:
    """Where an official PyTorch checkpoint is published."""

    url: str
    file_name: str
    # None where no trustworthy digest is known; never guessed.
    sha256: str | None = None
    sha256_note: str = ""


@dataclass(frozen=True)
class NcnnSource:
    """Official weights in ncnn format inside a pinned PyPI artifact."""

    artifact: PyPIArtifact
    param_member: str  # path inside the wheel
    bin_member: str
    param_sha256: str
    bin_sha256: str


@dataclass(frozen=True)
class BuiltinPreset:
    """One official model: its constructor config and checkpoint source. The class is set by
    `register_presets` (presets are written in the family folder without it)."""

    name: str
    description: str
    config: dict
    source: CheckpointSource
    convert_arch: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    ncnn: NcnnSource | None = None
    content: str = "photo"  # photo / anime / video: what the model was trained for
    licence: str = ""  # SPDX identifier of the upstream licence
    licence_file: str = ""  # notice in keras_pbasr/presets/licenses/
    upstream: str = ""
    cls: type[keras.Model] | None = None

    @property
    def registered_name(self) -> str:
        """`keras_pbasr>ClassName`, as config.json names the class."""
        return keras.saving.get_registered_name(self.cls)

    @property
    def module(self) -> str:
        return self.cls.__module__

    def convert_command(self, checkpoint: str | None = None) -> str:
        target = f"~/.keras/keras_pbasr/presets/{self.name}"
        if os.environ.get("KERAS_HOME"):
            target = str(cache_dir() / self.name)
        # An option the .pth cannot tell (animevideov3 x2 / x3 are the x4 network resized).
        extra = f" --set outscale={self.config['outscale']}" if "outscale" in self.config else ""
        return (
            f"pbasr convert {checkpoint or self.source.file_name} {target} "
            f"--arch {self.convert_arch}{extra}"
        )

    def keras_config(self) -> dict:
        """What `keras.saving.serialize_keras_object` would write to config.json."""
        return {
            "module": self.module,
            "class_name": self.cls.__name__,
            "config": {"name": self.name.replace("-", "_"), "trainable": True, **self.config},
            "registered_name": self.registered_name,
        }


def cache_dir() -> Path:
    """Where converted official presets live: $KERAS_HOME or ~/.keras, then keras_pbasr/presets."""
    home = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()
    return home / "keras_pbasr" / "presets"


# {short name: Architecture}, filled by the family packages on import.
BACKBONES: dict[str, Architecture] = {}
# {preset name: BuiltinPreset}, filled by the family packages on import.
BUILTIN_PRESETS: dict[str, BuiltinPreset] = {}
# The classes a preset's config.json may name: {registered name: class}
# (`keras_pbasr.presets.preset_io`).
PRESET_CLASSES: dict[str, type[keras.Model]] = {}


def register_preset_class(cls: type[keras.Model]) -> type[keras.Model]:
    """Allows presets (config.json) to name `cls`; backbones are allowed by registering."""
    PRESET_CLASSES[keras.saving.get_registered_name(cls)] = cls
    return cls


def register_backbone(name: str, cls: type[SRBackbone], converters: tuple[str, ...] = ()) -> None:
    """Registers a backbone class under a short name (what `--arch` takes).

    Example:
    >>> from keras_pbasr.models import SRVGGNetCompact
    >>> BACKBONES["srvgg"].cls is SRVGGNetCompact
    True
    """
    if not issubclass(cls, SRBackbone):
        raise TypeError(f"{cls.__name__} is not an SRBackbone")
    if name in BACKBONES and BACKBONES[name].cls is not cls:
        raise ValueError(f"backbone name {name!r} is already taken by {BACKBONES[name].cls}")
    BACKBONES[name] = Architecture(name, cls, tuple(converters))
    register_preset_class(cls)


def register_presets(presets: list[BuiltinPreset], cls: type[keras.Model]) -> None:
    """Adds a family's built-in presets, bound to the class they build."""
    for preset in presets:
        if preset.name in BUILTIN_PRESETS:
            raise ValueError(f"preset name {preset.name!r} is registered twice")
        BUILTIN_PRESETS[preset.name] = replace(preset, cls=cls)


def backbone_by_class_name(class_name: str) -> type[SRBackbone]:
    """The registered backbone class called `class_name` (as `pbasr train` configs name it).

    Example:
    >>> backbone_by_class_name("RRDBNet").__name__
    'RRDBNet'
    """
    for architecture in BACKBONES.values():
        if architecture.cls.__name__ == class_name:
            return architecture.cls
    known = sorted(a.cls.__name__ for a in BACKBONES.values())
    raise ValueError(f"unknown backbone class {class_name!r}; registered: {', '.join(known)}")
