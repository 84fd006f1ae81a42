"""The training half of compare-backends: N PBaSR steps from shared weights on a shared batch."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from keras_pbasr.utils.atomic_files import atomic_output

# Discriminator width for the comparison: narrower than the recipe's 64 to keep CPU runs short.
DISCRIMINATOR_FEAT = 32
# The comparison trains with SGD: each weight then moves by lr * gradient, so the backends'
# agreement measures gradient magnitudes. Adam's first steps move every weight by about its
# learning rate whatever the gradient, and would only compare gradient signs.
COMPARISON_LEARNING_RATE = 0.05


def write_training_inputs(generator, lr_size: tuple[int, int], work: Path, seed: int) -> dict:
    """Saves the discriminators' starting weights and one fixed mixed batch (2 general samples,
    then 2 blur samples); returns the spec entries that point at them."""
    from keras_pbasr.models import ConditionalUNetDiscriminatorSN, UNetDiscriminatorSN
    from keras_pbasr.presets.preset_io import save_to_preset

    probe = np.zeros((1, 8, 8, generator.input_shape[-1]), np.float32)
    scale = int(generator(probe).shape[1]) // 8
    h, w = lr_size
    hh, hw = h * scale, w * scale
    if hh % 8 or hw % 8:
        raise ValueError(f"training needs HR sizes divisible by 8 (the U-Net discriminators); "
                         f"{h}x{w} x{scale} gives {hh}x{hw}")
    rng = np.random.default_rng(seed + 1)
    channels = generator.output_shape[-1]
    d_general = UNetDiscriminatorSN(num_in_ch=channels, num_feat=DISCRIMINATOR_FEAT)
    d_blur = ConditionalUNetDiscriminatorSN(
        num_in_ch=channels, num_cond_ch=1, num_feat=DISCRIMINATOR_FEAT
    )
    hr = rng.random((4, hh, hw, channels), dtype=np.float32)
    mask = np.ones((4, hh, hw, 1), np.float32)
    mask[2:, :, : hw // 2] = 0.0  # the blur samples are blurred on their left half
    d_general(hr)
    d_blur([hr, mask])
    batch = {
        "lr": rng.random((4, h, w, generator.input_shape[-1]), dtype=np.float32),
        "hr": hr,
        "mask": mask,
        "is_blur": np.array([0, 0, 1, 1], np.float32),
    }
    with atomic_output(work / "batch.npz") as tmp:
        np.savez(tmp, **batch)
    return {
        "d_general": str(save_to_preset(d_general, work / "d_general")),
        "d_blur": str(save_to_preset(d_blur, work / "d_blur")),
        "batch": str(work / "batch.npz"),
    }


def train_for_comparison(generator, spec: dict, out_dir: Path) -> dict:
    """Runs spec["train_steps"] PBaSR steps; writes trained.npz (every trainer weight)."""
    import keras

    from keras_pbasr.presets.preset_io import load_preset_dir
    from keras_pbasr.trainer import PBaSRTrainer

    with np.load(spec["batch"]) as f:
        batch = {k: f[k] for k in f.files}
    trainer = PBaSRTrainer(
        generator,
        discriminator_general=load_preset_dir(spec["d_general"]),
        discriminator_blur=load_preset_dir(spec["d_blur"]),
        ema_decay=0.999,
    )
    trainer.compile(
        g_optimizer=keras.optimizers.SGD(COMPARISON_LEARNING_RATE),
        d_optimizer=keras.optimizers.SGD(COMPARISON_LEARNING_RATE),
        perceptual_weight=0.0,
    )
    initial = trainer.get_weights()
    times = []
    for _ in range(spec["train_steps"]):
        t0 = time.perf_counter()
        logs = trainer.train_on_batch(batch, return_dict=True)
        times.append(time.perf_counter() - t0)
    trained = trainer.get_weights()
    with atomic_output(out_dir / "trained.npz") as tmp:
        np.savez(tmp, **{f"w{i:04d}": w for i, w in enumerate(trained)})
    steady = times[1:] or times
    return {
        "steps": len(times),
        # How far training moved the weights: the scale for the backends' agreement.
        "weights_moved_max_abs": float(
            max(np.max(np.abs(a - b)) for a, b in zip(trained, initial))
        ),
        "first_step_ms": times[0] * 1e3,
        "step_ms_median": statistics.median(steady) * 1e3,
        "final_logs": {k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()},
    }
