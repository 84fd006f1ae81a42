"""PBaSRTrainer.train_step for the TensorFlow backend: one GradientTape per step (generators,
then discriminators), each network updated by its own sub-optimizer. Imported only when
KERAS_BACKEND=tensorflow."""

from __future__ import annotations

import tensorflow as tf


def _apply_gated(optimizer, grads, variables, gate, optimizer_variables):
    """optimizer.apply, undone (bit-exactly) where `gate` is False (discriminator warm-up)."""
    if gate is None:
        optimizer.apply(grads, variables)
        return
    tracked = list(variables) + list(optimizer_variables)
    before = [tf.identity(v) for v in tracked]
    optimizer.apply(grads, variables)
    for var, old in zip(tracked, before):
        var.assign(tf.where(gate, var, old))


def _update_ema(pairs, decay):
    """dst <- dst * decay + src * (1 - decay); under a distribution strategy the EMA variables
    (aggregation NONE) are updated per device from the cross-replica context."""

    def update(dst, src):
        return dst.assign(dst * decay + src * (1.0 - decay))

    context = tf.distribute.get_replica_context()
    if tf.distribute.has_strategy() and context is not None:

        def cross_replica(strategy):
            for src, dst in pairs:
                strategy.extended.update(dst.value, update, args=(src.value,))

        context.merge_call(cross_replica)
        return
    for src, dst in pairs:
        update(dst.value, src.value)


def train_step(trainer, data):
    parts = trainer.split_batch(data)
    composite = trainer.optimizer
    step = composite.iterations
    # Per-replica losses are summed by the optimizers' all-reduce: scale for a mean.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync

    generators = {b: trainer.generator(b) for b in parts}
    with tf.GradientTape() as tape:
        g_total, logs, srs = trainer.generator_losses(parts)
        g_scaled = g_total / replicas
    g_vars = {b: generators[b].trainable_variables for b in parts}
    g_grads = tape.gradient(g_scaled, g_vars)
    warmup = trainer.loss_settings["d_warmup_steps"]
    gate = tf.greater_equal(step, warmup) if warmup else None
    for branch in parts:
        optimizer = composite.sub_optimizer(f"g_{branch}")
        _apply_gated(optimizer, g_grads[branch], g_vars[branch], gate, optimizer.variables)

    discriminators = {b: trainer.discriminator(b) for b in parts}
    with tf.GradientTape() as tape:
        d_total, d_logs = trainer.discriminator_losses(parts, srs)
        d_scaled = d_total / replicas
    d_vars = {b: discriminators[b].trainable_variables for b in parts}
    d_grads = tape.gradient(d_scaled, d_vars)
    for branch in parts:
        composite.sub_optimizer(f"d_{branch}").apply(d_grads[branch], d_vars[branch])
    logs.update(d_logs)

    pairs = []
    for branch in parts:
        ema = trainer.ema_generator(branch)
        if ema is not None:
            weights = zip(trainer.generator(branch).weights, ema.weights)
            pairs.extend((src, dst) for src, dst in weights if src.trainable)
    if pairs:
        _update_ema(pairs, trainer.ema_decay)
    if len(parts) == 2:
        logs["branch_cosine"] = trainer.branch_cosine_of(
            [v.value for v in trainer.trainable_variables]
        )
    step.assign_add(1)
    return logs
