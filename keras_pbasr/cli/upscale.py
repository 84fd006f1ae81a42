"""`pbasr upscale INPUT OUTPUT --preset NAME_OR_DIR`: super-resolve an image file or a folder."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from keras_pbasr.utils.atomic_files import check_writable_folder, output_folder, refuse_same_file
from keras_pbasr.utils.image_files import (
    SkippedFiles,
    check_image_suffix,
    collect_inputs,
    read_image_array,
)

# JAX CPU devices `pbasr upscale` asks for: one per core up to this many (each holds one tile
# of a batch in memory at a time).
MAX_HOST_DEVICES = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "upscale",
        help="super-resolve an image file or a folder of images with a preset",
        description="Super-resolve INPUT (an image file, or a folder whose images are processed; "
        "its sub-folders too with --recursive, mirrored in OUTPUT) into OUTPUT (a file, or a "
        "folder that is created). Grayscale stays "
        "grayscale, alpha is kept, 16-bit stays 16-bit. Images are processed in overlapping "
        "tiles so memory stays bounded. Existing outputs are never replaced without "
        "--overwrite, and an input is never written over (hard links included). Outputs are "
        "checked (known extension, writable folder) before the model loads; each file is "
        "written to a temporary name and renamed, so an interrupted run leaves the old file or "
        "none. In a folder run an unreadable or too large image (over $PBASR_MAX_IMAGE_PIXELS, "
        "default 32 million) is skipped with one line; the run goes on and exits with status 1.",
    )
    p.add_argument("input", type=Path, help="image file or folder")
    p.add_argument("output", type=Path, help="output file, or folder (for a folder INPUT)")
    p.add_argument(
        "--preset", required=True,
        help="a built-in name (keras_pbasr.presets.list_presets()), a preset directory, "
        "hf://OWNER/REPO, kaggle://OWNER/MODEL/FRAMEWORK/VARIATION or https://...#sha256=HEX",
    )
    p.add_argument("--tile", type=_auto_or_int, default="auto",
                   help="tile size in input pixels; 0 = whole image at once (the plain forward "
                   "pass, as Real-ESRGAN runs it); auto (default) = whole image up to 512x512 "
                   "input pixels, 256-pixel tiles above")
    p.add_argument("--tile-overlap", type=int, default=32,
                   help="pixels shared by neighbouring tiles (default 32)")
    p.add_argument("--outscale", type=float, default=None,
                   help="final scale (default: the network's); other values resize with Lanczos")
    p.add_argument("--alpha", choices=("model", "resize"), default="model",
                   help="upscale an alpha channel with the network or by resizing")
    p.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"),
                   default="float32")
    p.add_argument("--batch-size", type=_auto_or_int, default="auto",
                   help="tiles per forward pass; auto (default) = one per device on a CPU "
                   "(under JAX one device per core, up to 4), 4 on a GPU")
    p.add_argument("--ext", default=None,
                   help="output format for folders, e.g. png (default: the input's, or png "
                   "where the input's cannot hold the result)")
    p.add_argument("--recursive", action="store_true",
                   help="also upscale the images in INPUT's sub-folders (OUTPUT mirrors them)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--clip", action="store_true",
                   help="clip float input pixels to [0, 1] instead of refusing values outside")
    p.set_defaults(func=run)


def _output_suffix(source: Path, ext: str | None) -> str:
    if ext:
        return "." + ext.lower().lstrip(".")
    return source.suffix.lower()


def plan_outputs(input_path: Path, output: Path, ext: str | None,
                 recursive: bool = False) -> list[tuple[Path, Path]]:
    """(input, output) pairs; folder inputs map to OUTPUT/<stem><suffix> (with `recursive`,
    OUTPUT/<sub-folder>/<stem><suffix>)."""
    files = collect_inputs(input_path, recursive)
    if input_path.is_dir() or output.is_dir():
        if output.exists() and not output.is_dir():
            raise NotADirectoryError(f"{output} is a file; a folder INPUT needs a folder OUTPUT")
        root = input_path if input_path.is_dir() else input_path.parent
        pairs = [(f, output / f.relative_to(root).parent / f"{f.stem}{_output_suffix(f, ext)}")
                 for f in files]
    else:
        pairs = [(files[0], output.with_suffix("." + ext.lstrip(".")) if ext else output)]
    outputs = [out for _, out in pairs]
    if len(set(outputs)) != len(outputs):
        raise ValueError("several inputs share a stem and would write the same output; use --ext")
    for out in outputs:
        check_image_suffix(out)
        refuse_same_file(out, files)
    check_writable_folder(outputs[0].parent)
    return pairs


def _fit_suffix(out: Path, image) -> Path:
    """PNG where the chosen format cannot hold the result (alpha in JPEG, 16-bit colour)."""
    import numpy as np

    suffix = out.suffix.lower()
    has_alpha = image.ndim == 3 and image.shape[-1] == 4
    sixteen = image.dtype == np.uint16
    if (has_alpha and suffix in (".jpg", ".jpeg")) or (
        sixteen and suffix not in (".png", ".tif", ".tiff")
    ) or (sixteen and image.ndim == 3 and suffix != ".png"):
        return out.with_suffix(".png")
    return out


def run(args: argparse.Namespace) -> int:
    import keras

    from keras_pbasr.inference import upscale, write_image
    from keras_pbasr.inference.jax_sharding import request_host_devices
    from keras_pbasr.presets import from_preset

    if keras.backend.backend() == "jax":
        # Before JAX's first computation: one CPU device per core (at most MAX_HOST_DEVICES),
        # so that a batch of tiles runs on every core (see jax_sharding); upscale's "auto"
        # batch is one tile per device.
        request_host_devices(min(os.cpu_count() or 1, MAX_HOST_DEVICES))

    pairs = plan_outputs(args.input, args.output, args.ext, args.recursive)
    existing = [out for _, out in pairs if out.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(
            f"{len(existing)} output(s) exist, e.g. {existing[0]}; pass --overwrite to "
            "replace them"
        )
    model = from_preset(args.preset)

    inputs = [source for source, _ in pairs]
    start = time.perf_counter()
    total = len(pairs)
    skipped = SkippedFiles("upscale")
    with output_folder(pairs[0][1].parent):
        for index, (source, out) in enumerate(pairs, 1):
            label = f"[{index}/{total}] {source.name}"

            def progress(done: int, tiles: int, label: str = label) -> None:
                width = 24
                filled = width * done // tiles
                bar = "#" * filled + "." * (width - filled)
                print(f"\r{label} [{bar}] {done}/{tiles} tiles", end="", file=sys.stderr,
                      flush=True)

            image = skipped.attempt(source, lambda source=source: read_image_array(source))
            if image is None:
                continue
            try:
                result = upscale(
                    model, image, tile=args.tile, tile_overlap=args.tile_overlap,
                    outscale=args.outscale, alpha=args.alpha, precision=args.precision,
                    batch_size=args.batch_size, progress=progress, clip=args.clip,
                )
            except ValueError as error:
                raise ValueError(f"{source}: {error}") from error
            out = _fit_suffix(out, result)
            refuse_same_file(out, inputs)
            if out.exists() and not args.overwrite:
                raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
            out.parent.mkdir(parents=True, exist_ok=True)  # sub-folders with --recursive
            write_image(out, result)
            print(f"\r{label} -> {out} ({result.shape[1]}x{result.shape[0]})" + " " * 20,
                  file=sys.stderr)
    elapsed = time.perf_counter() - start
    print(f"upscaled {total - len(skipped)} of {total} image(s) in {elapsed:.1f} s",
          file=sys.stderr)
    if len(skipped):
        print(skipped.summary(total), file=sys.stderr)
    return skipped.exit_code


def _auto_or_int(value: str) -> int | str:
    """argparse type of --tile and --batch-size: 'auto' or a whole number."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {value!r}") from None
