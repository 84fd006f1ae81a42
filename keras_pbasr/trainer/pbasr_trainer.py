"""PBaSRTrainer: two generator branches (general, blur) and their discriminators in one
`keras.Model`, trained with `model.fit` on TensorFlow, JAX and torch.

One training iteration (every backend, see train_step_<backend>.py):

1. The batch is split statically: the first B - n_blur samples are general, the last
   n_blur = round(B * blur_ratio) are blur samples (the layout of keras_pbasr.data).
2. Generator step, discriminators frozen: each branch G_b computes SR = G_b(LR) on its half;
   loss = pixel + perceptual (against the USM-sharpened HR where that branch's `usm_<branch>`
   is on: by default the general branch only) + GAN term of D_b(SR) (D_B conditioned on the
   HR blur map), plus the backbone's own losses when it has
   the `training_outputs` hook (below). Each branch is updated by its own optimizer.
   During the first `d_warmup_steps` steps the generators are not updated.
3. Discriminator step: each D_b sees the real HR and the SR computed in step 2 (detached),
   real first, then fake; each D has its own optimizer.
4. EMA copies (if any) move towards the updated generators; the global step increments.

Spectral-norm power iterations run in every discriminator call of both steps (training-mode calls,
as in BasicSR, where D stays in train mode during the generator step).

What the trainer reads from a backbone (the `SRBackbone` contract, so it stays
backbone-agnostic):
- frozen parts are layers the backbone marks `trainable=False` (e.g. FeMaSR's codebook and
  decoder): optimizers, CFM and EMA only ever see `trainable_variables`;
- `generator.training_outputs(lr, hr, prior=None) -> (sr, {name: loss})` is the training-mode
  forward (`model(lr, training=True)` and no losses unless the backbone overrides it); the
  losses are added to the generator loss (times `extra_loss_weight`) and logged as
  `<branch>_<name>`. `prior` is the trainer's `generator_prior`, a frozen network whose weights
  travel in the trainer state (FeMaSR: the HQ VQGAN giving the HR codes).
"""

from __future__ import annotations

import importlib
import inspect
import os
import types
from collections.abc import Callable, Sequence

import keras
import numpy as np
from keras import ops

from keras_pbasr.losses import (
    gan_discriminator_loss,
    gan_generator_loss,
    gan_loss_map,
    pixel_loss,
    region_means,
)
from keras_pbasr.losses.perceptual import PerceptualLoss
from keras_pbasr.models.backbone import SRBackbone
from keras_pbasr.models.discriminators import ConditionalUNetDiscriminatorSN, UNetDiscriminatorSN
from keras_pbasr.presets import from_preset
from keras_pbasr.trainer.cross_fusion import branch_cosine
from keras_pbasr.trainer.multi_optimizer import MultiOptimizer
from keras_pbasr.trainer.usm import usm_sharpen

BRANCHES = ("general", "blur")
MERGE_SOURCES = ("raw", "ema")
# keras.Model's own constructor arguments that the trainer passes on.
MODEL_KWARGS = ("name", "dtype", "trainable")


def refuse_unknown_kwargs(where: str, given: dict, valid: Sequence[str]) -> None:
    """Raise TypeError naming the unknown keyword arguments and listing the valid ones."""
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise TypeError(
            f"{where} got unknown keyword argument(s) {', '.join(unknown)}; valid: "
            f"{', '.join(valid)}"
        )


def blur_count(batch_size, blur_ratio: float):
    """n_blur = round(B * blur_ratio); a Python int for static B, a tensor for a dynamic one."""
    if isinstance(batch_size, (int, np.integer)):
        return int(round(int(batch_size) * blur_ratio))
    return ops.cast(ops.round(ops.cast(batch_size, "float32") * blur_ratio), "int32")


def default_adam(learning_rate: float = 1e-4) -> keras.optimizers.Optimizer:
    """Real-ESRGAN's Adam: lr 1e-4, betas (0.9, 0.99), torch's epsilon 1e-8 set explicitly."""
    return keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.99, epsilon=1e-8)


def _clone_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    # A fresh instance with the same hyper-parameters: every network needs its own state.
    return optimizer.__class__.from_config(optimizer.get_config())


def _clone_model(model: keras.Model, name: str, copy_weights: bool = True) -> keras.Model:
    config = dict(model.get_config())
    config["name"] = name
    clone = model.__class__.from_config(config)
    if copy_weights:
        clone.set_weights(model.get_weights())
    return clone


def _as_input_tuples(batches):
    for batch in batches:
        yield batch if isinstance(batch, tuple) else (batch,)


def _parameter_names(function) -> list[str]:
    """The named parameters of a function (without self and **kwargs)."""
    return [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]


def _backend_train_step():
    """The one place that picks the train step implementation for the Keras backend."""
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax", "torch"):
        raise RuntimeError(f"PBaSRTrainer supports tensorflow, jax and torch, not {backend!r}")
    module = importlib.import_module(f"keras_pbasr.trainer.train_step_{backend}")
    return module.train_step


class PBaSRTrainer(keras.Model):
    """PBaSR's Cross Disentanglement training: general and blur generator branches, each with
    its own discriminator and optimizer, fed with one mixed batch per step.

    Args:
        generator: the base backbone (an `SRBackbone` such as SRVGGNetCompact or RRDBNet), a
            preset name or a preset directory. It becomes the general branch.
        generator_blur: the blur branch; default a copy of `generator` with the same weights.
        discriminator_general: unconditional D (default UNetDiscriminatorSN).
        discriminator_blur: mask-conditioned D called as D([image, mask]) (default
            ConditionalUNetDiscriminatorSN, variant v2).
        blur_ratio: fraction of each batch that is blur samples (last in the batch). 0.0 or 1.0
            build a single-branch trainer (Real-ESRGAN-style GAN training of one generator).
        ema_decay: decay of an EMA copy of each generator (None: no EMA).
        generator_prior: a network the backbone's `training_outputs` hook needs (FeMaSR: its
            HQ-stage FeMaSRHQ); made non-trainable and never updated.

    Example:
    >>> from keras_pbasr.models import SRVGGNetCompact
    >>> trainer = PBaSRTrainer(SRVGGNetCompact(num_feat=16, num_conv=4))
    >>> trainer.compile(perceptual_weight=0.0)
    >>> # trainer.fit(mixed_dataset, steps_per_epoch=1000, callbacks=[CrossFusion()])
    >>> merged = trainer.merged_generator()  # same class and config, (W_G + W_B) / 2
    """

    def __init__(
        self,
        generator,
        generator_blur: keras.Model | None = None,
        discriminator_general: keras.Model | None = None,
        discriminator_blur: keras.Model | None = None,
        blur_ratio: float = 0.5,
        ema_decay: float | None = 0.999,
        generator_prior: keras.Model | None = None,
        **kwargs,
    ):
        refuse_unknown_kwargs(
            "PBaSRTrainer()", kwargs, [*_parameter_names(PBaSRTrainer.__init__), *MODEL_KWARGS]
        )
        super().__init__(**kwargs)
        if not 0.0 <= blur_ratio <= 1.0:
            raise ValueError(f"blur_ratio must be in [0, 1], got {blur_ratio}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) or None, got {ema_decay}")
        if isinstance(generator, (str, os.PathLike)):
            generator = from_preset(generator)  # a built-in name (fetched if needed) or a dir
        for role, network in (("generator", generator), ("generator_blur", generator_blur)):
            if network is not None and not isinstance(network, SRBackbone):
                raise TypeError(
                    f"{role} must be an SRBackbone (keras_pbasr.models), a preset name or a "
                    f"preset dir, got {type(network).__name__}"
                )
        self.blur_ratio = float(blur_ratio)
        self.ema_decay = ema_decay
        has_general, has_blur = blur_ratio < 1.0, blur_ratio > 0.0
        self.branches = tuple(b for b, on in zip(BRANCHES, (has_general, has_blur)) if on)
        out_channels = generator.output_shape[-1]

        # Attribute order fixes the order of trainable_variables: generators, then discriminators.
        self.generator_general = self.generator_blur = None
        self.discriminator_general = self.discriminator_blur = None
        if "general" in self.branches:
            self.generator_general = generator
        if "blur" in self.branches:
            if generator_blur is None:
                generator_blur = (
                    _clone_model(generator, "generator_blur")
                    if "general" in self.branches
                    else generator
                )
            self.generator_blur = generator_blur
        if "general" in self.branches:
            if discriminator_general is None:
                discriminator_general = UNetDiscriminatorSN(
                    num_in_ch=out_channels, name="discriminator_general"
                )
            self.discriminator_general = discriminator_general
        if "blur" in self.branches:
            if discriminator_blur is None:
                discriminator_blur = ConditionalUNetDiscriminatorSN(
                    num_in_ch=out_channels, num_cond_ch=1, name="discriminator_blur"
                )
            self.discriminator_blur = discriminator_blur
        self.generator_general_ema = self.generator_blur_ema = None
        if ema_decay is not None:
            for branch in self.branches:
                ema = _clone_model(self.generator(branch), f"generator_{branch}_ema")
                ema.trainable = False
                setattr(self, f"generator_{branch}_ema", ema)
        # Tracked (last), so its weights are part of the trainer state on every backend.
        if generator_prior is not None:
            generator_prior.trainable = False
        self.generator_prior = generator_prior
        self._base_generator_config = generator.get_config()
        self._base_generator_class = generator.__class__
        self._train_step_impl = _backend_train_step()
        self._layout_cache = None
        self._ema_pairs_cache = None
        self.loss_settings = None
        self.built = True

    # ---- networks -------------------------------------------------------------------------

    def generator(self, branch: str) -> keras.Model:
        return getattr(self, f"generator_{branch}")

    def discriminator(self, branch: str) -> keras.Model:
        return getattr(self, f"discriminator_{branch}")

    def ema_generator(self, branch: str) -> keras.Model | None:
        return getattr(self, f"generator_{branch}_ema")

    def generator_branch_weights(self) -> tuple[list, list]:
        """(G_G trainable variables, G_B trainable variables), in matching order."""
        if self.branches != BRANCHES:
            raise ValueError("this trainer has a single branch; there is nothing to fuse")
        general = self.generator_general.trainable_variables
        blur = self.generator_blur.trainable_variables
        if [tuple(v.shape) for v in general] != [tuple(v.shape) for v in blur]:
            raise ValueError("the generator branches differ in architecture; cannot fuse them")
        return general, blur

    def call(self, lr, training=False):
        return {b: self.generator(b)(lr, training=training) for b in self.branches}

    def merged_generator(self, source: str = "raw") -> keras.Model:
        """A plain backbone (same class and config as the base generator) with
        W = (W_G + W_B) / 2 over all weights.

        source "raw" (default): the trained generators, as the official code deploys (its
        ParallelNet averages `params`); "ema": their EMA copies (needs ema_decay). With decay
        0.999 the EMA of a short fine-tune is still close to the start weights.

        Example:
        >>> # save_to_preset(trainer.merged_generator(), "runs/x/merged_preset")
        """
        if source not in MERGE_SOURCES:
            raise ValueError(f"source must be one of {MERGE_SOURCES}, got {source!r}")
        if source == "ema" and self.ema_decay is None:
            raise ValueError("source='ema' but this trainer has no EMA (ema_decay=None)")
        use_ema = source == "ema"
        sources = [self.ema_generator(b) if use_ema else self.generator(b) for b in self.branches]
        merged = self._base_generator_class.from_config(dict(self._base_generator_config))
        if len(sources) == 1:
            merged.set_weights(sources[0].get_weights())
        else:
            general, blur = (src.get_weights() for src in sources)
            merged.set_weights([(wg + wb) / 2.0 for wg, wb in zip(general, blur)])
        return merged

    # ---- compile --------------------------------------------------------------------------

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer | dict | None = None,
        d_optimizer: keras.optimizers.Optimizer | dict | None = None,
        pixel_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        gan_weight: float = 0.1,
        pixel_criterion: str = "l1",
        gan_type: str = "vanilla",
        blur_gan_type: str | None = "hinge",
        perceptual_loss=None,
        usm_general: bool = True,
        usm_blur: bool = False,
        d_warmup_steps: int = 0,
        extra_loss_weight: float = 1.0,
        jit_compile="auto",
        run_eagerly: bool = False,
        **kwargs,
    ):
        """Configure optimizers and losses.

        g_optimizer / d_optimizer: one optimizer used as a template (each branch gets its own
        copy), or a dict {"general": opt, "blur": opt}. Default Adam(1e-4, 0.9, 0.99, eps 1e-8).
        Loss weights follow Real-ESRGAN (pixel 1, perceptual 1, GAN 0.1 on G, 1 on D).
        gan_type: general branch (Real-ESRGAN: "vanilla"); blur_gan_type: blur branch (paper
        Eq. 1: "hinge"; None: same as gan_type). perceptual_weight 0 builds no perceptual loss;
        otherwise `perceptual_loss` or PerceptualLoss.default() (which needs fetched VGG weights).
        usm_general / usm_blur: that branch's pixel and perceptual targets are the USM-sharpened
        HR (the D's real input never is). Real-ESRGAN sharpens every target; here the blur
        branch's are left alone by default, because USM sharpens the very blur that branch must
        keep: on the six CUHK blur photos (shared/data/cuhk_blur) USM changes 10-76 % of the
        blurred-region pixels by more than 1/255, by 0.6-7.2 / 255 on average
        (benchmarks/usm_on_blur.py).
        d_warmup_steps: steps at the start during which only the discriminators learn.
        extra_loss_weight: multiplies the losses of the backbone's `training_outputs` hook
        (FeMaSR: codebook and Gram feature matching; its recipe weighs them 1.0).
        Unknown keyword arguments (e.g. the former `usm_targets`) are refused with the list of
        valid ones.

        Example:
        >>> # trainer.compile(perceptual_weight=0.0, usm_general=True, usm_blur=False)
        """
        refuse_unknown_kwargs("PBaSRTrainer.compile()", kwargs,
                              _parameter_names(PBaSRTrainer.compile))
        optimizers = {}
        for kind, given in (("g", g_optimizer), ("d", d_optimizer)):
            for branch in self.branches:
                if isinstance(given, dict):
                    if branch not in given:
                        raise ValueError(f"{kind}_optimizer dict lacks the {branch!r} branch")
                    optimizers[f"{kind}_{branch}"] = given[branch]
                else:
                    template = default_adam() if given is None else given
                    optimizers[f"{kind}_{branch}"] = _clone_optimizer(template)
        if perceptual_weight and perceptual_loss is None:
            perceptual_loss = PerceptualLoss.default()
        self.perceptual_loss = perceptual_loss if perceptual_weight else None
        self.loss_settings = {
            "pixel_weight": float(pixel_weight),
            "perceptual_weight": float(perceptual_weight),
            "gan_weight": float(gan_weight),
            "pixel_criterion": pixel_criterion,
            "gan_type": {"general": gan_type, "blur": blur_gan_type or gan_type},
            "usm": {"general": bool(usm_general), "blur": bool(usm_blur)},
            "d_warmup_steps": int(d_warmup_steps),
            "extra_loss_weight": float(extra_loss_weight),
        }
        composite = MultiOptimizer(optimizers)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if tf.distribute.has_strategy() and jit_compile is not False:
                # XLA under MirroredStrategy fails (docs/references.md, "Keras 3 across backends").
                jit_compile = False
        super().compile(optimizer=composite, jit_compile=jit_compile, run_eagerly=run_eagerly)
        networks = {}
        for branch in self.branches:
            networks[f"g_{branch}"] = self.generator(branch).trainable_variables
            networks[f"d_{branch}"] = self.discriminator(branch).trainable_variables
        composite.build_sub_optimizers(networks)
        self._layout_cache = self._ema_pairs_cache = None

    # ---- shared loss code (backend-agnostic; the train steps differentiate it) -------------

    def split_batch(self, data) -> dict:
        """{branch: (lr, hr, mask)} with general samples first, blur samples last."""
        if isinstance(data, (tuple, list)):
            data = data[0]
        if not isinstance(data, dict) or not {"lr", "hr", "mask"} <= set(data):
            raise ValueError(
                "PBaSRTrainer batches must be dicts with 'lr', 'hr', 'mask' (and 'is_blur'), "
                f"general samples first; got {type(data).__name__} "
                f"{sorted(data) if isinstance(data, dict) else ''}"
            )
        lr, hr, mask = (ops.convert_to_tensor(data[key]) for key in ("lr", "hr", "mask"))
        batch_size = lr.shape[0] if lr.shape[0] is not None else ops.shape(lr)[0]
        n_blur = blur_count(batch_size, self.blur_ratio)
        n_general = batch_size - n_blur
        parts = {}
        if "general" in self.branches:
            parts["general"] = (lr[:n_general], hr[:n_general], mask[:n_general])
        if "blur" in self.branches:
            parts["blur"] = (lr[n_general:], hr[n_general:], mask[n_general:])
        return parts

    def discriminate(self, branch: str, images, mask, training: bool = True):
        if branch == "general":
            return self.discriminator_general(images, training=training)
        return self.discriminator_blur([images, mask], training=training)

    def generator_forward(self, branch: str, lr, hr):
        """Training-mode SR of one branch and the backbone's own losses (`SRBackbone`'s
        `training_outputs` hook; {} for most backbones)."""
        return self.generator(branch).training_outputs(lr, hr, prior=self.generator_prior)

    def generator_losses(self, parts: dict):
        """Generator step forward: returns (total loss, logs, {branch: SR})."""
        settings = self.loss_settings
        total, logs, srs = 0.0, {}, {}
        for branch, (lr, hr, mask) in parts.items():
            sr, extra_losses = self.generator_forward(branch, lr, hr)
            target = usm_sharpen(hr) if settings["usm"][branch] else hr
            pixel = settings["pixel_weight"] * pixel_loss(sr, target, settings["pixel_criterion"])
            loss = pixel
            logs[f"{branch}_pixel"] = pixel
            if self.perceptual_loss is not None:
                perceptual = settings["perceptual_weight"] * self.perceptual_loss(sr, target)
                loss = loss + perceptual
                logs[f"{branch}_perceptual"] = perceptual
            for name, value in extra_losses.items():
                weighted = settings["extra_loss_weight"] * value
                loss = loss + weighted
                logs[f"{branch}_{name}"] = weighted
            fake_logits = self.discriminate(branch, sr, mask, training=True)
            gan = settings["gan_weight"] * gan_generator_loss(
                fake_logits, settings["gan_type"][branch]
            )
            logs[f"{branch}_gan"] = gan
            total = total + loss + gan
            srs[branch] = sr
        return total, logs, srs

    def discriminator_losses(self, parts: dict, srs: dict):
        """Discriminator step forward on real HR and the detached SR: (total loss, logs)."""
        total, logs = 0.0, {}
        for branch, (_, hr, mask) in parts.items():
            gan_type = self.loss_settings["gan_type"][branch]
            real_logits = self.discriminate(branch, hr, mask, training=True)
            fake_logits = self.discriminate(branch, ops.stop_gradient(srs[branch]), mask)
            real_term, fake_term = gan_discriminator_loss(real_logits, fake_logits, gan_type)
            logs[f"d_{branch}_real"] = real_term
            logs[f"d_{branch}_fake"] = fake_term
            if branch == "blur":
                per_pixel = gan_loss_map(ops.stop_gradient(real_logits), True, gan_type) + (
                    gan_loss_map(ops.stop_gradient(fake_logits), False, gan_type)
                )
                on_blur, on_sharp = region_means(per_pixel, mask)
                logs["d_blur_on_blur_pixels"] = on_blur
                logs["d_blur_on_sharp_pixels"] = on_sharp
            total = total + real_term + fake_term
        return total, logs

    # ---- state layout used by the backend steps --------------------------------------------

    def ema_variable_pairs(self) -> dict[str, list[tuple]]:
        """{branch: [(generator variable, EMA variable that follows it), ...]} for every branch
        with an EMA copy; the one place that pairs them (cached).

        EMA covers the generator's trainable weights only (BasicSR: parameters, not buffers).
        """
        if self._ema_pairs_cache is None:
            pairs = {}
            for branch in self.branches:
                ema = self.ema_generator(branch)
                if ema is not None:
                    weights = zip(self.generator(branch).weights, ema.weights)
                    pairs[branch] = [(src, dst) for src, dst in weights if src.trainable]
            # Set past Keras' attribute tracking: tracked, these generator variables would also
            # become the trainer's own weights and change its checkpoint layout.
            object.__setattr__(self, "_ema_pairs_cache", pairs)
        return self._ema_pairs_cache

    def state_layout(self) -> dict:
        """Positions of each network's variables in trainable_variables / non_trainable_variables
        and of each sub-optimizer's in optimizer.variables (cached after compile)."""
        if self._layout_cache is None:
            trainable = {id(v): i for i, v in enumerate(self.trainable_variables)}
            non_trainable = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
            layout = {"g": {}, "d": {}, "ema": {}}
            for branch in self.branches:
                layout["g"][branch] = [
                    trainable[id(v)] for v in self.generator(branch).trainable_variables
                ]
                layout["d"][branch] = [
                    trainable[id(v)] for v in self.discriminator(branch).trainable_variables
                ]
            for branch, pairs in self.ema_variable_pairs().items():
                layout["ema"][branch] = [
                    (trainable[id(src)], non_trainable[id(dst)]) for src, dst in pairs
                ]
            layout["optimizer"] = self.optimizer.variable_slices()
            own = self.optimizer.own_variables
            layout["iterations"] = [id(v) for v in own].index(id(self.optimizer.iterations))
            self._layout_cache = layout
        return self._layout_cache

    def finish_step(self, parts: dict, logs: dict, update_ema: Callable) -> dict:
        """The shared end of the stateful (TensorFlow, torch) train steps: the EMA update of
        the trained branches (`update_ema(pairs, decay)`, the backend's in-place update),
        the branch cosine when both branches trained, and one more step on the global step.
        The JAX step does the same on its explicit state (train_step_jax.py)."""
        pairs = [pair for branch in parts for pair in self.ema_variable_pairs().get(branch, [])]
        if pairs:
            update_ema(pairs, self.ema_decay)
        if len(parts) == 2:
            logs["branch_cosine"] = self.branch_cosine_of(
                [v.value for v in self.trainable_variables]
            )
        self.optimizer.iterations.assign_add(1)
        return logs

    def branch_cosine_of(self, values_by_index: Sequence):
        """Cosine of the two branches' generator weights, taken from a list of trainable
        values ordered like trainable_variables."""
        layout = self.state_layout()
        general = [values_by_index[i] for i in layout["g"]["general"]]
        blur = [values_by_index[i] for i in layout["g"]["blur"]]
        return branch_cosine(general, blur)

    def fit(self, x=None, *args, **kwargs):
        """keras.Model.fit; a Python generator may yield plain batch dicts (they are wrapped
        into the (inputs,) tuples Keras expects)."""
        if isinstance(x, types.GeneratorType):
            x = _as_input_tuples(x)
            kwargs.setdefault("shuffle", False)
        # BackupAndRestore sets _initial_epoch when it restores and Keras never clears it, so a
        # later fit of the same trainer would silently skip epochs.
        self._initial_epoch = None
        return super().fit(x, *args, **kwargs)

    def train_step(self, *args):
        return self._train_step_impl(self, *args)
