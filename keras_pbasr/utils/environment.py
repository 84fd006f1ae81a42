"""Facts about the running environment: versions, backend, devices, machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform

from keras_pbasr.version import __version__


def package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def backend_versions() -> dict[str, str | None]:
    return {
        "tensorflow": package_version("tensorflow-cpu") or package_version("tensorflow"),
        "jax": package_version("jax"),
        "jaxlib": package_version("jaxlib"),
        "torch": package_version("torch"),
    }


def visible_devices() -> list[str]:
    """Devices the current Keras backend can place computation on."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()]
    if backend == "torch":
        import torch

        devices = ["cpu"]
        for i in range(torch.cuda.device_count()):
            devices.append(f"cuda:{i} ({torch.cuda.get_device_name(i)})")
        return devices
    return [f"unknown backend {backend}"]


def gpu_visible() -> bool:
    """Whether the current Keras backend sees a GPU (a `visible_devices` entry of kind
    GPU under TensorFlow, gpu under JAX, cuda under torch)."""
    return any(device.split(":", 1)[0].lower() in ("gpu", "cuda") for device in visible_devices())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def environment_info() -> dict[str, object]:
    import keras

    return {
        "keras_pbasr": __version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend_versions": backend_versions(),
        "devices": visible_devices(),
    }
