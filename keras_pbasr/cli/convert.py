"""`pbasr convert CHECKPOINT OUTPUT_DIR`: an official PyTorch checkpoint -> a preset directory."""

from __future__ import annotations

import argparse
import json


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
    p.add_argument("checkpoint", help="the .pth / .pt file")
    p.add_argument("output_dir", help="the preset directory to write")
    p.add_argument("--arch", default=None,
                   help="architecture name, e.g. rrdbnet, rrdbnet_esrgan, srvgg (default: inferred "
                   "from the keys; an unknown name lists the known ones)")
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
    from keras_pbasr.convert import convert_checkpoint
    from keras_pbasr.presets.preset_io import read_metadata

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
