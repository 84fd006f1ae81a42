"""`pbasr evaluate`: image-quality metrics per image, region (all/blur/sharp) and subset."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score SR images against HR images per region and subset; write reports",
        description="Pairs SR and HR images by file stem and writes results.json, "
        "results.csv, aggregates.csv, report.md and plots. With --mask (blur maps, "
        "0 = blurred, 255 = sharp) the full-reference metrics are also computed on the "
        "blur and sharp regions. With --model and --lr the model first super-resolves the "
        "LR images (written to OUT/sr). An unreadable or too large image is skipped with one "
        "line naming it (listed under \"skipped\" in results.json) and the exit status is 1; "
        "bad arguments exit with 2.",
    )
    p.add_argument("--sr", help="folder of SR images (or use --model with --lr)")
    p.add_argument("--hr", required=True, help="folder of HR images")
    p.add_argument("--mask", help="folder of blur maps named like the HR images")
    p.add_argument("--labels", help="folder with labels.json / labels.csv or ReBlurSR npy labels")
    p.add_argument("--metrics", default=None,
                   help="comma-separated names (default: psnr,ssim,ms_ssim,gmsd,vif,vsi,"
                   "lpips,dists; also psnr_rgb, lpips_vgg, niqe, niqe_hr)")
    p.add_argument("--regions", default=None,
                   help="comma-separated subset of all,blur,sharp (default: all three with "
                   "--mask, else all)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--crop-border", type=int, default=0, help="pixels dropped on each side")
    p.add_argument("--color-space", choices=("yiq", "bt601"), default="yiq",
                   help="luma for PSNR/SSIM/...: YIQ (pyiqa, the paper) or BT.601 YCbCr")
    p.add_argument("--size-policy", choices=("error", "crop"), default="error",
                   help="SR/HR size mismatch: fail (default) or compare the common top-left area")
    p.add_argument("--model", help="preset name or directory to run on --lr first")
    p.add_argument("--lr", help="folder of LR images for --model (also shown in the crops)")
    p.add_argument("--recursive", action="store_true",
                   help="also pair the images in sub-folders of every folder (stems must stay "
                   "unique)")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keras_pbasr.evaluation import evaluate
    from keras_pbasr.metrics.catalog import DEFAULT_METRICS

    def split(text):
        return [t.strip() for t in text.split(",") if t.strip()] if text else None

    try:
        report = evaluate(
            sr_dir=args.sr, hr_dir=args.hr, out_dir=args.out, mask_dir=args.mask,
            labels_dir=args.labels, metrics=split(args.metrics) or DEFAULT_METRICS,
            regions=split(args.regions), crop_border=args.crop_border,
            color_space=args.color_space, size_policy=args.size_policy, model=args.model,
            lr_dir=args.lr, plots=not args.no_plots, progress=not args.quiet,
            on_error="skip", recursive=args.recursive,
        )
    except (ValueError, FileNotFoundError) as error:
        if args.debug:
            raise
        print(f"pbasr: error: {error}", file=sys.stderr)
        return 2
    overall = report["aggregates"]["all"]
    for region, by_metric in overall.items():
        cells = ", ".join(f"{m} {v['mean']:.4f}" if v["mean"] is not None else f"{m} nan"
                          for m, v in by_metric.items())
        print(f"{region}: {cells}")
    print(f"wrote {args.out}/results.json, results.csv, aggregates.csv, report.md")
    if report["skipped"]:
        total = len(report["images"]) + len(report["skipped"])
        print(f"evaluate: skipped {len(report['skipped'])} of {total} image pair(s) (listed "
              "above); exit status 1", file=sys.stderr)
        return 1
    return 0
