"""PBaSRTrainer.train_step for the JAX backend: stateless and jittable.

The trainer state (trainable, non-trainable, optimizer and metric values) arrives as arguments.
The shared loss code runs inside a StatelessScope that maps every variable to its value, so the
spectral-norm u/v updates and the EMA come back as new non-trainable values. All sub-optimizers'
variables travel in `optimizer_variables` (MultiOptimizer), each updated by its own
stateless_apply. Imported only when KERAS_BACKEND=jax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras


def _run_stateless(trainer, fn, trainable, non_trainable):
    """fn() with every trainer variable mapped to the given values; returns
    (fn's result, updated non-trainable values)."""
    mapping = list(zip(trainer.trainable_variables, trainable)) + list(
        zip(trainer.non_trainable_variables, non_trainable)
    )
    with keras.StatelessScope(state_mapping=mapping) as scope:
        result = fn()
    updated = []
    for var, old in zip(trainer.non_trainable_variables, non_trainable):
        new = scope.get_current_value(var)
        updated.append(old if new is None else new)
    return result, updated


def _replace(values, indices, new_values):
    values = list(values)
    for i, value in zip(indices, new_values):
        values[i] = value
    return values


def _apply_updates(trainer, kind, grads, weights, optimizer_vars):
    """Each branch's `kind` sub-optimizer on its network: `weights` and `optimizer_vars` are
    {branch: values}, `grads` the branches' gradients concatenated in that order; returns the
    new (weights, optimizer_vars)."""
    new_weights, new_optimizer_vars, start = {}, {}, 0
    for branch, values in weights.items():
        optimizer = trainer.optimizer.sub_optimizer(f"{kind}_{branch}")
        new_weights[branch], new_optimizer_vars[branch] = optimizer.stateless_apply(
            optimizer_vars[branch], grads[start : start + len(values)], values
        )
        start += len(values)
    return new_weights, new_optimizer_vars


def _network_step(trainer, kind, parts, loss_fn, state, gate=None):
    """Differentiate loss_fn w.r.t. the `kind` ("g" or "d") networks of all branches and apply
    each branch's sub-optimizer (only where the traced boolean `gate` is True, if given).
    Returns (aux of loss_fn, new state)."""
    trainable, non_trainable, optimizer_vars = state
    layout = trainer.state_layout()
    indices = [i for b in parts for i in layout[kind][b]]

    def loss_of(values):
        current = _replace(trainable, indices, values)
        (loss, aux), updated = _run_stateless(trainer, loss_fn, current, non_trainable)
        return loss, (aux, updated)

    (_, (aux, non_trainable)), grads = jax.value_and_grad(loss_of, has_aux=True)(
        [trainable[i] for i in indices]
    )
    slices = {b: layout["optimizer"][f"{kind}_{b}"] for b in parts}
    weights = {b: [trainable[i] for i in layout[kind][b]] for b in parts}
    opt_vars = {b: list(optimizer_vars[slices[b]]) for b in parts}
    new_weights, new_opt_vars = _apply_updates(trainer, kind, grads, weights, opt_vars)
    if gate is not None:
        # A select over these networks' values only: XLA fuses it into the update's elementwise
        # kernels, so it costs nothing measurable (a lax.cond measured slower: it blocks that
        # fusion and copies its outputs).
        new_weights, new_opt_vars = jax.tree.map(
            lambda new, old: jnp.where(gate, new, old), (new_weights, new_opt_vars),
            (weights, opt_vars),
        )
    weights, opt_vars = new_weights, new_opt_vars
    trainable, optimizer_vars = list(trainable), list(optimizer_vars)
    for branch in parts:
        trainable = _replace(trainable, layout[kind][branch], weights[branch])
        optimizer_vars[slices[branch]] = opt_vars[branch]
    return aux, (trainable, non_trainable, optimizer_vars)


def train_step(trainer, state, data):
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    layout = trainer.state_layout()
    parts = trainer.split_batch(data)
    step = optimizer_vars[layout["iterations"]]

    def generator_loss():
        total, logs, srs = trainer.generator_losses(parts)
        return total, (logs, srs)

    # Discriminator warm-up: the generators and their optimizer state stay unchanged.
    warmup = trainer.loss_settings["d_warmup_steps"]
    gate = step >= warmup if warmup else None
    (logs, srs), (trainable, non_trainable, optimizer_vars) = _network_step(
        trainer, "g", parts, generator_loss, (trainable, non_trainable, optimizer_vars), gate
    )

    def discriminator_loss():
        return trainer.discriminator_losses(parts, srs)

    d_logs, (trainable, non_trainable, optimizer_vars) = _network_step(
        trainer, "d", parts, discriminator_loss, (trainable, non_trainable, optimizer_vars)
    )
    logs.update(d_logs)

    decay = trainer.ema_decay
    non_trainable = list(non_trainable)
    for branch in parts:
        for src, dst in layout["ema"].get(branch, []):
            non_trainable[dst] = non_trainable[dst] * decay + trainable[src] * (1.0 - decay)
    if len(parts) == 2:
        logs["branch_cosine"] = trainer.branch_cosine_of(trainable)
    optimizer_vars = list(optimizer_vars)
    optimizer_vars[layout["iterations"]] = step + 1
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)
