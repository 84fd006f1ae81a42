"""`keras_pbasr.export`: a TF SavedModel or an ONNX file for any batch, height and width.

Which route each backend takes (tried on keras 3.15; see the issue-8 note):

- tensorflow: both formats natively (model.export; ONNX through tf2onnx);
- jax: SavedModel natively (jax2tf, needs TensorFlow installed); ONNX by re-export under torch
  (else TensorFlow) in a subprocess;
- torch: ONNX natively (TorchScript exporter, dynamic axes); SavedModel by re-export under
  TensorFlow in a subprocess.

A subprocess re-export saves the model as a .keras file and reloads it under the other
backend, which gives identical outputs (docs/references.md, "Keras 3 across backends").
JAX's native ONNX path needs jax2onnx, whose dependency tree (flax, orbax, tensorstore) this
package avoids.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras

from keras_pbasr.presets.preset_io import registered_preset_class
from keras_pbasr.utils.atomic_files import atomic_directory, atomic_output

FORMATS = ("saved_model", "onnx")
INPUT_NAME = "lr"


class ExportError(RuntimeError):
    """An export route is unavailable here, or the export itself failed."""


def _input_signature(model: keras.Model) -> list:
    channels = int(model.inputs[0].shape[-1]) if getattr(model, "inputs", None) else 3
    return [keras.InputSpec(shape=(None, None, None, channels), dtype="float32", name=INPUT_NAME)]


def _export_here(model: keras.Model, path: Path, format: str) -> None:
    """Exports with the current backend's native route."""
    keras_format = "tf_saved_model" if format == "saved_model" else "onnx"
    model.export(str(path), format=keras_format, input_signature=_input_signature(model),
                 verbose=False)


def _native_route(format: str) -> bool:
    backend = keras.backend.backend()
    if format == "saved_model":
        return backend in ("tensorflow", "jax")
    return backend in ("tensorflow", "torch")


def _reexport_backend(format: str) -> str:
    """The backend a subprocess re-export runs under."""
    if format == "saved_model":
        candidates = ["tensorflow"]
    else:
        candidates = ["torch", "tensorflow"]
    for backend in candidates:
        if importlib.util.find_spec(backend) is not None:
            return backend
    raise ExportError(
        f"exporting {format} from the {keras.backend.backend()} backend reloads the model under "
        f"{' or '.join(candidates)}, and none is installed: pip install 'keras-pbasr[tensorflow]'"
    )


def _export_in_subprocess(model: keras.Model, path: Path, format: str) -> None:
    backend = _reexport_backend(format)
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = Path(tmp) / "model.keras"
        model.save(keras_file)
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, "-m", "keras_pbasr.export", str(keras_file), str(path),
                   "--format", format]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ExportError(
            f"re-exporting {format} under the {backend} backend failed "
            f"(exit {result.returncode}):\n{result.stderr[-4000:]}"
        )


def export(model: keras.Model, path: str | Path, format: str = "saved_model") -> Path:
    """Exports an inference graph with input (batch, H, W, C) float32 in [0, 1], all dynamic.

    Args:
        model: a built keras_pbasr model (e.g. from `keras_pbasr.presets.from_preset`).
        path: the SavedModel directory or the .onnx file to write.
        format: "saved_model" (serving signature `serving_default`, endpoint `serve`) or
            "onnx" (input named "lr"; onnxruntime runs it).

    Example:
    >>> from keras_pbasr.models import SRVGGNetCompact
    >>> export(SRVGGNetCompact(num_feat=8, num_conv=2), "/tmp/srvgg.onnx", format="onnx")
    ... # doctest: +SKIP
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if format == "onnx" and path.suffix != ".onnx":
        raise ValueError(f"an ONNX export path must end with .onnx, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if keras.config.dtype_policy().name != "float32" or model.dtype_policy.name != "float32":
        raise ExportError("export a float32 model (the dtype policy must be float32)")
    # Built beside `path` and renamed into place when complete: an interrupted or failed
    # export leaves a previous export at `path` as it was.
    staging = atomic_output(path) if format == "onnx" else atomic_directory(path)
    with staging as tmp:
        if _native_route(format):
            try:
                _export_here(model, tmp, format)
            except ImportError as exc:
                raise ExportError(
                    f"{format} export under {keras.backend.backend()} needs a missing "
                    f"package: {exc}"
                ) from exc
        else:
            _export_in_subprocess(model, tmp, format)
    if not path.exists():
        raise ExportError(f"the {format} export wrote nothing at {path}")
    return path


def _reexport_main(argv: list[str] | None = None) -> int:
    """Subprocess entry point: reload a .keras file under this backend and export it."""
    parser = argparse.ArgumentParser(prog="python -m keras_pbasr.export")
    parser.add_argument("keras_file")
    parser.add_argument("output")
    parser.add_argument("--format", choices=FORMATS, required=True)
    args = parser.parse_args(argv)
    import json
    import zipfile

    with zipfile.ZipFile(args.keras_file) as archive:
        config = json.loads(archive.read("config.json"))
    registered_preset_class(config, args.keras_file)  # only keras_pbasr models are loaded
    model = keras.saving.load_model(args.keras_file, compile=False)
    _export_here(model, Path(args.output), args.format)
    return 0


if __name__ == "__main__":
    sys.exit(_reexport_main())
