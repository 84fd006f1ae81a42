"""An ncnn model (.param + .bin) -> a Keras model and its preset metadata.

The same path as `convert_checkpoint` for .pth files: the graph is mapped onto the torch
state-dict keys (`keras_pbasr.convert.ncnn`) and converted by the architecture's registered
converter (same checks, same ConversionReport). Writing the preset directory is
`keras_pbasr.presets.convert_ncnn` (`pbasr convert MODEL.param OUT`).
"""

from __future__ import annotations

import hashlib

import keras

from keras_pbasr.convert.checkpoint_conversion import convert_weights
from keras_pbasr.convert.ncnn import (
    NcnnFormatError,
    NcnnModel,
    read_ncnn_bytes,
    recognise_ncnn_graph,
)
from keras_pbasr.convert.registry import ConversionError, get_converter
from keras_pbasr.utils.torch_files import check_finite_weights


def ncnn_to_model(model: NcnnModel, allow_non_finite: bool = False) -> tuple[keras.Model, dict]:
    """Builds the Keras model an ncnn graph describes, with its weights.

    Returns the model and the conversion metadata (architecture, description, report,
    weight storage). Raises NcnnFormatError / ConversionError naming the layer at fault, and
    CheckpointError for NaN or infinite weights unless `allow_non_finite`.

    Example:
    >>> from keras_pbasr.convert.ncnn import read_ncnn_model
    >>> model, meta = ncnn_to_model(read_ncnn_model("X4PLUS.param"))  # doctest: +SKIP
    >>> meta["ncnn_graph"]  # doctest: +SKIP
    'RRDBNet x4, 23 blocks, 64 features, growth 32'
    """
    found = recognise_ncnn_graph(model)
    check_finite_weights(found.state_dict, model.source, allow_non_finite)
    converter = get_converter(found.arch)
    try:
        keras_model, report = convert_weights(
            converter, found.state_dict, True, found.config_overrides, model.source
        )
    except ConversionError as exc:
        # Name the ncnn layers behind the torch keys the converter complained about.
        layers = sorted({found.key_layers[k] for k in (exc.report.skipped if exc.report else [])
                         if k in found.key_layers})
        raise ConversionError(f"{exc} (ncnn layers: {', '.join(layers)})", exc.report) from exc
    storage = sorted(set(model.storage.values()))
    return keras_model, {
        "arch": found.arch,
        "ncnn_graph": found.description,
        "ncnn_weight_storage": storage,
        "config_overrides": found.config_overrides,
        "conversion": report.as_dict(),
    }


def ncnn_bytes_to_model(
    param_bytes: bytes,
    bin_bytes: bytes,
    param_name: str,
    bin_name: str,
    allow_non_finite: bool = False,
) -> tuple[keras.Model, dict]:
    """Reads an ncnn model from its file contents and converts it: returns the Keras model
    and the preset metadata (source files with their sha256 and size, architecture,
    conversion report).

    Example:
    >>> model, meta = ncnn_bytes_to_model(param, weights, "m.param", "m.bin")  # doctest: +SKIP
    """
    try:
        text = param_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise NcnnFormatError(f"{param_name} is not a text ncnn .param file") from None
    keras_model, conversion = ncnn_to_model(
        read_ncnn_bytes(text, bin_bytes, param_name, bin_name), allow_non_finite
    )
    sources = [
        {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, data in ((param_name, param_bytes), (bin_name, bin_bytes))
    ]
    return keras_model, {
        "source_format": "ncnn",
        "source_file": param_name,
        "source_sha256": sources[0]["sha256"],
        "source_files": sources,
        "strict": True,
        **conversion,
    }
