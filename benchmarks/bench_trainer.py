"""Train-step time of PBaSRTrainer (two branches on the mixed batch) against a single-branch
Real-ESRGAN-style GAN step (one generator + U-Net D on the whole batch), SRVGGNetCompact
(realesr-general-x4v3 size) and a 6-block RRDBNet, batch 4, 128x128 HR, x4; plus the cost of one
CrossFusion call and its share of the PBaSR step time at interval 20.

    KERAS_BACKEND=jax python -m benchmarks trainer [--quick]

The two steps are timed in alternating rounds (single, PBaSR, single, ...) so that the load of a
shared machine weighs on both alike; the note gives the ratio of the medians and the median of
the per-round ratios. Both trainers use the default recipe with EMA on and the perceptual loss
off (no VGG weights offline). Quick mode: 64x64 HR, a 16-channel SRVGG and 16-channel
discriminators (checks that the benchmark runs; its numbers mean nothing).
"""

from __future__ import annotations

import os
import statistics

from benchmarks.trainer_common import build_trainer, mixed_batch

CFM_INTERVAL = 20
RATIO_GOAL = 2.1
BATCH = 4
SCALE = 4


def _threads() -> str:
    """The thread settings that shape CPU timings (recorded with the results)."""
    import keras

    names = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "XLA_FLAGS")
    parts = [f"{name}={os.environ.get(name, 'unset')}" for name in names]
    if keras.backend.backend() == "torch":
        import torch

        parts.append(f"torch intra-op threads {torch.get_num_threads()}")
    return ", ".join(parts)


def run(bench) -> None:
    import keras

    from keras_pbasr.trainer import CrossFusion

    hr_size = 64 if bench.quick else 128
    backbones = ["srvgg-tiny"] if bench.quick else ["srvgg", "rrdb6"]
    d_feat = 16 if bench.quick else 64
    batch = mixed_batch(BATCH, hr_size, SCALE)
    bench.note(f"threads: {_threads()}; load average at start {os.getloadavg()}")
    for backbone in backbones:
        group = f"{backbone} batch {BATCH} HR {hr_size}"
        single = build_trainer(backbone, blur_ratio=0.0, d_feat=d_feat)
        pbasr = build_trainer(backbone, blur_ratio=0.5, d_feat=d_feat)
        steps = bench.measure_interleaved(
            group,
            {
                "single-branch GAN step": lambda t=single: t.train_on_batch(batch),
                "PBaSR step": lambda t=pbasr: t.train_on_batch(batch),
            },
            reference="single-branch GAN step",
            # One warm-up round (it holds the tracing / XLA compile) and 3 timed rounds keep a
            # backend's run near 10 minutes on a shared 2-core machine.
            warmup=1,
            repeats=3,
        )
        reference, step = steps["single-branch GAN step"], steps["PBaSR step"]
        per_round = [p / s for p, s in zip(step.samples_s, reference.samples_s)]

        cfm = CrossFusion(interval=CFM_INTERVAL)
        wg, wb = pbasr.generator_branch_weights()

        def fuse(c=cfm, g=wg, b=wb):
            # Reading lam back waits for the fusion (JAX dispatches asynchronously), as the
            # callback does when it logs cfm_lambda.
            return float(keras.ops.convert_to_numpy(c.fuse_variables(g, b)[1]))

        fusion = bench.measure(f"{group} CFM", "CrossFusion call", fuse, warmup=1, repeats=5)
        share = fusion.median_s / CFM_INTERVAL / step.median_s
        bench.note(
            f"{group}: PBaSR / single-branch = {step.median_s / reference.median_s:.2f}x "
            f"(ratio of medians; median of per-round ratios {statistics.median(per_round):.2f}x, "
            f"range {min(per_round):.2f}-{max(per_round):.2f}; goal <= {RATIO_GOAL}); "
            f"CrossFusion {1e3 * fusion.median_s:.2f} ms per call = {100 * share:.3f}% of a "
            f"PBaSR step amortised over interval {CFM_INTERVAL} (goal < 1%), "
            f"{100 * fusion.median_s / step.median_s:.2f}% of the step it follows"
        )
    bench.note(f"load average at end {os.getloadavg()}")
