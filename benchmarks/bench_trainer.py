"""Train-step time of PBaSRTrainer (two branches on the mixed batch) against a single-branch
Real-ESRGAN-style GAN step (one generator + U-Net D on the whole batch), SRVGGNetCompact
(realesr-general-x4v3 size) and a 6-block RRDBNet, batch 4, 128x128 HR, x4; plus the cost of one
CrossFusion call and its share of the step time at interval 20.

    KERAS_BACKEND=jax python -m benchmarks trainer [--quick]
Quick mode: 64x64 HR, a 16-channel SRVGG and 16-channel discriminators (checks that the
benchmark runs; its numbers mean nothing).
"""

from __future__ import annotations

from benchmarks.trainer_common import build_trainer, mixed_batch

CFM_INTERVAL = 20


def run(bench) -> None:
    from keras_pbasr.trainer import CrossFusion

    hr_size = 64 if bench.quick else 128
    backbones = ["srvgg-tiny"] if bench.quick else ["srvgg", "rrdb6"]
    d_feat = 16 if bench.quick else 64
    batch = mixed_batch(4, hr_size, 4)
    for backbone in backbones:
        group = f"{backbone} batch 4 HR {hr_size}"
        single = build_trainer(backbone, blur_ratio=0.0, d_feat=d_feat)
        reference = bench.measure(
            group, "single-branch GAN step", lambda t=single: t.train_on_batch(batch),
            reference=True, warmup=2, repeats=5,
        )
        pbasr = build_trainer(backbone, blur_ratio=0.5, d_feat=d_feat)
        step = bench.measure(
            group, "PBaSR step", lambda t=pbasr: t.train_on_batch(batch), warmup=2, repeats=5
        )
        cfm = CrossFusion(interval=CFM_INTERVAL)
        wg, wb = pbasr.generator_branch_weights()
        fusion = bench.measure(
            group, "CrossFusion call", lambda c=cfm, g=wg, b=wb: c.fuse_variables(g, b),
            warmup=2, repeats=10,
        )
        bench.note(
            f"{group}: PBaSR / single-branch = {step.median_s / reference.median_s:.2f}x "
            f"(goal <= 2.1); CrossFusion {1e3 * fusion.median_s:.2f} ms per call = "
            f"{100 * fusion.median_s / CFM_INTERVAL / step.median_s:.3f}% of a step at interval "
            f"{CFM_INTERVAL} (goal < 1%)"
        )
