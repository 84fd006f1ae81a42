"""Parity of the fetched official presets with the ncnn runtime, on the current Keras backend.

    KERAS_BACKEND=jax python -m benchmarks.ncnn_parity --image IMG [--size 64] [--artifacts DIR]

For every preset with a pinned ncnn source: converts the official .param/.bin (read from the
wheel) with keras_pbasr, runs both on the same centre crop of IMG (RGB in [0, 1]) and prints
one JSON line: max and mean absolute difference of the float outputs, and the share of 8-bit
output values (clip, x255, round) that differ, with the largest 8-bit difference. ncnn runs
on CPU (use_vulkan_compute False) with its default options (float16 storage of the weights,
float32 arithmetic on this CPU).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from keras_pbasr.convert.ncnn import read_ncnn_model
from keras_pbasr.convert.ncnn_conversion import ncnn_to_model
from keras_pbasr.models import BUILTIN_PRESETS
from keras_pbasr.weights.artifacts import locate_artifact, read_member


def run_ncnn(param: Path, image: np.ndarray) -> np.ndarray:
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))  # ncnn.Mat wraps this memory
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(chw))
    _, out = extractor.extract("output")
    return np.array(out).transpose(1, 2, 0).copy()


def parity(reference: np.ndarray, got: np.ndarray) -> dict:
    diff = np.abs(got - reference)
    ref8 = np.round(np.clip(reference, 0, 1) * 255)
    got8 = np.round(np.clip(got, 0, 1) * 255)
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "share_8bit_off": float(np.mean(ref8 != got8)),
        "max_8bit_off": int(np.abs(ref8 - got8).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ncnn_parity")
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--size", type=int, default=64, help="side of the centre crop")
    parser.add_argument("--artifacts", default=None, help="folder holding the wheels")
    parser.add_argument("--presets", nargs="*", default=None)
    args = parser.parse_args()
    image = np.asarray(Image.open(args.image).convert("RGB"), np.float32) / 255.0
    top = (image.shape[0] - args.size) // 2
    left = (image.shape[1] - args.size) // 2
    crop = np.ascontiguousarray(image[top : top + args.size, left : left + args.size])
    names = args.presets or [n for n, p in BUILTIN_PRESETS.items() if p.ncnn is not None]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            source = BUILTIN_PRESETS[name].ncnn
            wheel = locate_artifact(source.artifact, args.artifacts, Path(tmp))
            param = Path(tmp) / Path(source.param_member).name
            param.write_bytes(read_member(wheel, source.param_member))
            param.with_suffix(".bin").write_bytes(read_member(wheel, source.bin_member))
            model, _ = ncnn_to_model(read_ncnn_model(param))
            start = time.perf_counter()
            reference = run_ncnn(param, crop)
            ncnn_s = time.perf_counter() - start
            start = time.perf_counter()
            got = keras.ops.convert_to_numpy(model(crop[None]))[0]
            keras_s = time.perf_counter() - start
            print(json.dumps({
                "preset": name, "backend": keras.backend.backend(),
                "input": f"{args.image.name} centre {args.size}x{args.size}",
                "output": list(got.shape), **parity(reference, got),
                "ncnn_s": round(ncnn_s, 2), "keras_first_call_s": round(keras_s, 2),
            }), flush=True)


if __name__ == "__main__":
    main()
