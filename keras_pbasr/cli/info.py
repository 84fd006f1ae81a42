"""`pbasr info`: package, Keras and backend versions, the backend in use, visible devices."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="print versions, the Keras backend in use and the devices it sees",
        description="Print package, Keras and backend versions, the backend in use and "
        "the devices it sees. Set KERAS_BACKEND to tensorflow, jax or torch to switch.",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keras_pbasr.utils.environment import environment_info

    info = environment_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"keras_pbasr {info['keras_pbasr']}")
    print(f"keras {info['keras']}  (backend in use: {info['backend']})")
    print(f"python {info['python']} on {info['platform']}")
    for name, version in info["backend_versions"].items():
        print(f"  {name:<11} {version or 'not installed'}")
    print("devices:")
    for dev in info["devices"]:
        print(f"  {dev}")
    return 0
