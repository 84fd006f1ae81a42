"""`pbasr blurmap INPUT OUTPUT_DIR`: blur masks (0 = blurred, 255 = sharp) for images without."""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

from keras_pbasr.utils.atomic_files import (
    check_writable_folder,
    output_folder,
    refuse_same_file,
    write_text_atomic,
)
from keras_pbasr.utils.image_files import SkippedFiles, collect_inputs


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "blurmap",
        help="estimate blur masks (0 = blurred, 255 = sharp) for images that have none",
        description="Estimate blur masks for an image file or a folder of images. Each mask is "
        "written as OUTPUT_DIR/<stem>.png (0 = blurred, 255 = sharp, the ReBlurSR convention). "
        "The default estimator is training-free (multi-scale LBP sharpness, Yi & Eramian 2016, "
        "with guided-filter refinement); --detector uses a learned Keras model instead. "
        "Outputs are checked before any estimation and written atomically. An unreadable, "
        "too small or too large image is skipped with one line; the others are processed, "
        "stats.csv lists those that succeeded, and the exit status is 1.",
    )
    p.add_argument("input", type=Path, help="image file or folder")
    p.add_argument("output_dir", type=Path, help="folder for the masks")
    p.add_argument("--soft", action="store_true", help="also write <stem>_soft.png maps")
    p.add_argument(
        "--stats", action="store_true",
        help="write stats.csv: blurred fraction and ReBlurSR area class per image",
    )
    p.add_argument("--detector", type=Path, help="a .keras blur detector model")
    p.add_argument("--threshold", type=float, help="fixed threshold instead of Otsu's")
    p.add_argument("--recursive", action="store_true",
                   help="also estimate the images in INPUT's sub-folders (stems must stay unique)")
    p.add_argument("--overwrite", action="store_true", help="replace existing masks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from keras_pbasr.blurmap import KerasBlurDetector, area_class, estimate
    from keras_pbasr.inference.image_io import write_image

    files = collect_inputs(args.input, args.recursive)
    stems = [f.stem for f in files]
    dupes = {s for s in stems if stems.count(s) > 1}
    if dupes:
        raise ValueError(f"several input images share the stem(s) {sorted(dupes)[:5]}: "
                         "masks are named by stem, so give one folder per set")
    outputs = [args.output_dir / f"{f.stem}.png" for f in files]
    planned = [*outputs, *(out.with_name(f"{out.stem}_soft.png") for out in outputs
                           if args.soft)]
    if args.stats:
        planned.append(args.output_dir / "stats.csv")
    for out in planned:
        refuse_same_file(out, files)
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    check_writable_folder(args.output_dir)
    detector = KerasBlurDetector(args.detector) if args.detector else None

    rows = []
    skipped = SkippedFiles("blurmap", skip_types=(ValueError,))
    start = time.perf_counter()
    with output_folder(args.output_dir):
        try:
            for i, (src, out) in enumerate(zip(files, outputs), 1):
                result = skipped.attempt(
                    src, lambda src=src: estimate(src, detector=detector,
                                                  threshold=args.threshold))
                if result is None:
                    continue
                write_image(out, result.mask)
                if args.soft:
                    soft = np.round(result.sharpness * 255).astype(np.uint8)
                    write_image(out.with_name(f"{src.stem}_soft.png"), soft)
                fraction = result.blurred_fraction
                rows.append((src.name, f"{fraction:.4f}", area_class(fraction)))
                print(f"[{i}/{len(files)}] {src.name}: {fraction:.1%} blurred", file=sys.stderr)
        finally:
            if args.stats and rows:
                write_stats(args.output_dir / "stats.csv", rows)
    print(f"wrote {len(rows)} masks to {args.output_dir} in "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.stats and rows:
        print(f"wrote {args.output_dir / 'stats.csv'} ({len(rows)} images)", file=sys.stderr)
    if len(skipped):
        print(skipped.summary(len(files)), file=sys.stderr)
    return skipped.exit_code


def write_stats(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """stats.csv: image, blurred_fraction, area_class (one row per mask written)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["image", "blurred_fraction", "area_class"])
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())
