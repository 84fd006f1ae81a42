"""Wall-clock timing of a callable, shared by the benchmarks and `pbasr compare-backends`."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_callable(fn: Callable[[], object], warmup: int = 2, repeats: int = 10) -> list[float]:
    """Seconds per call of `fn` over `repeats` runs after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times
