"""The package imports and builds models without TensorFlow; the CLI answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras

from keras_pbasr.cli import main

# An import hook that makes `import tensorflow` fail, as on the GPU machines.
_BLOCK_TF = """
import importlib.abc, importlib.machinery, sys
class _Missing(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked for this test)")
    def exec_module(self, module):
        pass
class _BlockTF:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, _Missing())
        return None
sys.meta_path.insert(0, _BlockTF())
"""


def _run_without_tf(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        env["KERAS_BACKEND"] = "jax"
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_TF + code], env=env, capture_output=True, text=True,
        timeout=300,
    )


def test_import_and_build_without_tensorflow():
    proc = _run_without_tf(
        "import keras_pbasr, keras, numpy as np\n"
        "from keras_pbasr.models import SRVGGNetCompact\n"
        "m = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)\n"
        "y = m(np.zeros((1, 5, 7, 3), 'float32'))\n"
        "assert tuple(y.shape) == (1, 10, 14, 3), y.shape\n"
        "assert 'tensorflow' not in sys.modules\n"
        "try:\n    import tensorflow\nexcept ModuleNotFoundError:\n    pass\n"
        "else:\n    raise AssertionError('the blocker let tensorflow in')\n"
        "print('ok', keras.backend.backend())\n"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout


def test_models_trainer_inference_evaluation_import_without_tensorflow():
    """Only tf.data needs TensorFlow: the model, trainer, inference and evaluation packages
    (and the package root, which imports them) load with it blocked."""
    proc = _run_without_tf(
        "import keras_pbasr, keras_pbasr.models, keras_pbasr.trainer, keras_pbasr.inference\n"
        "import keras_pbasr.evaluation, keras_pbasr.metrics, keras_pbasr.data.reblursr\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print('ok')\n"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout


def test_cli_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == keras.backend.backend()
    assert info["keras"] == keras.__version__
    assert info["devices"], "no device listed"


def test_cli_help_lists_subcommands(capsys):
    assert main([]) == 2
    assert "info" in capsys.readouterr().out
