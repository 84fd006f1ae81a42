"""One Keras optimizer object that carries the state of several per-network optimizers.

Keras' JAX trainer threads only `model.optimizer.variables` through its jitted state, and the
weight checkpoints of `model.save_weights` (used by BackupAndRestore) store only
`model.optimizer`. A GAN with one optimizer per network therefore exposes all of them through this
composite: its `variables` are its own step counter followed by every sub-optimizer's variables,
so both the JAX state and the checkpoints hold every Adam moment.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


class MultiOptimizer(keras.optimizers.Optimizer):
    """Composite of named sub-optimizers; the trainer applies each sub-optimizer itself.

    `iterations` is the trainer's global step (incremented once per train step, also during
    discriminator warm-up when the generator optimizers do not step).

    Example:
    >>> opts = MultiOptimizer({"g": keras.optimizers.Adam(1e-4), "d": keras.optimizers.Adam(1e-4)})
    >>> # opts.build_sub_optimizers({"g": g.trainable_variables, "d": d.trainable_variables})
    """

    def __init__(self, optimizers: dict, name: str = "pbasr_optimizers"):
        # A dummy learning rate: the sub-optimizers carry the real ones.
        super().__init__(learning_rate=0.0, name=name)
        if not optimizers:
            raise ValueError("MultiOptimizer needs at least one sub-optimizer")
        self.sub_optimizer_names = list(optimizers)
        self.sub_optimizers = [optimizers[name] for name in self.sub_optimizer_names]

    def build_sub_optimizers(self, trainable_variables: dict[str, Sequence]) -> None:
        """Build each sub-optimizer on its network's trainable variables."""
        for name, optimizer in zip(self.sub_optimizer_names, self.sub_optimizers):
            if not optimizer.built:
                optimizer.build(list(trainable_variables[name]))
        self.built = True

    def build(self, variables):
        # Called by Keras' symbolic build only when unbuilt; the trainer builds in compile().
        if not self.built:
            raise RuntimeError("PBaSRTrainer.compile() builds the sub-optimizers; call it first")

    def sub_optimizer(self, name: str) -> keras.optimizers.Optimizer:
        return self.sub_optimizers[self.sub_optimizer_names.index(name)]

    @property
    def own_variables(self) -> list:
        """This optimizer's own variables (iterations, the dummy learning rate), without the
        sub-optimizers': the base class's public `variables`."""
        return super().variables

    def own_variable_count(self) -> int:
        return len(self.own_variables)

    def variable_slices(self) -> dict[str, slice]:
        """Where each sub-optimizer's variables sit in `self.variables`."""
        slices, start = {}, self.own_variable_count()
        for name, optimizer in zip(self.sub_optimizer_names, self.sub_optimizers):
            count = len(optimizer.variables)
            slices[name] = slice(start, start + count)
            start += count
        return slices

    @property
    def variables(self):
        merged = self.own_variables
        for optimizer in self.sub_optimizers:
            merged.extend(optimizer.variables)
        return merged

    def apply(self, grads, trainable_variables=None):
        raise NotImplementedError(
            "MultiOptimizer does not apply gradients itself; apply its sub_optimizers"
        )

    def get_config(self):
        config = super().get_config()
        config["optimizers"] = {
            name: keras.optimizers.serialize(opt)
            for name, opt in zip(self.sub_optimizer_names, self.sub_optimizers)
        }
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        optimizers = {
            name: keras.optimizers.deserialize(opt, custom_objects=custom_objects)
            for name, opt in config["optimizers"].items()
        }
        return cls(optimizers, name=config.get("name", "pbasr_optimizers"))
