"""SRFormer's shifted-window attention mask: built once per forward pass and shared by the
shifted blocks (the model now) against rebuilt inside every shifted block (session 1's model,
restored here by calling the blocks without the shared mask).

Groups: the mask build alone (for the PBaSR window 22 on a 256-px tile padded to 264, and for
the small configuration), and the eager forward of a small SRFormer, both variants timed in
interleaved rounds with the same weights (their outputs are checked to be identical).

    python -m benchmarks srformer_mask [--quick]
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from keras_pbasr.models.srformer import srformer_layers
from keras_pbasr.models.srformer.srformer_backbone import SRFormer

SMALL = dict(window_size=8, depths=(6, 6), embed_dim=24, num_heads=(2, 2))
WIDER_WINDOW = dict(window_size=22, depths=(6, 6, 6), embed_dim=24, num_heads=(2, 2, 2))


@contextlib.contextmanager
def _mask_per_block():
    """PSABlock ignores a passed mask and builds its own, as in session 1."""
    original = srformer_layers.PSABlock.call

    def call(self, x, attention_mask=None, training=None):
        return original(self, x, attention_mask=None, training=training)

    srformer_layers.PSABlock.call = call
    try:
        yield
    finally:
        srformer_layers.PSABlock.call = original


def _forward(model, x, per_block: bool):
    def run():
        with _mask_per_block() if per_block else contextlib.nullcontext():
            return keras.ops.convert_to_numpy(model(x, training=False))

    return run


def run(bench) -> None:
    for height, width, window in ((264, 264, 22), (48, 40, 8)):
        bench.measure(
            "mask build", f"{height}x{width} window {window}",
            lambda h=height, w=width, ws=window: keras.ops.convert_to_numpy(
                srformer_layers.shifted_window_attention_mask(h, w, ws, ws // 2)
            ),
            repeats=20,
        )

    configs = [("window 8, depths 6+6, 45x37", SMALL, (45, 37))]
    if not bench.quick:
        configs.append(("window 22, depths 6+6+6, 120x120", WIDER_WINDOW, (120, 120)))
    for label, config, (height, width) in configs:
        model = SRFormer(**config)
        x = np.random.default_rng(0).random((1, height, width, 3), dtype=np.float32)
        shared, per_block = _forward(model, x, False), _forward(model, x, True)
        if not np.array_equal(shared(), per_block()):
            raise AssertionError("shared and per-block masks give different outputs")
        shifted = sum(d // 2 for d in config["depths"])
        bench.note(f"{label}: {shifted} shifted blocks")
        bench.measure_interleaved(
            f"eager forward, {label}",
            {"mask per block (session 1)": per_block, "mask shared (now)": shared},
            reference="mask per block (session 1)",
            repeats=10 if config is SMALL else 5,
        )
