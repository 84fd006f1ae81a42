"""Shared test fixtures. KERAS_BACKEND is chosen by scripts/test.sh, one process per backend."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_report_header(config):
    return f"keras {keras.__version__}, KERAS_BACKEND={keras.backend.backend()}"


def shared_data_dir() -> Path | None:
    """../shared/data next to the repository, or $PBASR_SHARED_DATA."""
    path = Path(os.environ.get("PBASR_SHARED_DATA", REPO.parent / "shared" / "data"))
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared test images absent (../shared/data or $PBASR_SHARED_DATA)")
    return path


@pytest.fixture
def shared_fixtures() -> Path:
    path = Path(os.environ.get("PBASR_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures"))
    if not path.is_dir():
        pytest.skip("shared fixtures absent (../shared/fixtures or $PBASR_SHARED_FIXTURES)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _fresh_keras_state(monkeypatch):
    keras.utils.set_random_seed(0)
    # `pbasr upscale` on JAX adds a device count to XLA_FLAGS; keep it out of later tests'
    # subprocesses.
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    yield
    # free_memory=False: the gc.collect() it would run costs ~1 s per test on this machine.
    keras.backend.clear_session(free_memory=False)
