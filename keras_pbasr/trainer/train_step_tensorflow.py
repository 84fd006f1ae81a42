"""PBaSRTrainer.train_step for the TensorFlow backend: one GradientTape per step (generators,
then discriminators), each network updated by its own sub-optimizer. Imported only when
KERAS_BACKEND=tensorflow."""

from __future__ import annotations

import tensorflow as tf


def _apply_generator_updates(trainer, grads, variables):
    for branch in variables:
        trainer.optimizer.sub_optimizer(f"g_{branch}").apply(grads[branch], variables[branch])


def _apply_generator_updates_after_warmup(trainer, grads, variables, gate):
    """The generator updates only where `gate` is True (discriminator warm-up)."""
    if not tf.distribute.has_strategy():
        # The skipped branch costs nothing: no update, no copies.
        def apply():
            _apply_generator_updates(trainer, grads, variables)
            return tf.constant(True)

        tf.cond(gate, apply, lambda: tf.constant(False))
        return
    # Under a distribution strategy the optimizers' cross-replica gradient sum (merge_call) is
    # not allowed inside tf.cond, so apply and undo the update bit-exactly while warming up
    # (this copies the generators and their optimizer state every step).
    tracked = [v for branch in variables for v in variables[branch]]
    for branch in variables:
        tracked.extend(trainer.optimizer.sub_optimizer(f"g_{branch}").variables)
    before = [tf.identity(v) for v in tracked]
    _apply_generator_updates(trainer, grads, variables)
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
    # Batches from a Python generator reach the graph as tensors that share memory with the
    # user's numpy arrays, and TF kernels may write their outputs into an input buffer they
    # think they own: without a copy, fit() overwrote batches that a generator yields again.
    # train_on_batch(x) passes (x, None, None): the absent targets stay None.
    data = tf.nest.map_structure(lambda x: x if x is None else tf.raw_ops.DeepCopy(x=x), data)
    parts = trainer.split_batch(data)
    composite = trainer.optimizer
    # Per-replica losses are summed by the optimizers' all-reduce: scale for a mean.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync

    with tf.GradientTape() as tape:
        g_total, logs, srs = trainer.generator_losses(parts)
        g_scaled = g_total / replicas
    g_vars = {b: trainer.generator(b).trainable_variables for b in parts}
    g_grads = tape.gradient(g_scaled, g_vars)
    warmup = trainer.loss_settings["d_warmup_steps"]
    if warmup:
        gate = tf.greater_equal(composite.iterations, warmup)
        _apply_generator_updates_after_warmup(trainer, g_grads, g_vars, gate)
    else:
        _apply_generator_updates(trainer, g_grads, g_vars)

    with tf.GradientTape() as tape:
        d_total, d_logs = trainer.discriminator_losses(parts, srs)
        d_scaled = d_total / replicas
    d_vars = {b: trainer.discriminator(b).trainable_variables for b in parts}
    d_grads = tape.gradient(d_scaled, d_vars)
    for branch in parts:
        composite.sub_optimizer(f"d_{branch}").apply(d_grads[branch], d_vars[branch])
    logs.update(d_logs)
    return trainer.finish_step(parts, logs, _update_ema)
