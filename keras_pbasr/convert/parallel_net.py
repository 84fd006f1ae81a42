"""Official PBaSR ParallelNet / ParallelNet_ncb checkpoints (pure numpy).

They hold two copies of one generator: `general_branch.*` (G_G) and `defocus_branch.*` (the
blur branch G_B), plus `combinet.*`, a stored copy of the deployed model that the official
code recomputes as 0.5*general + 0.5*defocus before use, so it is not trusted here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

GENERAL_PREFIX = "general_branch."
BLUR_PREFIX = "defocus_branch."
COMBINED_PREFIX = "combinet."


def is_parallel_net(keys) -> bool:
    keys = list(keys)
    return any(k.startswith(GENERAL_PREFIX) for k in keys) and any(
        k.startswith(BLUR_PREFIX) for k in keys
    )


def split_branches(
    state_dict: Mapping[str, np.ndarray], source: str = "the checkpoint"
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Returns (general, blur) state dicts with the branch prefixes removed; both must hold
    the same keys and shapes. `combinet.*` is dropped; any other key is an error."""
    general, blur, other = {}, {}, []
    for key, value in state_dict.items():
        if key.startswith(GENERAL_PREFIX):
            general[key[len(GENERAL_PREFIX):]] = value
        elif key.startswith(BLUR_PREFIX):
            blur[key[len(BLUR_PREFIX):]] = value
        elif not key.startswith(COMBINED_PREFIX):
            other.append(key)
    problems = []
    if other:
        problems.append(f"keys outside the branches: {other[:10]}")
    only_general = sorted(set(general) - set(blur))
    only_blur = sorted(set(blur) - set(general))
    if only_general:
        problems.append(f"only in {GENERAL_PREFIX}: {only_general[:10]}")
    if only_blur:
        problems.append(f"only in {BLUR_PREFIX}: {only_blur[:10]}")
    shapes = [
        f"{k} {general[k].shape} vs {blur[k].shape}"
        for k in sorted(set(general) & set(blur))
        if general[k].shape != blur[k].shape
    ]
    if shapes:
        problems.append(f"branch shapes differ: {shapes[:10]}")
    if problems:
        raise ValueError(f"{source} is not a valid ParallelNet checkpoint: " + "; ".join(problems))
    return general, blur


def average_branches(
    general: Mapping[str, np.ndarray], blur: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The deployed weights 0.5*general + 0.5*blur (integer buffers are taken from general)."""
    return {
        key: (0.5 * general[key] + 0.5 * blur[key]).astype(general[key].dtype)
        if np.issubdtype(general[key].dtype, np.floating) else general[key]
        for key in general
    }
