"""Built-in presets: the official model families, with where their checkpoints come from.

The official weights cannot ship with the package (licences, size, and they live outside the
package registries), so each entry records the architecture and its config, the official
checkpoint's source, and the `pbasr convert` command that turns the downloaded file into a
preset directory in the local cache. `from_preset(NAME)` then loads that directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CheckpointSource:
    """Where an official PyTorch checkpoint is published."""

    url: str
    file_name: str
    # None where no trustworthy digest is known; never guessed.
    sha256: str | None = None
    sha256_note: str = ""


@dataclass(frozen=True)
class BuiltinPreset:
    """One official model: its Keras class, constructor config and checkpoint source."""

    name: str
    description: str
    registered_name: str
    module: str
    config: dict
    source: CheckpointSource
    convert_arch: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def convert_command(self, checkpoint: str | None = None) -> str:
        target = f"~/.keras/keras_pbasr/presets/{self.name}"
        if os.environ.get("KERAS_HOME"):
            target = str(cache_dir() / self.name)
        return (
            f"pbasr convert {checkpoint or self.source.file_name} {target} "
            f"--arch {self.convert_arch}"
        )

    def keras_config(self) -> dict:
        """What `keras.saving.serialize_keras_object` would write to config.json."""
        return {
            "module": self.module,
            "class_name": self.registered_name.split(">")[-1],
            "config": {"name": self.name.replace("-", "_"), "trainable": True, **self.config},
            "registered_name": self.registered_name,
        }


def cache_dir() -> Path:
    """Where converted official presets live: $KERAS_HOME or ~/.keras, then keras_pbasr/presets."""
    home = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()
    return home / "keras_pbasr" / "presets"


_RRDBNET_X4 = dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
_SRFORMER_PBASR = dict(
    upscale=4,
    window_size=22,
    depths=[6, 6, 6, 6, 6, 6],
    embed_dim=180,
    num_heads=[6, 6, 6, 6, 6, 6],
    mlp_ratio=2.0,
    upsampler="nearest+conv",
    resi_connection="1conv",
)
_PBASR_DRIVE = CheckpointSource(
    url="https://drive.google.com/drive/folders/1ZEOM54_xQAjoYgOj3wq_N9VuzCEKPV7o",
    file_name="<the PBaSR checkpoint from that folder>.pth",
    sha256=None,
    sha256_note="not published; the files sit in a Google Drive folder linked from "
    "github.com/Imalne/PBaSR",
)

BUILTIN_PRESETS: dict[str, BuiltinPreset] = {
    preset.name: preset
    for preset in [
        BuiltinPreset(
            name="realesrgan_x4plus",
            description="Real-ESRGAN x4plus: RRDBNet, 23 blocks, 16.7M parameters (GAN stage)",
            registered_name="keras_pbasr>RRDBNet",
            module="keras_pbasr.models.rrdbnet.rrdbnet_backbone",
            config=_RRDBNET_X4,
            source=CheckpointSource(
                url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/"
                "RealESRGAN_x4plus.pth",
                file_name="RealESRGAN_x4plus.pth",
                sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
                sha256_note="as published by several independent projects; not recomputed here",
            ),
            convert_arch="rrdbnet",
        ),
        BuiltinPreset(
            name="realesr_general_x4v3",
            description="realesr-general-x4v3: SRVGGNetCompact, 32 convs, 1.2M parameters",
            registered_name="keras_pbasr>SRVGGNetCompact",
            module="keras_pbasr.models.srvgg.srvgg_backbone",
            config=dict(
                num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu"
            ),
            source=CheckpointSource(
                url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/"
                "realesr-general-x4v3.pth",
                file_name="realesr-general-x4v3.pth",
                sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
                sha256_note="as published by several independent projects; not recomputed here",
            ),
            convert_arch="srvgg",
        ),
        BuiltinPreset(
            name="pbasr_esrgan",
            description="PBaSR-ESRGAN: RRDBNet x4 with the deployed (averaged) PBaSR weights",
            registered_name="keras_pbasr>RRDBNet",
            module="keras_pbasr.models.rrdbnet.rrdbnet_backbone",
            config=_RRDBNET_X4,
            source=_PBASR_DRIVE,
            convert_arch="rrdbnet",
            notes=("a ParallelNet checkpoint: the converter averages its two branches",),
        ),
        BuiltinPreset(
            name="pbasr_srformer",
            description="PBaSR-SRFormer: SRFormer x4 (window 22, nearest+conv) with PBaSR weights",
            registered_name="keras_pbasr>SRFormer",
            module="keras_pbasr.models.srformer.srformer_backbone",
            config=_SRFORMER_PBASR,
            source=_PBASR_DRIVE,
            convert_arch="srformer",
            notes=("a ParallelNet checkpoint: the converter averages its two branches",),
        ),
        BuiltinPreset(
            name="pbasr_femasr",
            description="PBaSR-FeMaSR: FeMaSR x4 (VQ codebook 1024x512) with PBaSR weights",
            registered_name="keras_pbasr>FeMaSR",
            module="keras_pbasr.models.femasr.femasr_backbone",
            config=dict(upscale=4, codebook_size=1024, code_dim=512),
            source=_PBASR_DRIVE,
            convert_arch="femasr",
            notes=(
                "a ParallelNet checkpoint: the converter averages its two branches (the frozen "
                "codebook and decoder are in it too)",
                "training it further also needs FeMaSR's HQ stage as the code prior "
                "(FeMaSR_HRP_model_g.pth from https://github.com/chaofengc/FeMaSR/releases/"
                "download/v0.1-pretrain_models/FeMaSR_HRP_model_g.pth)",
            ),
        ),
    ]
}
