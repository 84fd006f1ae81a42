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
from keras.src.backend import StatelessScope


def _run_stateless(trainer, fn, trainable, non_trainable):
    """fn() with every trainer variable mapped to the given values; returns
    (fn's result, updated non-trainable values)."""
    mapping = list(zip(trainer.trainable_variables, trainable)) + list(
        zip(trainer.non_trainable_variables, non_trainable)
    )
    with StatelessScope(state_mapping=mapping) as scope:
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


def _network_step(trainer, kind, parts, loss_fn, state):
    """Differentiate loss_fn w.r.t. the `kind` ("g" or "d") networks of all branches and apply
    each branch's sub-optimizer. Returns (aux of loss_fn, new state, applied flag inputs)."""
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
    new_trainable, new_optimizer_vars = list(trainable), list(optimizer_vars)
    start = 0
    for branch in parts:
        branch_indices = layout[kind][branch]
        count = len(branch_indices)
        name = f"{kind}_{branch}"
        where = layout["optimizer"][name]
        weights, opt_vars = trainer.optimizer.sub_optimizer(name).stateless_apply(
            optimizer_vars[where],
            grads[start : start + count],
            [trainable[i] for i in branch_indices],
        )
        new_trainable = _replace(new_trainable, branch_indices, weights)
        new_optimizer_vars[where] = opt_vars
        start += count
    return aux, (new_trainable, non_trainable, new_optimizer_vars)


def _select(gate, new, old):
    return [jnp.where(gate, n, o) for n, o in zip(new, old)]


def train_step(trainer, state, data):
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    layout = trainer.state_layout()
    parts = trainer.split_batch(data)
    step = optimizer_vars[layout["iterations"]]

    def generator_loss():
        total, logs, srs = trainer.generator_losses(parts)
        return total, (logs, srs)

    before = (trainable, optimizer_vars)
    (logs, srs), (trainable, non_trainable, optimizer_vars) = _network_step(
        trainer, "g", parts, generator_loss, (trainable, non_trainable, optimizer_vars)
    )
    warmup = trainer.loss_settings["d_warmup_steps"]
    if warmup:
        # Discriminator warm-up: keep the generators and their optimizer state unchanged.
        gate = step >= warmup
        trainable = _select(gate, trainable, before[0])
        optimizer_vars = _select(gate, optimizer_vars, before[1])

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
