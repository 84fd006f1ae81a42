"""PBaSRTrainer iterations per second on a GPU machine without TensorFlow (numpy batches).

    KERAS_BACKEND=torch python benchmarks/gpu_trainer.py [--backbone rrdb23] [--batch 16]
    KERAS_BACKEND=jax   python benchmarks/gpu_trainer.py --steps 20

Times PBaSR (two branches on the mixed batch) and the single-branch Real-ESRGAN-style GAN step
(same backbone, whole batch) after warm-up, and prints one JSON object. Defaults: RRDBNet 23
blocks x4, batch 16, 256x256 HR, perceptual loss off (no VGG weights needed), EMA on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def iterations_per_second(trainer, batch, warmup: int, steps: int) -> float:
    import keras

    for _ in range(warmup):
        logs = trainer.train_on_batch(batch, return_dict=True)
    keras.ops.convert_to_numpy(trainer.generator(trainer.branches[0]).weights[0])
    start = time.perf_counter()
    for _ in range(steps):
        logs = trainer.train_on_batch(batch, return_dict=True)
    # train_on_batch returns host floats, so the device work is finished here.
    del logs
    return steps / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="rrdb23", help="srvgg or rrdbN (N blocks)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hr", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)

    import keras

    from benchmarks.trainer_common import build_trainer, mixed_batch
    from keras_pbasr.utils.environment import environment_info

    batch = mixed_batch(args.batch, args.hr, 4)
    result = {
        "benchmark": "gpu_trainer",
        "backend": keras.backend.backend(),
        "backbone": args.backbone,
        "batch": args.batch,
        "hr_size": args.hr,
        "steps": args.steps,
        "environment": environment_info(),
    }
    for name, ratio in (("single_branch", 0.0), ("pbasr", 0.5)):
        trainer = build_trainer(args.backbone, blur_ratio=ratio)
        result[f"{name}_it_per_s"] = iterations_per_second(trainer, batch, args.warmup, args.steps)
        del trainer
        keras.backend.clear_session()
    result["pbasr_step_over_single_branch"] = (
        result["single_branch_it_per_s"] / result["pbasr_it_per_s"]
    )
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
