"""A batch of x4plus tiles on one JAX CPU device against the same batch split over several.

    python -m benchmarks.jax_devices [--size 64] [--batch 4] [--devices 2]

Starts JAX with `--devices` host CPU devices (XLA_FLAGS, set here before JAX starts), then
runs one jitted x4plus forward on a batch of random tiles twice, after a warm-up each: all
on the default device, and split along the batch over every device (what
`keras_pbasr.inference.jax_sharding` does inside `upscale`). Prints the wall and CPU seconds
of each and the largest output difference (0 expected: each tile is computed alike).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jax_devices")
    parser.add_argument("--preset", default="realesrgan_x4plus")
    parser.add_argument("--size", type=int, default=64, help="tile side, LR pixels")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--devices", type=int, default=2)
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={args.devices}")
    import jax
    import numpy as np

    from keras_pbasr.inference.jax_sharding import shard_batch
    from keras_pbasr.presets import from_preset
    from keras_pbasr.utils.compiled_call import compiled_model_call

    forward = compiled_model_call(from_preset(args.preset))
    tiles = np.random.default_rng(0).random((args.batch, args.size, args.size, 3), "float32")
    sharded, _ = shard_batch(tiles)
    result = {"preset": args.preset, "size": args.size, "batch": args.batch,
              "devices": len(jax.local_devices()), "load1": round(os.getloadavg()[0], 2)}
    outputs = {}
    for name, x in (("one_device", tiles), ("split", sharded)):
        np.asarray(forward(x))  # compile
        cpu, wall = time.process_time(), time.perf_counter()
        outputs[name] = np.asarray(forward(x))[: args.batch]
        result[f"{name}_wall_s"] = round(time.perf_counter() - wall, 3)
        result[f"{name}_cpu_s"] = round(time.process_time() - cpu, 2)
    result["max_diff"] = float(np.abs(outputs["split"] - outputs["one_device"]).max())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
