"""`pbasr export PRESET OUTPUT --format saved_model|onnx`: a deployable inference graph."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_pbasr.utils.atomic_files import check_writable_folder, refuse_same_file


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a preset as a TF SavedModel or an ONNX file",
        description="Export PRESET (a built-in name, a preset directory, hf://, kaggle:// or "
        "https://...#sha256=HEX) to OUTPUT. The graph takes float32 (batch, H, W, 3) RGB in "
        "[0, 1], every dimension dynamic. Works from every Keras backend: routes the current "
        "backend lacks re-export the model under TensorFlow or torch in a subprocess.",
    )
    p.add_argument("preset", help="preset name or directory")
    p.add_argument("output", type=Path, help="SavedModel directory, or a .onnx file")
    p.add_argument("--format", choices=("saved_model", "onnx"), default=None,
                   help="default: onnx when OUTPUT ends with .onnx, else saved_model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keras_pbasr.export import ExportError, export
    from keras_pbasr.presets import from_preset

    fmt = args.format or ("onnx" if args.output.suffix == ".onnx" else "saved_model")
    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    refuse_same_file(args.output, [args.preset])
    check_writable_folder(args.output.parent)
    model = from_preset(args.preset)
    try:
        # The export is built beside OUTPUT and replaces it only once complete.
        path = export(model, args.output, format=fmt)
    except ExportError as exc:
        print(f"pbasr: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {fmt} to {path}")
    return 0
