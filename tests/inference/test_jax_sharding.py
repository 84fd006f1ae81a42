"""Tile batches split over the local JAX devices (keras_pbasr.inference.jax_sharding)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keras_pbasr.inference.jax_sharding import (
    HOST_DEVICE_FLAG,
    padded_batch_size,
    request_host_devices,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.backend_agnostic
def test_padded_batch_size_is_the_next_multiple_of_the_device_count():
    assert [padded_batch_size(b, 2) for b in (1, 2, 3, 4, 5)] == [2, 2, 4, 4, 6]
    assert padded_batch_size(5, 4) == 8
    assert padded_batch_size(7, 1) == 7


@pytest.mark.backend_agnostic
def test_request_host_devices_adds_the_flag_once_and_respects_the_user(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_onednn=false")
    assert request_host_devices(3)
    assert os.environ["XLA_FLAGS"] == f"--xla_cpu_use_onednn=false {HOST_DEVICE_FLAG}=3"
    assert not request_host_devices(2)  # a count is set: left alone
    assert os.environ["XLA_FLAGS"].count(HOST_DEVICE_FLAG) == 1
    monkeypatch.delenv("XLA_FLAGS")
    assert not request_host_devices(1)
    assert "XLA_FLAGS" not in os.environ


_SHARDED_UPSCALE = textwrap.dedent("""
    import json, os
    os.environ["KERAS_BACKEND"] = "jax"
    from keras_pbasr.inference.jax_sharding import request_host_devices, shard_batch
    request_host_devices(2)
    import jax, numpy as np
    from keras_pbasr import upscale
    from keras_pbasr.models import SRVGGNetCompact
    from keras_pbasr.utils.compiled_call import compiled_model_call

    model = SRVGGNetCompact(num_feat=8, num_conv=2)
    image = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    tiles = np.random.default_rng(1).random((3, 16, 16, 3), dtype=np.float32)
    sharded, batch = shard_batch(tiles)
    # Each tile alone on the default device, the reference for the split batch.
    alone = np.concatenate([np.asarray(compiled_model_call(model)(t[None])) for t in tiles])
    import importlib
    upscale_module = importlib.import_module("keras_pbasr.inference.upscale")
    placed = []  # the batches upscale's predictor split over the devices

    def recording_shard_batch(x):
        out = shard_batch(x)
        placed.append((x.shape[0], len(out[0].sharding.device_set)
                       if hasattr(out[0], "sharding") else 1))
        return out

    upscale_module.shard_batch = recording_shard_batch
    split = upscale_module._predictor(model)(tiles)
    whole = upscale(model, image, tile=16, tile_overlap=4)  # "auto": one tile per device
    print(json.dumps({
        "devices": len(jax.local_devices()),
        "sharded_over": len(sharded.sharding.device_set), "padded": sharded.shape[0],
        "batch": batch, "split_vs_alone": float(np.abs(split - alone).max()),
        "shape": list(whole.shape), "finite": bool(np.isfinite(whole).all()),
        "predictor_devices": placed,
    }))
""")


@pytest.mark.backend_agnostic
def test_a_tile_batch_split_over_two_cpu_devices_equals_each_tile_alone():
    # Own process: JAX reads the device count once, when its backend starts.
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "jax"}
    env.pop("XLA_FLAGS", None)
    result = subprocess.run([sys.executable, "-c", _SHARDED_UPSCALE], env=env,
                            capture_output=True, text=True, timeout=600, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["devices"] == 2
    assert (found["sharded_over"], found["padded"], found["batch"]) == (2, 4, 3)
    assert found["split_vs_alone"] <= 1e-6
    # The predictor split the 3-tile batch and upscale's auto batches (one tile per device)
    # over both devices; a lone last tile runs on one.
    assert found["predictor_devices"][0] == [3, 2]
    assert {tuple(p) for p in found["predictor_devices"][1:]} <= {(2, 2), (1, 1)}
    assert [2, 2] in found["predictor_devices"]
    assert found["shape"] == [160, 224, 3] and found["finite"]
