"""Self-check of the harness: a numpy matmul against itself at two sizes."""

import numpy as np


def run(bench) -> None:
    a = np.random.default_rng(0).standard_normal((256, 256)).astype("float32")
    b = np.random.default_rng(1).standard_normal((512, 512)).astype("float32")
    bench.measure("matmul", "256x256", lambda: a @ a, reference=True)
    bench.measure("matmul", "512x512", lambda: b @ b)
