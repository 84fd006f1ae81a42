"""PBaSRTrainer against an independent PyTorch reference of the training iteration
(tests/torch_reference/pbasr_step.py), and direct checks of USM sharpening and the EMA update.

Both sides start from the same weights (torch modules converted with keras_pbasr.convert) and
run with SGD, so a weight moves by lr * gradient: the comparison checks gradient magnitudes,
not only their signs (Adam's first step moves every weight by about lr whatever the gradient).
Every network's step is checked to be far larger than the tolerance (SIGNAL_FACTOR).
"""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest
import torch
from torch_reference.discriminators import (
    TorchConditionalUNetDiscriminatorSNv2,
    TorchUNetDiscriminatorSN,
    randomize_,
)
from torch_reference.pbasr_step import (
    PBaSRStepReference,
    filter2d,
    gaussian_kernel_2d,
)
from torch_reference.pbasr_step import usm_sharpen as torch_usm_sharpen
from torch_reference.srvgg import TorchSRVGGNetCompact

from keras_pbasr.convert import infer_converter
from keras_pbasr.trainer import CrossFusion, PBaSRTrainer
from keras_pbasr.trainer.usm import usm_sharpen

G_LR, D_LR = 0.5, 0.5
EMA_DECAY = 0.7  # far from 0, 1 and 0.5: a wrong, missing or swapped decay shows
LAMBDA0 = 0.9  # paper range [0.9, 0.99]; the printed form pulls by ~5 % of the gap here
GAN_WEIGHT = 0.1
# Max |keras - reference| over every tensor after the step(s); measured (notes/issue-20-tests.md)
# (worst 3.7e-7: JAX, discriminator; margin ~5x).
TOLERANCE = 2e-6
# Each network's largest weight change must exceed the tolerance this many times (the smallest,
# a generator's EMA, moves by 1.4e-2: 7000x).
SIGNAL_FACTOR = 1000
USM_TOLERANCE = 5e-6


def to_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def torch_networks():
    """Tiny SRVGG x2 branches with different weights, U-Net D (num_feat 4) and the v2
    conditional D_B, all in torch with reproducible weights."""
    nets = {}
    for name, seed in (("g_general", 1), ("g_blur", 2)):
        torch.manual_seed(seed)
        net = TorchSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)
        with torch.no_grad():
            for module in net.body:
                if isinstance(module, torch.nn.PReLU):  # distinct per-channel slopes
                    module.weight.uniform_(-0.3, 0.3)
        nets[name] = net
    nets["d_general"] = randomize_(TorchUNetDiscriminatorSN(num_feat=4), seed=3)
    nets["d_blur"] = randomize_(TorchConditionalUNetDiscriminatorSNv2(num_feat=4), seed=4)
    return nets


def state_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def to_keras(module: torch.nn.Module) -> keras.Model:
    weights = state_numpy(module)
    model, report = infer_converter(weights).convert(weights)
    assert report.ok and not report.ignored
    return model


def differences(keras_model: keras.Model, torch_module: torch.nn.Module, before: dict):
    """(max |keras - reference|, max |reference - before|) over every tensor of the network,
    both in the reference's layout mapped to Keras' (SN u, v included)."""
    weights = state_numpy(torch_module)
    converter = infer_converter(weights)
    targets = converter.weight_targets(keras_model, keras_model.get_config())
    error = step = 0.0
    for key, target in targets.items():
        expected = target.transform(weights[key])
        got = keras.ops.convert_to_numpy(target.variable)
        error = max(error, float(np.max(np.abs(got - expected))))
        step = max(step, float(np.max(np.abs(expected - target.transform(before[key])))))
    return error, step


def make_batch(seed: int):
    """2 general + 2 blur samples: HR 32x32 with edges and texture (USM changes it), LR its
    2x2 mean plus noise, blur maps with a blurred top-left quarter on the blur samples."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((4, 4, 4, 3))
    hr = np.kron(coarse, np.ones((1, 8, 8, 1))) * 0.8 + 0.2 * rng.random((4, 32, 32, 3))
    hr = hr.astype("float32")
    lr = hr.reshape(4, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    lr = np.clip(lr + 0.05 * rng.standard_normal(lr.shape), 0, 1).astype("float32")
    mask = np.ones((4, 32, 32, 1), "float32")
    mask[2:, :16, :16] = 0.0
    return {"lr": lr, "hr": hr, "mask": mask, "is_blur": np.array([0, 0, 1, 1], "float32")}


def one_batch(batch):
    while True:
        yield batch


@pytest.fixture(scope="module")
def runs():
    """Iteration 1 (no fusion) and iteration 2 (CFM at step 2) on both sides."""
    nets = torch_networks()
    keras_nets = {name: to_keras(net) for name, net in nets.items()}
    trainer = PBaSRTrainer(
        keras_nets["g_general"], generator_blur=keras_nets["g_blur"],
        discriminator_general=keras_nets["d_general"], discriminator_blur=keras_nets["d_blur"],
        blur_ratio=0.5, ema_decay=EMA_DECAY,
    )
    trainer.compile(
        g_optimizer=keras.optimizers.SGD(G_LR), d_optimizer=keras.optimizers.SGD(D_LR),
        pixel_weight=1.0, perceptual_weight=0.0, gan_weight=GAN_WEIGHT,
        gan_type="vanilla", blur_gan_type="hinge", usm_general=True, usm_blur=False,
        jit_compile=False if keras.backend.backend() == "tensorflow" else "auto",
    )
    reference = PBaSRStepReference(
        *(copy.deepcopy(nets[n]) for n in ("g_general", "g_blur", "d_general", "d_blur")),
        g_lr=G_LR, d_lr=D_LR, gan_weight=GAN_WEIGHT, ema_decay=EMA_DECAY,
        usm_general=True, usm_blur=False, interval=2, lambda0=LAMBDA0,
    )
    ref_modules = {**reference.nets, "ema_general": reference.ema["general"],
                   "ema_blur": reference.ema["blur"]}
    keras_models = {
        "g_general": trainer.generator_general, "g_blur": trainer.generator_blur,
        "d_general": trainer.discriminator_general, "d_blur": trainer.discriminator_blur,
        "ema_general": trainer.generator_general_ema, "ema_blur": trainer.generator_blur_ema,
    }
    results = {"ema_check": {}}
    ema_before = {b: keras_models[f"ema_{b}"].get_weights() for b in ("general", "blur")}
    for step, seed in ((1, 11), (2, 12)):
        batch = make_batch(seed)
        before = {k: state_numpy(m) for k, m in ref_modules.items()}
        ref_logs = reference.step(*(to_nchw(batch[k]) for k in ("lr", "hr", "mask")))
        cfm = CrossFusion(interval=2, lambda0=LAMBDA0, cosine="global", form="printed")
        history = trainer.fit(one_batch(batch), steps_per_epoch=1, epochs=1, verbose=0,
                              callbacks=[cfm])
        results[step] = {
            "diffs": {k: differences(keras_models[k], ref_modules[k], before[k])
                      for k in ref_modules},
            "ref_logs": ref_logs,
            "logs": {k: v[-1] for k, v in history.history.items()},
            "cfm": (cfm.fusion_steps, cfm.last_lambda, reference.last_fusion),
        }
        if step == 2:
            for source, (general, blur) in (
                ("raw", (reference.nets["g_general"], reference.nets["g_blur"])),
                ("ema", (reference.ema["general"], reference.ema["blur"])),
            ):
                averaged = copy.deepcopy(general)
                with torch.no_grad():
                    for p_avg, p_blur in zip(averaged.parameters(), blur.parameters()):
                        p_avg.copy_((p_avg + p_blur) / 2)
                merged = trainer.merged_generator(source=source)
                results[f"merged_{source}"] = differences(merged, averaged, state_numpy(general))
        if step == 1:
            for branch in ("general", "blur"):
                results["ema_check"][branch] = (
                    ema_before[branch], keras_models[f"g_{branch}"].get_weights(),
                    keras_models[f"ema_{branch}"].get_weights(),
                )
    return results


@pytest.mark.parametrize("step", [1, 2])
def test_training_iteration_matches_torch_reference(runs, step):
    """Step 1: G, D (SN power iterations included), EMA. Step 2 adds the CFM fusion."""
    diffs = runs[step]["diffs"]
    errors = {name: f"{err:.1e} (step {size:.1e})" for name, (err, size) in diffs.items()}
    for name, (error, size) in diffs.items():
        assert error <= TOLERANCE, errors
        assert size >= SIGNAL_FACTOR * TOLERANCE, (name, errors)


@pytest.mark.parametrize("source", ["raw", "ema"])
def test_merged_generator_is_the_average_of_the_reference_branches(runs, source):
    error, distance = runs[f"merged_{source}"]
    assert error <= TOLERANCE
    assert distance > 0.01  # the average is far from the general branch alone


def test_losses_match_torch_reference(runs):
    for step in (1, 2):
        logs, ref_logs = runs[step]["logs"], runs[step]["ref_logs"]
        for name, expected in ref_logs.items():
            assert logs[name] == pytest.approx(expected, rel=1e-4, abs=1e-6), (step, name)


def test_fusion_happens_at_the_interval_with_the_printed_lambda(runs):
    steps, lam, (cos_ref, lam_ref) = runs[2]["cfm"]
    assert steps == [2] and runs[1]["cfm"][0] == []
    assert lam == pytest.approx(lam_ref, abs=1e-6)
    assert lam == pytest.approx(LAMBDA0 + (1 - LAMBDA0) * cos_ref / 2, abs=1e-6)
    assert 1 - lam > 0.04  # a real pull: distinct branches, lambda0 0.9


def test_usm_sharpen_matches_torch_reference():
    # Edges and fine texture on the right, a flat left part more than 50 px (twice the kernel
    # radius) from them: the threshold mask is neither empty nor full.
    rng = np.random.default_rng(5)
    coarse = rng.random((2, 6, 6, 3))
    images = np.kron(coarse, np.ones((1, 10, 10, 1))) * 0.9 + 0.1 * rng.random((2, 60, 60, 3))
    images = np.concatenate([np.full((2, 60, 60, 3), 0.4), images], axis=2).astype("float32")
    x = to_nchw(images)
    # A pixel within float32 error of the threshold would flip its mask bit on one side only
    # (seed 5: every |residual| * 255 is >= 1.7e-3 away from 10).
    residual = (x - filter2d(x, gaussian_kernel_2d())).abs() * 255
    assert float((residual - 10).abs().min()) > 1e-4
    expected = torch_usm_sharpen(x).numpy().transpose(0, 2, 3, 1)
    got = keras.ops.convert_to_numpy(usm_sharpen(keras.ops.convert_to_tensor(images)))
    changed = np.abs(expected - images)
    assert changed.max() > 0.1 and (changed == 0).mean() > 0.05  # both mask states occur
    # Measured <= 1.0e-6 (TF, JAX, torch; separable vs 2-D float32 taps); margin ~5x.
    np.testing.assert_allclose(got, expected, rtol=0, atol=USM_TOLERANCE)


def test_ema_update_is_decay_weighted_average_of_the_new_weights(runs):
    """EMA after a step = decay * EMA before + (1 - decay) * the updated generator, checked on
    the trainer's own weights (the reference comparison above checks the same end to end)."""
    for branch in ("general", "blur"):
        ema_before, updated, ema_after = runs["ema_check"][branch]
        moved = max(float(np.max(np.abs(u - e))) for u, e in zip(updated, ema_before))
        assert moved > 1e-2
        for before, new, after in zip(ema_before, updated, ema_after):
            expected = EMA_DECAY * before + (1 - EMA_DECAY) * new
            np.testing.assert_allclose(after, expected, rtol=0, atol=1e-7)


def test_train_on_batch_with_a_dict_batch():
    """train_on_batch(x) hands the step (x, None, None); TensorFlow's step once failed on the
    None targets (compare-backends --train-steps on tensorflow). The other backends' steps never
    touch the targets (and compare-backends runs train_on_batch on them)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's train step (batch deep copy)")
    nets = torch_networks()
    trainer = PBaSRTrainer(
        to_keras(nets["g_general"]), discriminator_general=to_keras(nets["d_general"]),
        blur_ratio=0.0, ema_decay=None,
    )
    trainer.compile(g_optimizer=keras.optimizers.SGD(G_LR), perceptual_weight=0.0,
                    jit_compile=False if keras.backend.backend() == "tensorflow" else "auto")
    logs = trainer.train_on_batch({k: v[:2] for k, v in make_batch(5).items()},
                                  return_dict=True)
    assert np.isfinite(float(logs["general_pixel"]))
