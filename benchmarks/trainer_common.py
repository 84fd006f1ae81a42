"""Shared pieces of the trainer benchmarks (CPU harness and the self-contained GPU script)."""

from __future__ import annotations

import numpy as np


def mixed_batch(batch: int, hr_size: int, scale: int, seed: int = 0) -> dict:
    """A numpy PBaSR batch: general samples first, blur samples (half-blurred masks) last."""
    rng = np.random.default_rng(seed)
    lr_size = hr_size // scale
    n_blur = round(batch * 0.5)
    mask = np.ones((batch, hr_size, hr_size, 1), "float32")
    mask[batch - n_blur :, : hr_size // 2] = 0.0
    return {
        "lr": rng.random((batch, lr_size, lr_size, 3), dtype="float32"),
        "hr": rng.random((batch, hr_size, hr_size, 3), dtype="float32"),
        "mask": mask,
        "is_blur": np.array([0.0] * (batch - n_blur) + [1.0] * n_blur, "float32"),
    }


def build_backbone(name: str, scale: int = 4):
    from keras_pbasr.models import RRDBNet, SRVGGNetCompact

    if name == "srvgg":
        return SRVGGNetCompact(num_feat=64, num_conv=32, upscale=scale)
    if name == "srvgg-tiny":  # for --quick runs that only check the benchmark works
        return SRVGGNetCompact(num_feat=16, num_conv=4, upscale=scale)
    if name.startswith("rrdb"):
        return RRDBNet(scale=scale, num_block=int(name[4:]))
    raise ValueError(f"unknown backbone {name!r}")


def build_trainer(backbone: str, blur_ratio: float, scale: int = 4, d_feat: int = 64):
    """A compiled trainer: blur_ratio 0.5 = PBaSR, 0.0 = one-branch Real-ESRGAN-style GAN step.
    Perceptual loss off (no VGG weights offline); everything else as the default recipe."""
    from keras_pbasr.models import ConditionalUNetDiscriminatorSN, UNetDiscriminatorSN
    from keras_pbasr.trainer import PBaSRTrainer

    d_general = UNetDiscriminatorSN(num_feat=d_feat) if blur_ratio < 1 else None
    d_blur = ConditionalUNetDiscriminatorSN(num_feat=d_feat) if blur_ratio > 0 else None
    trainer = PBaSRTrainer(
        build_backbone(backbone, scale),
        discriminator_general=d_general,
        discriminator_blur=d_blur,
        blur_ratio=blur_ratio,
        ema_decay=0.999,
    )
    trainer.compile(perceptual_weight=0.0)
    return trainer
