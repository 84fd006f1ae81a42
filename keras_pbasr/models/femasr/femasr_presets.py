"""Built-in FeMaSR presets: PBaSR-FeMaSR."""

from __future__ import annotations

from keras_pbasr.models.preset_sources import PARALLEL_NET_NOTE, PBASR_DRIVE
from keras_pbasr.models.registry import BuiltinPreset

PRESETS = [
    BuiltinPreset(
        name="pbasr_femasr",
        description="PBaSR-FeMaSR: FeMaSR x4 (VQ codebook 1024x512) with PBaSR weights",
        config=dict(upscale=4, codebook_size=1024, code_dim=512),
        source=PBASR_DRIVE,
        convert_arch="femasr",
        notes=(
            f"{PARALLEL_NET_NOTE} (the frozen codebook and decoder are in it too)",
            "training it further also needs FeMaSR's HQ stage as the code prior "
            "(FeMaSR_HRP_model_g.pth from https://github.com/chaofengc/FeMaSR/releases/"
            "download/v0.1-pretrain_models/FeMaSR_HRP_model_g.pth)",
        ),
    ),
]
