"""`pbasr convert CHECKPOINT OUTPUT_DIR`: an official PyTorch checkpoint -> a preset directory."""

from __future__ import annotations

import argparse
import json
import sys

from keras_pbasr.convert import available_converters


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert an official PyTorch checkpoint (.pth) into a Keras preset directory",
        description="Convert a PyTorch checkpoint (Real-ESRGAN / BasicSR RRDBNet, ESRGAN / "
        "BSRGAN, SRVGGNetCompact, SRFormer, U-Net discriminators, PBaSR ParallelNet) into a "
        "preset directory (config.json, model.weights.h5, metadata.json). The file is read "
        "with torch.load(weights_only=True): no pickled code runs. PBaSR ParallelNet files "
        "give the deployed model 0.5*general + 0.5*defocus branch.",
    )
    p.add_argument("checkpoint", help="the .pth / .pt file, or an ncnn MODEL.param (its weights "
                   "are MODEL.bin beside it, or --bin)")
    p.add_argument("output_dir", help="the preset directory to write")
    p.add_argument("--arch", default=None,
                   help=f"architecture name: {', '.join(available_converters())} (default: "
                   "inferred from the keys)")
    p.add_argument("--key", default=None,
                   help="checkpoint entry holding the weights, e.g. params_ema or params "
                   "(default: params_ema, then params; params first for ParallelNet files)")
    p.add_argument("--non-strict", action="store_true",
                   help="convert what fits and report skipped keys instead of failing")
    p.add_argument("--save-branches", action="store_true",
                   help="ParallelNet files: also write general_branch/ and blur_branch/ presets "
                   "inside OUTPUT_DIR, to resume training from them")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="constructor argument the keys cannot tell, e.g. act_type=leakyrelu "
                   "(VALUE is parsed as JSON when it can be); repeatable")
    p.add_argument("--overwrite", action="store_true",
                   help="write into OUTPUT_DIR even if it is not empty")
    p.add_argument("--allow-non-finite", action="store_true",
                   help="convert a checkpoint with NaN or infinite weights (refused by default: "
                   "the model would output black images)")
    p.add_argument("--bin", dest="bin_path", default=None, metavar="FILE",
                   help="ncnn only: the .bin weights (default: the .param file's name with .bin)")
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            overrides[name] = json.loads(value)
        except json.JSONDecodeError:
            overrides[name] = value
    return overrides


def run(args: argparse.Namespace) -> int:
    from keras_pbasr.presets import convert_checkpoint
    from keras_pbasr.presets.preset_io import read_metadata

    if args.checkpoint.endswith(".param"):
        return run_ncnn(args)
    if args.bin_path:
        print("pbasr convert: error: --bin is for ncnn .param files only", file=sys.stderr)
        return 2
    output = convert_checkpoint(
        args.checkpoint,
        args.output_dir,
        arch=args.arch,
        strict=not args.non_strict,
        key=args.key,
        save_branches=args.save_branches,
        overwrite=args.overwrite,
        config_overrides=parse_overrides(args.overrides),
        allow_non_finite=args.allow_non_finite,
    )
    meta = read_metadata(output)
    conversion = meta.get("conversion", {})
    print(
        f"wrote {output}: {meta.get('class_name')} ({meta.get('arch')}), "
        f"{meta.get('parameter_count'):,} parameters, {conversion.get('assigned')} tensors "
        f"from {meta.get('source_file')} [{meta.get('source_state_dict_key') or 'state dict'}]"
    )
    skipped = [*conversion.get("missing", []), *conversion.get("unexpected", []),
               *(m["key"] for m in conversion.get("mismatched", []))]
    if skipped:
        print(f"non-strict: skipped {len(skipped)} tensors: {', '.join(skipped)}")
    return 0


def run_ncnn(args: argparse.Namespace) -> int:
    """MODEL.param + MODEL.bin -> a preset directory (the architecture is read from the graph)."""
    from keras_pbasr.presets import convert_ncnn
    from keras_pbasr.presets.preset_io import read_metadata

    unsupported = [flag for flag, value in (("--arch", args.arch), ("--key", args.key),
                                            ("--non-strict", args.non_strict),
                                            ("--save-branches", args.save_branches),
                                            ("--set", args.overrides)) if value]
    if unsupported:
        print(f"pbasr convert: error: {', '.join(unsupported)} do not apply to ncnn files (the "
              "architecture and its options are read from the graph)", file=sys.stderr)
        return 2
    output = convert_ncnn(args.checkpoint, args.output_dir, bin_path=args.bin_path,
                          overwrite=args.overwrite, allow_non_finite=args.allow_non_finite)
    meta = read_metadata(output)
    print(
        f"wrote {output}: {meta.get('class_name')} ({meta.get('ncnn_graph')}), "
        f"{meta.get('parameter_count'):,} parameters, {meta['conversion']['assigned']} tensors "
        f"from {' + '.join(s['file'] for s in meta['source_files'])} "
        f"({'/'.join(meta['ncnn_weight_storage'])} storage)"
    )
    return 0
