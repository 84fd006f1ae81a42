"""Tile batches split over the local JAX devices: both CPU cores for XLA's convolutions.

XLA's CPU convolutions of RealESRGAN_x4plus on small tiles run on one thread: a batch of
four 64x64 tiles takes 4.0 s wall for 4.4 CPU-s on 2 cores (notes/issue-19-speed.md).
JAX can expose the host as several CPU devices (`XLA_FLAGS=
--xla_force_host_platform_device_count=N`, read when JAX first initialises its backend);
splitting the batch over them runs one part per device, in parallel: the same batch takes
2.0 s, with identical output (each tile is computed exactly as before, only elsewhere).
On GPUs the same split is data-parallel inference over the local GPUs.

`request_host_devices` sets the flag (the `pbasr` command line calls it); `shard_batch`
places a batch over the devices JAX has, padding it to a multiple of their count.
"""

from __future__ import annotations

import functools
import os

import numpy as np

HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def request_host_devices(count: int) -> bool:
    """Ask JAX for `count` CPU devices, unless XLA_FLAGS already sets a count.

    Takes effect only if JAX has not initialised its backend yet in this process (it
    reads XLA_FLAGS once), so call it before the first JAX computation. Returns whether
    the flag was added.

    Example:
    >>> request_host_devices(1)  # one device: nothing to ask for
    False
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if count < 2 or HOST_DEVICE_FLAG in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICE_FLAG}={count}".strip()
    return True


def padded_batch_size(batch: int, devices: int) -> int:
    """The batch size rounded up to a multiple of the device count (pure arithmetic).

    Example:
    >>> padded_batch_size(3, 2), padded_batch_size(4, 2), padded_batch_size(5, 4)
    (4, 4, 8)
    """
    return -(-batch // devices) * devices


def shard_batch(x: np.ndarray):
    """`(array, batch)`: x split over the local devices along axis 0, and its true size.

    With one device, or a batch of one (nothing to split), x is returned as it is. Otherwise
    x is padded with copies of its last item to a multiple of the device count (the padding
    costs no wall time: it fills a device that would otherwise wait) and placed so that
    each device holds one contiguous part; a jitted function of it runs the parts in
    parallel. Callers keep the first `batch` items of the result.

    Example:
    >>> import jax
    >>> x = np.zeros((3, 8, 8, 3), "float32")
    >>> sharded, batch = shard_batch(x)
    >>> batch, sharded.shape[0] % len(jax.local_devices()) == 0
    (3, True)
    """
    import jax

    batch = x.shape[0]
    sharding = _batch_sharding()
    if sharding is None or batch == 1:
        return x, batch
    padded = padded_batch_size(batch, len(sharding.device_set))
    if padded != batch:
        x = np.concatenate([x, np.repeat(x[-1:], padded - batch, axis=0)])
    return jax.device_put(x, sharding), batch


def local_device_count() -> int:
    """How many local devices a batch is split over (JAX's, fixed once it has started)."""
    sharding = _batch_sharding()
    return 1 if sharding is None else len(sharding.device_set)


@functools.cache
def _batch_sharding():
    """Axis 0 over all local devices, or None with one device; built once (the devices are
    fixed when JAX starts)."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.local_devices()
    if len(devices) == 1:
        return None
    return NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))
