"""Data-parallel PBaSRTrainer fit on 2 logical CPU devices, each in a fresh subprocess (device
counts are fixed at backend start-up): JAX keras.distribution.DataParallel and TensorFlow
MirroredStrategy. The 2-device result must equal a 1-device run of the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, sys
import numpy as np
devices = int(sys.argv[1])
backend = os.environ["KERAS_BACKEND"]
if backend == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "trainer"))
from test_trainer import make_batches, stream, tiny_networks
from keras_pbasr.trainer import CrossFusion, PBaSRTrainer

def build():
    g, other, dg, db = tiny_networks(0)
    t = PBaSRTrainer(g, generator_blur=other, discriminator_general=dg, discriminator_blur=db)
    t.compile(perceptual_weight=0.0)
    return t

# Per-replica batches are mixed (general first, blur last); the global batch is their
# concatenation, which is also what TF MirroredStrategy splits back per replica.
per_replica = make_batches(4, batch=4)
batches = [{k: np.concatenate([a[k], b[k]]) for k in a}
           for a, b in zip(per_replica[::2], per_replica[1::2])]
if backend == "jax" or devices == 1:
    # JAX shards one global array, and one device sees the whole batch: general first.
    order = np.array([0, 1, 4, 5, 2, 3, 6, 7])
    batches = [{k: v[order] for k, v in b.items()} for b in batches]
if devices == 2 and backend == "jax":
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    trainer = build()
elif devices == 2:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        trainer = build()
else:
    trainer = build()
trainer.fit(stream(batches), steps_per_epoch=2, verbose=0,
            callbacks=[CrossFusion(interval=2, lambda0=0.9)])
weights = [np.asarray(keras.ops.convert_to_numpy(w)).tolist()
           for w in trainer.generator_general.weights + trainer.generator_blur.weights]
print("RESULT" + json.dumps(weights))
"""


def run_fit(backend: str, devices: int) -> list[np.ndarray]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if backend == "jax":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(devices)], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=900,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return [np.asarray(w) for w in json.loads(lines[-1][len("RESULT"):])]


@pytest.mark.slow
@pytest.mark.backend_agnostic
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_data_parallel_fit_on_two_cpu_devices_matches_one_device(backend):
    two = run_fit(backend, 2)
    one = run_fit(backend, 1)
    assert all(np.all(np.isfinite(w)) for w in two)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(one, two))
    assert worst < 1e-5, f"2-device run differs from the 1-device run by {worst}"
