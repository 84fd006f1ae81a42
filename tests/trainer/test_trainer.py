"""PBaSRTrainer, CrossFusion and the training callbacks, on the backend in KERAS_BACKEND.

Every network gets its weights from numpy (seeded). The training iteration itself is checked
against an independent torch reference in tests/test_trainer_reference.py.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from keras_pbasr.models import SRVGGNetCompact
from keras_pbasr.models.discriminators import (
    ConditionalUNetDiscriminatorSN,
    UNetDiscriminatorSN,
)
from keras_pbasr.trainer import (
    CrossFusion,
    NonFiniteLossError,
    PBaSRTrainer,
    StopOnNonFiniteLoss,
    branch_cosine,
    cross_fuse,
    cross_fusion_ratio,
)

BATCH = 4  # 2 general + 2 blur


def tiny_networks(seed: int = 0):
    """SRVGG x2 (num_feat 8, num_conv 2), a second one with other weights, and two U-Net Ds
    (num_feat 4), all with numpy-seeded weights."""
    rng = np.random.default_rng(seed)
    generator = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2, name="g")
    other_generator = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2, name="g_other")
    d_general = UNetDiscriminatorSN(num_feat=4, name="d_general")
    d_blur = ConditionalUNetDiscriminatorSN(num_feat=4, name="d_blur")
    for model in (generator, d_general, d_blur, other_generator):
        model.set_weights(
            [(0.2 * rng.standard_normal(w.shape)).astype("float32") for w in model.get_weights()]
        )
    return generator, other_generator, d_general, d_blur


def tiny_trainer(blur_ratio=0.5, ema_decay=0.999, seed=0, distinct_blur=False, **compile_kwargs):
    """distinct_blur: the blur branch starts from other weights than the general one (with
    blur_ratio=1 the single branch then gets those weights)."""
    generator, other_generator, d_general, d_blur = tiny_networks(seed)
    if blur_ratio == 1.0 and distinct_blur:
        generator = other_generator
    trainer = PBaSRTrainer(
        generator,
        generator_blur=other_generator if distinct_blur and 0 < blur_ratio < 1 else None,
        discriminator_general=d_general if blur_ratio < 1 else None,
        discriminator_blur=d_blur if blur_ratio > 0 else None,
        blur_ratio=blur_ratio,
        ema_decay=ema_decay,
    )
    if keras.backend.backend() == "tensorflow":
        # XLA compilation of the GAN step dominates these few-step tests on a CPU.
        compile_kwargs.setdefault("jit_compile", False)
    trainer.compile(perceptual_weight=0.0, **compile_kwargs)
    return trainer


def make_batches(count: int, seed: int = 1, batch: int = BATCH):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        mask = np.ones((batch, 32, 32, 1), "float32")
        mask[batch // 2 :, :16] = 0.0  # blur samples: top half blurred
        batches.append(
            {
                "lr": rng.random((batch, 16, 16, 3), dtype="float32"),
                "hr": rng.random((batch, 32, 32, 3), dtype="float32"),
                "mask": mask,
                "is_blur": np.array([0, 0, 1, 1][:batch], "float32"),
            }
        )
    return batches


def stream(batches, start=0):
    """An endless Python generator of numpy dict batches, starting at `start`."""
    for i in itertools.count(start):
        yield batches[i % len(batches)]


def take(batch, rows):
    return {k: v[rows] for k, v in batch.items()}


def weights_of(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def assert_weights_close(a, b, atol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


# ---- pure CFM math --------------------------------------------------------------------------


def test_cross_fusion_math_matches_numpy(rng):
    wg = [rng.standard_normal(s).astype("float32") for s in [(3, 3, 4, 8), (8,), (5,)]]
    wb = [w + 0.3 * rng.standard_normal(w.shape).astype("float32") for w in wg]
    flat_g = np.concatenate([w.ravel() for w in wg]).astype("float64")
    flat_b = np.concatenate([w.ravel() for w in wb]).astype("float64")
    cos_global = flat_g @ flat_b / np.linalg.norm(flat_g) / np.linalg.norm(flat_b)
    cos_tensor = np.mean(
        [
            (g.ravel() @ b.ravel()) / np.linalg.norm(g) / np.linalg.norm(b)
            for g, b in zip(np.array(wg, dtype=object), np.array(wb, dtype=object))
        ]
    )
    got_global = float(keras.ops.convert_to_numpy(branch_cosine(wg, wb, "global")))
    got_tensor = float(keras.ops.convert_to_numpy(branch_cosine(wg, wb, "per_tensor")))
    assert got_global == pytest.approx(cos_global, abs=1e-6)
    assert got_tensor == pytest.approx(cos_tensor, abs=1e-6)
    assert abs(cos_global - cos_tensor) > 1e-4  # the two modes really differ here
    assert cross_fusion_ratio(0.8, 0.99) == pytest.approx(0.99 + 0.01 * 0.4)  # printed Eq. 2
    assert cross_fusion_ratio(0.8, 0.99, "printed") == pytest.approx(0.99 + 0.01 * 0.4)
    assert cross_fusion_ratio(0.8, 0.99, "unhalved") == pytest.approx(0.99 + 0.01 * 0.8)
    assert cross_fusion_ratio(0.8, 0.999, "constant") == pytest.approx(0.999)
    # Fig. 10c reading: lambda0 0 averages (lam ~ 1/2), lambda0 1 never exchanges (lam = 1).
    assert cross_fusion_ratio(1.0, 0.0) == pytest.approx(0.5)
    assert cross_fusion_ratio(0.3, 1.0) == 1.0
    with pytest.raises(ValueError, match="form must be one of"):
        cross_fusion_ratio(0.8, 0.99, "halved")
    new_g, new_b = cross_fuse(wg, wb, 0.7)
    for g, b, ng, nb in zip(wg, wb, new_g, new_b):
        np.testing.assert_allclose(ng, 0.7 * g + 0.3 * b, atol=1e-6)
        np.testing.assert_allclose(nb, 0.7 * b + 0.3 * g, atol=1e-6)
    with pytest.raises(ValueError, match="lambda0"):
        cross_fusion_ratio(0.5, 1.5)


def test_cross_fusion_callback_equals_numpy_eq2_on_model_weights(rng):
    trainer = tiny_trainer()
    wg_vars, wb_vars = trainer.generator_branch_weights()
    for v in wb_vars:  # make the branches differ
        v.assign(keras.ops.convert_to_numpy(v) + 0.1 * rng.standard_normal(v.shape))
    wg = [keras.ops.convert_to_numpy(v).astype("float64") for v in wg_vars]
    wb = [keras.ops.convert_to_numpy(v).astype("float64") for v in wb_vars]
    flat_g = np.concatenate([w.ravel() for w in wg])
    flat_b = np.concatenate([w.ravel() for w in wb])
    cos = flat_g @ flat_b / np.linalg.norm(flat_g) / np.linalg.norm(flat_b)
    lam = 0.99 + 0.01 * cos / 2  # the printed Eq. 2, CrossFusion's default
    cos_got, lam_got = CrossFusion(lambda0=0.99).fuse_variables(wg_vars, wb_vars)
    assert float(keras.ops.convert_to_numpy(cos_got)) == pytest.approx(cos, abs=1e-6)
    assert float(keras.ops.convert_to_numpy(lam_got)) == pytest.approx(lam, abs=1e-7)
    for vg, vb, g, b in zip(wg_vars, wb_vars, wg, wb):
        to_np = keras.ops.convert_to_numpy
        np.testing.assert_allclose(to_np(vg), lam * g + (1 - lam) * b, atol=2e-6)
        np.testing.assert_allclose(to_np(vb), lam * b + (1 - lam) * g, atol=2e-6)
    # lambda0 = 1 leaves both branches bit-identical.
    before = [keras.ops.convert_to_numpy(v) for v in wg_vars + wb_vars]
    CrossFusion(lambda0=1.0).fuse_variables(wg_vars, wb_vars)
    assert_weights_close(before, [keras.ops.convert_to_numpy(v) for v in wg_vars + wb_vars])


# ---- training ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pbasr_runs(tmp_path_factory):
    """One compiled two-branch trainer reused by several runs from the same initial state
    (compiling is the slow part, especially under JAX)."""
    keras.utils.set_random_seed(0)
    trainer = tiny_trainer(distinct_blur=True)
    initial = tmp_path_factory.mktemp("trainer") / "initial.weights.h5"
    trainer.save_weights(initial)
    batches = make_batches(3)
    runs = {"trainer": trainer, "initial": initial, "batches": batches}

    # Run A: lambda0 = 1 (fusion is a no-op), 2 steps; fuses at step 2 only (interval 2).
    cfm = CrossFusion(interval=2, lambda0=1.0)
    trainer.fit(stream(batches), steps_per_epoch=2, epochs=1, verbose=0, callbacks=[cfm])
    runs["a_fusion_steps"] = list(cfm.fusion_steps)
    runs["a_step2"] = {name: weights_of(getattr(trainer, name)) for name in (
        "generator_general", "generator_blur", "discriminator_general", "discriminator_blur",
        "generator_general_ema", "generator_blur_ema")}
    runs["a_merged"] = {"raw": trainer.merged_generator(),  # the default source
                        "ema": trainer.merged_generator(source="ema")}
    # Continue by hand: fuse with numpy Eq. 2 (lambda0 = 0.5) and run step 3.
    wg_vars, wb_vars = trainer.generator_branch_weights()
    wg = [keras.ops.convert_to_numpy(v) for v in wg_vars]
    wb = [keras.ops.convert_to_numpy(v) for v in wb_vars]
    cos = float(keras.ops.convert_to_numpy(branch_cosine(wg, wb)))
    lam = np.float32(0.5 + 0.5 * cos / 2)  # printed Eq. 2
    for v, g, b in zip(wg_vars, wg, wb):
        v.assign(lam * g + (1 - lam) * b)
    for v, g, b in zip(wb_vars, wg, wb):
        v.assign(lam * b + (1 - lam) * g)
    trainer.fit(stream(batches, start=2), steps_per_epoch=1, epochs=1, verbose=0)
    runs["manual_step3"] = weights_of(trainer.generator_general) + weights_of(
        trainer.generator_blur
    )

    # Run D: the same 3 steps with CrossFusion(interval=2, lambda0=0.5) inside fit.
    trainer.load_weights(initial)
    cfm = CrossFusion(interval=2, lambda0=0.5)
    trainer.fit(stream(batches), steps_per_epoch=3, epochs=1, verbose=0, callbacks=[cfm])
    runs["d_fusion_steps"] = list(cfm.fusion_steps)
    runs["d_step3"] = weights_of(trainer.generator_general) + weights_of(trainer.generator_blur)
    runs["d_lambda"] = cfm.last_lambda
    runs["d_history"] = list(cfm.history)
    return runs


def test_cross_fusion_in_fit_takes_effect_and_respects_interval(pbasr_runs):
    assert pbasr_runs["a_fusion_steps"] == [2]
    assert pbasr_runs["d_fusion_steps"] == [2]
    assert 0.25 < pbasr_runs["d_lambda"] < 0.75  # lambda0 0.5, cos in (-1, 1): printed Eq. 2
    # Every fusion is kept with its step, cosine and lambda.
    (entry,) = pbasr_runs["d_history"]
    assert entry["step"] == 2
    assert entry["lambda"] == pytest.approx(0.5 + 0.5 * entry["cosine"] / 2, abs=1e-6)
    # Fusion inside fit (JAX: with the state outside the variables) == fusing by hand.
    assert_weights_close(pbasr_runs["d_step3"], pbasr_runs["manual_step3"], atol=1e-5)


def test_lambda0_one_equals_two_independent_single_branch_runs(pbasr_runs):
    batches = pbasr_runs["batches"][:2]
    general_only = tiny_trainer(blur_ratio=0.0, distinct_blur=True)
    general_only.fit(
        stream([take(b, slice(0, 2)) for b in batches]), steps_per_epoch=2, verbose=0
    )
    blur_only = tiny_trainer(blur_ratio=1.0, distinct_blur=True)
    blur_only.fit(stream([take(b, slice(2, 4)) for b in batches]), steps_per_epoch=2, verbose=0)
    a = pbasr_runs["a_step2"]
    for name in ("generator_general", "discriminator_general", "generator_general_ema"):
        assert_weights_close(a[name], weights_of(getattr(general_only, name)), 1e-5)
    for name in ("generator_blur", "discriminator_blur", "generator_blur_ema"):
        assert_weights_close(a[name], weights_of(getattr(blur_only, name)), 1e-5)
    # The branches really trained apart.
    assert max(
        float(np.max(np.abs(g - b)))
        for g, b in zip(a["generator_general"], a["generator_blur"])
    ) > 1e-5


@pytest.mark.parametrize("source", ["raw", "ema"])
def test_merged_generator_equals_hand_averaged_weights(pbasr_runs, source):
    a = pbasr_runs["a_step2"]
    merged = pbasr_runs["a_merged"][source]
    assert isinstance(merged, SRVGGNetCompact)
    assert merged.get_config()["num_feat"] == 8
    suffix = "_ema" if source == "ema" else ""
    by_hand = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)
    by_hand.set_weights([
        (g + b) / 2
        for g, b in zip(a[f"generator_general{suffix}"], a[f"generator_blur{suffix}"])
    ])
    lr = np.random.default_rng(5).random((1, 11, 13, 3), dtype="float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(merged(lr)), keras.ops.convert_to_numpy(by_hand(lr))
    )
    # EMA really differs from the raw weights after two steps.
    assert not np.allclose(a["generator_general_ema"][0], a["generator_general"][0])


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt("simulated interruption")


def test_resume_after_interruption_reproduces_uninterrupted_run(pbasr_runs, tmp_path):
    trainer, batches = pbasr_runs["trainer"], pbasr_runs["batches"]
    trainer.load_weights(pbasr_runs["initial"])
    backup = str(tmp_path / "backup")
    # Interrupted after global step 1 (checkpoint at each 1-step epoch end).
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(
            stream(batches), steps_per_epoch=1, epochs=3, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), _Interrupt(at_epoch=1),
                       CrossFusion(interval=2, lambda0=0.5)],
        )
    # Scramble the in-memory state: the resume must come from the checkpoint.
    trainer.load_weights(pbasr_runs["initial"])
    cfm = CrossFusion(interval=2, lambda0=0.5)
    trainer.fit(
        stream(batches, start=1), steps_per_epoch=1, epochs=3, verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup), cfm],
    )
    assert cfm.fusion_steps == [2]  # the CFM phase follows the global step
    got = weights_of(trainer.generator_general) + weights_of(trainer.generator_blur)
    assert_weights_close(got, pbasr_runs["d_step3"], atol=1e-5)


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(pbasr_runs, tmp_path):
    trainer, batches = pbasr_runs["trainer"], pbasr_runs["batches"]
    trainer.load_weights(pbasr_runs["initial"])
    broken = dict(batches[2])
    broken["hr"] = np.full_like(broken["hr"], np.nan)
    backup = tmp_path / "backup"
    with pytest.raises(NonFiniteLossError, match=r"training step 3: .*general_pixel=nan"):
        trainer.fit(
            stream(batches[:2] + [broken]), steps_per_epoch=1, epochs=3, verbose=0,
            callbacks=[StopOnNonFiniteLoss(str(backup)), keras.callbacks.BackupAndRestore(backup),
                       CrossFusion(interval=2, lambda0=1.0)],
        )
    trainer.load_weights(backup / "latest.weights.h5")
    a = pbasr_runs["a_step2"]
    kept = weights_of(trainer.generator_general) + weights_of(trainer.discriminator_blur)
    assert all(np.isfinite(w).all() for w in kept)  # step 3 (the NaN batch) would be NaN
    assert_weights_close(weights_of(trainer.generator_general), a["generator_general"], 1e-5)
    assert_weights_close(weights_of(trainer.discriminator_blur), a["discriminator_blur"], 1e-5)


def test_fit_leaves_the_users_batches_untouched(pbasr_runs):
    # TF kernels once wrote step results into the numpy arrays a generator yielded (the graph's
    # input tensors shared their memory): a few of every 8 batches changed, and runs that
    # re-yield batches trained on garbage.
    trainer = pbasr_runs["trainer"]
    trainer.load_weights(pbasr_runs["initial"])
    batches = make_batches(12, seed=7)
    trainer.fit((b for b in batches), steps_per_epoch=12, verbose=0)
    for i, (used, fresh) in enumerate(zip(batches, make_batches(12, seed=7))):
        for key in fresh:
            np.testing.assert_array_equal(used[key], fresh[key], err_msg=f"batch {i} {key}")


def test_fit_on_real_images_logs_every_loss(shared_data):
    from PIL import Image

    def load(path, mode, size=(32, 32)):
        array = np.asarray(Image.open(path).convert(mode).resize(size, Image.BICUBIC), "float32")
        return array.reshape(size[1], size[0], -1) / 255.0

    general = [load(p, "RGB") for p in sorted((shared_data / "set5" / "HR").iterdir())[:2]]
    stems = [p.stem for p in sorted((shared_data / "cuhk_blur" / "image").iterdir())[:2]]
    blur = [load(next((shared_data / "cuhk_blur" / "image").glob(s + ".*")), "RGB") for s in stems]
    masks = [load(next((shared_data / "cuhk_blur" / "mask").glob(s + ".*")), "L") for s in stems]
    hr = np.stack(general + blur)
    mask = np.concatenate([np.ones((2, 32, 32, 1), "float32"), np.stack(masks) > 0.5])
    lr = hr.reshape(4, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    batch = {"lr": lr, "hr": hr, "mask": mask.astype("float32"),
             "is_blur": np.array([0, 0, 1, 1], "float32")}
    trainer = tiny_trainer(ema_decay=None)
    history = trainer.fit(stream([batch]), steps_per_epoch=2, verbose=0)
    logs = {k: v[-1] for k, v in history.history.items()}
    expected = {"general_pixel", "general_gan", "blur_pixel", "blur_gan", "d_general_real",
                "d_general_fake", "d_blur_real", "d_blur_fake", "d_blur_on_blur_pixels",
                "d_blur_on_sharp_pixels", "branch_cosine"}
    assert expected <= set(logs)
    assert all(np.isfinite(logs[k]) for k in expected)
    assert 0.9 < logs["branch_cosine"] <= 1.0 + 1e-6


def test_discriminator_warmup_freezes_generator_only_during_warmup():
    trainer = tiny_trainer(blur_ratio=0.0, ema_decay=None, d_warmup_steps=1)
    g0, d0 = weights_of(trainer.generator_general), weights_of(trainer.discriminator_general)
    trainer.fit(stream(make_batches(2)), steps_per_epoch=1, verbose=0)
    g1, d1 = weights_of(trainer.generator_general), weights_of(trainer.discriminator_general)
    assert_weights_close(g1, g0)  # step 1 is warm-up: generator and its Adam state untouched
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(d0, d1)) > 0
    g_opt = trainer.optimizer.sub_optimizer("g_general")
    assert int(keras.ops.convert_to_numpy(g_opt.iterations)) == 0
    trainer.fit(stream(make_batches(2), start=1), steps_per_epoch=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(g_opt.iterations)) == 1
    g2 = weights_of(trainer.generator_general)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(g1, g2)) > 0


def test_unknown_keyword_arguments_are_refused_listing_the_valid_ones():
    generator = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2)
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) blurratio; valid: .*"
                       r"blur_ratio.*name"):
        PBaSRTrainer(generator, blurratio=0.5)
    trainer = PBaSRTrainer(generator, name="fine")  # keras.Model's own arguments still pass
    with pytest.raises(TypeError, match=r"usm_targets; valid: .*usm_general, usm_blur"):
        trainer.compile(perceptual_weight=0.0, usm_targets=False)
    with pytest.raises(ValueError, match="source must be one of"):
        trainer.merged_generator(source="average")
    with pytest.raises(ValueError, match="no EMA"):
        PBaSRTrainer(generator, ema_decay=None).merged_generator(source="ema")


def test_usm_sharpens_only_the_general_branch_targets_by_default(rng):
    from keras_pbasr.losses import pixel_loss
    from keras_pbasr.trainer import usm_sharpen

    trainer = tiny_trainer(ema_decay=None)
    assert trainer.loss_settings["usm"] == {"general": True, "blur": False}
    batch = make_batches(1)[0]
    parts = trainer.split_batch(batch)
    _, logs, srs = trainer.generator_losses(parts)
    to_np = keras.ops.convert_to_numpy
    for branch, sharpened in (("general", True), ("blur", False)):
        hr = parts[branch][1]
        target = usm_sharpen(hr) if sharpened else hr
        expected = float(to_np(pixel_loss(srs[branch], target, "l1")))
        other = float(to_np(pixel_loss(srs[branch], usm_sharpen(hr) if not sharpened else hr,
                                       "l1")))
        assert float(to_np(logs[f"{branch}_pixel"])) == pytest.approx(expected, rel=1e-5)
        assert abs(expected - other) > 1e-3  # USM really changes these targets
    both = tiny_trainer(ema_decay=None, usm_blur=True, usm_general=False)
    assert both.loss_settings["usm"] == {"general": False, "blur": True}


def test_bad_batch_is_rejected_with_a_clear_error():
    trainer = tiny_trainer(ema_decay=None)
    with pytest.raises(ValueError, match="'lr', 'hr', 'mask'"):
        trainer.split_batch({"lr": np.zeros((2, 8, 8, 3), "float32")})
