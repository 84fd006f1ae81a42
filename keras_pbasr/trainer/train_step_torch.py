"""PBaSRTrainer.train_step for the torch backend: autograd gradients of the generator loss (then
of the discriminator loss) with torch.autograd.grad, each network updated by its own sub-optimizer
under no_grad. Imported only when KERAS_BACKEND=torch."""

from __future__ import annotations

import torch


def _grads(loss, variables):
    params = [v.value for v in variables]
    return list(torch.autograd.grad(loss, params, allow_unused=True))


def _apply_updates(trainer, kind, parts, variables, grads):
    start = 0
    with torch.no_grad():
        for branch in parts:
            count = len(variables[branch])
            trainer.optimizer.sub_optimizer(f"{kind}_{branch}").apply(
                grads[start : start + count], variables[branch]
            )
            start += count


def _update_ema(pairs, decay):
    """dst <- dst * decay + src * (1 - decay), in place, as two fused multi-tensor ops."""
    sources = [src.value for src, _ in pairs]
    targets = [dst.value for _, dst in pairs]
    torch._foreach_mul_(targets, decay)
    torch._foreach_add_(targets, sources, alpha=1.0 - decay)


def train_step(trainer, data):
    parts = trainer.split_batch(data)
    composite = trainer.optimizer

    g_total, logs, srs = trainer.generator_losses(parts)
    g_vars = {b: trainer.generator(b).trainable_variables for b in parts}
    g_grads = _grads(g_total, [v for b in parts for v in g_vars[b]])
    # Discriminator warm-up: a Python-level gate (reads the step only while there is a warm-up).
    warmup = trainer.loss_settings["d_warmup_steps"]
    if not warmup or int(composite.iterations.value) >= warmup:
        _apply_updates(trainer, "g", parts, g_vars, g_grads)

    d_total, d_logs = trainer.discriminator_losses(parts, srs)
    d_vars = {b: trainer.discriminator(b).trainable_variables for b in parts}
    d_grads = _grads(d_total, [v for b in parts for v in d_vars[b]])
    _apply_updates(trainer, "d", parts, d_vars, d_grads)
    logs.update(d_logs)

    with torch.no_grad():
        logs = trainer.finish_step(parts, logs, _update_ema)
    return {name: value.detach() for name, value in logs.items()}
