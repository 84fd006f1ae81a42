"""From a PyTorch checkpoint's tensors to a Keras model: `checkpoint_weights`, `convert_weights`.

Writing the result as a preset directory is `keras_pbasr.presets.convert_checkpoint` (presets
sit above the converters: the built-in presets are converted on first use).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from keras_pbasr.convert import parallel_net
from keras_pbasr.convert.registry import ArchitectureConverter, ConversionError
from keras_pbasr.utils.torch_files import (
    DEFAULT_STATE_DICT_KEYS,
    read_torch_checkpoint,
    select_state_dict,
    state_dict_to_numpy,
    strip_module_prefix,
)


def checkpoint_weights(path: str | Path, key: str | None = None) -> tuple[dict, str | None]:
    """The weights of a .pth/.pt checkpoint as numpy arrays, and the entry they came from.

    `key` picks the entry (e.g. "params_ema"); by default params_ema, then params, except for
    PBaSR ParallelNet files, where `params` comes first, as the official code does.

    Example:
    >>> weights, key = checkpoint_weights("RealESRGAN_x4plus.pth")  # doctest: +SKIP
    >>> key  # doctest: +SKIP
    'params_ema'
    """
    checkpoint = read_torch_checkpoint(path)
    state_dict, used_key = _select_weights(checkpoint, key, str(path))
    return state_dict_to_numpy(state_dict), used_key


def _select_weights(checkpoint: object, key: str | None, source: str):
    if key is None and isinstance(checkpoint, Mapping):
        # PBaSR stores its ParallelNet under `params` (params_ema may be stale); prefer it.
        params = checkpoint.get("params")
        if isinstance(params, Mapping) and parallel_net.is_parallel_net(
            strip_module_prefix(k) for k in params
        ):
            return select_state_dict(checkpoint, "params", source=source)
    return select_state_dict(checkpoint, key, DEFAULT_STATE_DICT_KEYS, source=source)


def convert_weights(
    converter: ArchitectureConverter,
    weights: Mapping[str, np.ndarray],
    strict: bool,
    config_overrides: dict | None,
    source: str,
):
    """`converter.convert` with errors that name `source`; warns about what a non-strict
    conversion skipped. Returns (model, ConversionReport)."""
    try:
        model, report = converter.convert(
            weights, strict=strict, config_overrides=config_overrides
        )
    except ConversionError as exc:
        raise ConversionError(f"{source} as {converter.name}: {exc}", exc.report) from exc
    if not report.ok:
        warnings.warn(
            f"non-strict conversion of {source} skipped tensors:\n{report.summary()}",
            stacklevel=3,
        )
    return model, report
