"""PBaSRTrainer.train_step for the torch backend: autograd gradients of the generator loss (then
of the discriminator loss) with torch.autograd.grad, each network updated by its own sub-optimizer
under no_grad. Imported only when KERAS_BACKEND=torch."""

from __future__ import annotations

import torch


def _grads(loss, variables):
    params = [v.value for v in variables]
    return list(torch.autograd.grad(loss, params, allow_unused=True))


def train_step(trainer, data):
    parts = trainer.split_batch(data)
    composite = trainer.optimizer
    step = int(composite.iterations.value)

    g_total, logs, srs = trainer.generator_losses(parts)
    g_vars = {b: trainer.generator(b).trainable_variables for b in parts}
    flat_g = [v for b in parts for v in g_vars[b]]
    flat_grads = _grads(g_total, flat_g)
    if step >= trainer.loss_settings["d_warmup_steps"]:
        start = 0
        with torch.no_grad():
            for branch in parts:
                count = len(g_vars[branch])
                composite.sub_optimizer(f"g_{branch}").apply(
                    flat_grads[start : start + count], g_vars[branch]
                )
                start += count

    d_total, d_logs = trainer.discriminator_losses(parts, srs)
    d_vars = {b: trainer.discriminator(b).trainable_variables for b in parts}
    flat_d = [v for b in parts for v in d_vars[b]]
    flat_grads = _grads(d_total, flat_d)
    start = 0
    with torch.no_grad():
        for branch in parts:
            count = len(d_vars[branch])
            composite.sub_optimizer(f"d_{branch}").apply(
                flat_grads[start : start + count], d_vars[branch]
            )
            start += count
    logs.update(d_logs)

    with torch.no_grad():
        decay = trainer.ema_decay
        for branch in parts:
            ema = trainer.ema_generator(branch)
            if ema is None:
                continue
            for src, dst in zip(trainer.generator(branch).weights, ema.weights):
                if src.trainable:
                    dst.assign(dst.value * decay + src.value * (1.0 - decay))
        if len(parts) == 2:
            logs["branch_cosine"] = trainer.branch_cosine_of(
                [v.value for v in trainer.trainable_variables]
            )
        composite.iterations.assign_add(1)
    return {name: value.detach() for name, value in logs.items()}
