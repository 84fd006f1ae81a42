"""Low-precision inference: PSNR against float32 and speed, per preset, on real photos.

    KERAS_BACKEND=torch python -m benchmarks.precision_quality [--precision mixed_bfloat16]
        [--presets realesrgan_x4plus,realesr_animevideov3_x4] [--size 64] [--threads 2]

For every photo of shared/data/real_lr (3-channel ones; a centre crop of --size pixels to
keep the run short), `upscale(model, crop, tile=None)` with float32 and with --precision:
PSNR of the low-precision 8-bit output against the float32 8-bit output, the largest 8-bit
difference, and the wall / CPU seconds of one call each (after a warm-up). Prints markdown
rows and a summary line per preset.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from keras_pbasr.inference import upscale
from keras_pbasr.presets import from_preset

DATA_DIR = Path(os.environ.get("PBASR_SHARED_DATA", "/work/shared/data"))


def psnr_8bit(reference: np.ndarray, got: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when identical).

    >>> psnr_8bit(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8))
    0.0
    """
    mse = np.mean((reference.astype(np.float64) - got.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _timed(fn, *args, **kwargs):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision_quality")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--presets", default="realesrgan_x4plus,realesr_animevideov3_x4")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import keras

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(args.threads)
    photos = []
    for path in sorted((DATA_DIR / "real_lr").iterdir()):
        with Image.open(path) as img:
            if img.mode != "RGB":
                continue
            rgb = np.asarray(img)
        top, left = (rgb.shape[0] - args.size) // 2, (rgb.shape[1] - args.size) // 2
        photos.append((path.name, rgb[top : top + args.size, left : left + args.size]))
    print(f"backend {keras.backend.backend()}, {args.threads} threads, load1 "
          f"{os.getloadavg()[0]:.2f}, centre {args.size}x{args.size} crops\n")
    print("| preset | photo | PSNR dB | max 8-bit diff | float32 s (CPU-s) | "
          f"{args.precision} s (CPU-s) |\n|---|---|---:|---:|---:|---:|")
    for preset in args.presets.split(","):
        model = from_preset(preset)
        upscale(model, photos[0][1], tile=None)
        upscale(model, photos[0][1], tile=None, precision=args.precision)
        psnrs, speedups = [], []
        for name, rgb in photos:
            ref, ref_s, ref_cpu = _timed(upscale, model, rgb, tile=None)
            low, low_s, low_cpu = _timed(upscale, model, rgb, tile=None,
                                         precision=args.precision)
            psnrs.append(psnr_8bit(ref, low))
            speedups.append(ref_cpu / low_cpu)
            diff = int(np.abs(ref.astype(int) - low.astype(int)).max())
            print(f"| {preset} | {name} | {psnrs[-1]:.2f} | {diff} | {ref_s:.2f} ({ref_cpu:.2f})"
                  f" | {low_s:.2f} ({low_cpu:.2f}) |", flush=True)
        print(f"\n{preset}: PSNR min {min(psnrs):.2f} dB, median {np.median(psnrs):.2f} dB; "
              f"CPU-s speed-up median {np.median(speedups):.2f}x\n", flush=True)


if __name__ == "__main__":
    main()
