"""PBaSR training of FeMaSR through PBaSRTrainer's backbone hook: the frozen module groups stay
unchanged, the encoder learns, the codebook losses against the HQ prior are logged and the
merged model is the average of the branches.

The default tests fit one branch (compiling a two-branch FeMaSR train step costs JAX about
twice as long); the slow ones fit both branches."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_pbasr.models.discriminators import (
    ConditionalUNetDiscriminatorSN,
    UNetDiscriminatorSN,
)
from keras_pbasr.models.femasr.femasr_backbone import FeMaSR, FeMaSRHQ, module_group
from keras_pbasr.trainer import PBaSRTrainer

TINY_LQ = dict(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8, num_swin_layers=1,
               swin_depth=2, swin_num_heads=2, window_size=4, swin_mlp_ratio=2.0)
TINY_HQ = dict(channels=(32, 32, 32, 32), codebook_size=16, code_dim=8)
FROZEN = {"quantize_group", "decoder_group", "after_quant_group", "out_conv"}


def _batches(rng, batch: int, count: int = 2):
    """General samples first, then (batch 2) one blur sample with its top half blurred."""
    batches = []
    for _ in range(count):
        mask = np.ones((batch, 64, 64, 1), "float32")
        mask[1:, :32] = 0.0
        batches.append({
            "lr": rng.random((batch, 16, 16, 3), dtype="float32"),
            "hr": rng.random((batch, 64, 64, 3), dtype="float32"),
            "mask": mask,
            "is_blur": np.arange(batch, dtype="float32"),
        })
    return batches


def _stream(batches):
    while True:
        yield from batches


def _variables_by_group(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """{"frozen" | "trainable": [arrays]} of a FeMaSR's layers by module group."""
    found = {"frozen": [], "trainable": []}
    for layer in model.layers:
        kind = "frozen" if module_group(layer.name) in FROZEN else "trainable"
        found[kind].extend(keras.ops.convert_to_numpy(w) for w in layer.weights)
    return found


def _tiny_generator_and_prior(name: str = "g"):
    prior = FeMaSRHQ(**TINY_HQ, name="hq_prior")
    generator = FeMaSR(**TINY_LQ, name=name)
    # As in FeMaSR's LQ stage: codebook, after_quant and decoder come from the HQ stage.
    for layer in generator.layers:
        if module_group(layer.name) in FROZEN and layer.weights:
            layer.set_weights(prior.get_layer(layer.name).get_weights())
    return generator, prior


def _fit(blur_ratio: float, batch: int):
    keras.utils.set_random_seed(0)
    generator, prior = _tiny_generator_and_prior()
    trainer = PBaSRTrainer(
        generator,
        discriminator_general=UNetDiscriminatorSN(num_feat=4, name="d_general")
        if blur_ratio < 1 else None,
        discriminator_blur=ConditionalUNetDiscriminatorSN(num_feat=4, name="d_blur")
        if blur_ratio > 0 else None,
        blur_ratio=blur_ratio,
        generator_prior=prior,
        ema_decay=0.9,
    )
    compile_kwargs = {"jit_compile": False} if keras.backend.backend() == "tensorflow" else {}
    trainer.compile(
        g_optimizer=keras.optimizers.Adam(1e-3),
        perceptual_weight=0.0,  # FeMaSR's LPIPS needs fetched weights (see the notes)
        gan_type="hinge",
        usm_general=False,
        **compile_kwargs,
    )
    before = {b: _variables_by_group(trainer.generator(b)) for b in trainer.branches}
    prior_before = [keras.ops.convert_to_numpy(w) for w in prior.weights]
    batches = _batches(np.random.default_rng(3), batch)
    history = trainer.fit(_stream(batches), steps_per_epoch=2, epochs=1, verbose=0)
    return trainer, before, prior_before, history.history


@pytest.fixture(scope="module")
def general_run():
    return _fit(blur_ratio=0.0, batch=1)


@pytest.fixture(scope="module")
def pbasr_run():
    return _fit(blur_ratio=0.5, batch=2)


def _check_frozen_and_trained(run) -> None:
    trainer, before, prior_before, logs = run
    for branch in trainer.branches:
        after = _variables_by_group(trainer.generator(branch))
        for old, new in zip(before[branch]["frozen"], after["frozen"]):
            np.testing.assert_array_equal(new, old)
        changed = [np.abs(new - old).max() > 1e-6
                   for old, new in zip(before[branch]["trainable"], after["trainable"])]
        assert np.mean(changed) > 0.9, f"{branch}: only {np.mean(changed):.0%} changed"
        embedding = trainer.generator(branch).quantizer.embedding
        assert id(embedding) not in {id(v) for v in trainer.generator(branch).trainable_variables}
        for name in ("codebook", "code_gram"):
            values = logs[f"{branch}_{name}"]
            assert np.all(np.isfinite(values)) and values[-1] > 0
    for old, new in zip(prior_before, trainer.generator_prior.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(new), old)


def test_fit_keeps_frozen_modules_and_trains_the_rest(general_run):
    _check_frozen_and_trained(general_run)


def test_merged_generator_is_the_average_of_the_branches():
    generator, prior = _tiny_generator_and_prior()
    blur = FeMaSR.from_config({**generator.get_config(), "name": "g_blur"})
    blur.set_weights([w + (0.1 if v.trainable else 0.0)
                      for w, v in zip(generator.get_weights(), generator.weights)])
    trainer = PBaSRTrainer(generator, generator_blur=blur, generator_prior=prior, ema_decay=None)
    _check_merged(trainer, frozen=_variables_by_group(generator)["frozen"])


def _check_merged(trainer, frozen) -> None:
    merged = trainer.merged_generator(source="raw")
    assert isinstance(merged, FeMaSR)
    assert merged.get_config()["frozen_modules"] == list(trainer.generator_general.frozen_modules)
    general = trainer.generator_general.get_weights()
    blur = trainer.generator_blur.get_weights()
    assert max(np.abs(g - b).max() for g, b in zip(general, blur)) > 1e-4
    for m, g, b in zip(merged.get_weights(), general, blur):
        np.testing.assert_allclose(m, (g + b) / 2, atol=1e-7)
    for old, new in zip(frozen, _variables_by_group(merged)["frozen"]):
        np.testing.assert_array_equal(new, old)


@pytest.mark.slow
def test_pbasr_fit_keeps_frozen_modules_and_merges_to_the_average(pbasr_run):
    _check_frozen_and_trained(pbasr_run)
    trainer, before, _, _ = pbasr_run
    _check_merged(trainer, frozen=before["general"]["frozen"])
