"""keras_pbasr.export: SavedModel and ONNX from every backend, outputs equal Keras within 1e-4.

The native route of each backend runs by default; the routes that re-export the model under
another backend in a subprocess (JAX -> ONNX, torch -> SavedModel) take 20-30 s and are slow.
"""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_pbasr.cli import main as cli_main
from keras_pbasr.export import export
from keras_pbasr.models import SRVGGNetCompact
from keras_pbasr.presets import save_to_preset

BACKEND = keras.backend.backend()
NATIVE = {"tensorflow": ("saved_model", "onnx"), "jax": ("saved_model",), "torch": ("onnx",)}
CROSS = {"tensorflow": (), "jax": ("onnx",), "torch": ("saved_model",)}


def tiny_model() -> SRVGGNetCompact:
    model = SRVGGNetCompact(num_feat=8, num_conv=2)
    model(np.zeros((1, 8, 8, 3), "float32"))
    return model


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "lr"
    return session.run(None, {"lr": x})[0]


_LOAD_SAVED_MODEL = """
import sys, numpy as np, tensorflow as tf
x = np.load(sys.argv[2])
loaded = tf.saved_model.load(sys.argv[1])
signature = loaded.signatures["serving_default"]
(out,) = signature(lr=tf.constant(x)).values()
np.save(sys.argv[3], out.numpy())
"""


def run_saved_model(path, x: np.ndarray, tmp_path) -> np.ndarray:
    """Runs the serving signature with tf.saved_model.load (in a subprocess unless on TF/JAX,
    where TensorFlow is already loaded by the export itself)."""
    if BACKEND in ("tensorflow", "jax"):
        import tensorflow as tf

        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        (out,) = signature(lr=tf.constant(x)).values()
        return out.numpy()
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(
        [sys.executable, "-c", _LOAD_SAVED_MODEL, str(path), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy")],
        env=env, check=True, capture_output=True,
    )
    return np.load(tmp_path / "y.npy")


def check_export(fmt: str, tmp_path, rng) -> None:
    model = tiny_model()
    path = export(model, tmp_path / ("model.onnx" if fmt == "onnx" else "saved_model"), fmt)
    # Batch, height and width all differ from anything seen at export time.
    for shape in [(2, 13, 17, 3), (1, 21, 10, 3)]:
        x = rng.random(shape, dtype=np.float32)
        expected = keras.ops.convert_to_numpy(model(x))
        got = run_onnx(path, x) if fmt == "onnx" else run_saved_model(path, x, tmp_path)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", NATIVE[BACKEND])
def test_native_export_matches_keras(fmt, tmp_path, rng):
    check_export(fmt, tmp_path, rng)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt",
    CROSS[BACKEND]
    or [pytest.param("none", marks=pytest.mark.skip(reason="TensorFlow exports both natively"))],
)
def test_reexport_in_subprocess_matches_keras(fmt, tmp_path, rng):
    check_export(fmt, tmp_path, rng)


def test_export_rejects_bad_arguments(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="format"):
        export(model, tmp_path / "m", format="tflite")
    with pytest.raises(ValueError, match=".onnx"):
        export(model, tmp_path / "m.bin", format="onnx")


def test_cli_export_native_format(tmp_path, rng, capsys):
    fmt = NATIVE[BACKEND][-1]
    preset = save_to_preset(tiny_model(), tmp_path / "preset")
    output = tmp_path / ("m.onnx" if fmt == "onnx" else "sm")
    assert cli_main(["export", str(preset), str(output), "--format", fmt]) == 0
    assert output.exists()
    assert cli_main(["export", str(preset), str(output), "--format", fmt]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(["export", "no_such_preset", str(tmp_path / "x.onnx")]) == 1
    assert "unknown preset" in capsys.readouterr().err
