"""Built-in SRFormer presets: PBaSR-SRFormer."""

from __future__ import annotations

from keras_pbasr.models.preset_sources import PARALLEL_NET_NOTE, PBASR_DRIVE
from keras_pbasr.models.registry import BuiltinPreset

PRESETS = [
    BuiltinPreset(
        name="pbasr_srformer",
        description="PBaSR-SRFormer: SRFormer x4 (window 22, nearest+conv) with PBaSR weights",
        config=dict(
            upscale=4,
            window_size=22,
            depths=[6, 6, 6, 6, 6, 6],
            embed_dim=180,
            num_heads=[6, 6, 6, 6, 6, 6],
            mlp_ratio=2.0,
            upsampler="nearest+conv",
            resi_connection="1conv",
        ),
        source=PBASR_DRIVE,
        convert_arch="srformer",
        notes=(PARALLEL_NET_NOTE,),
    ),
]
