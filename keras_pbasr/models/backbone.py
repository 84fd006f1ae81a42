"""`SRBackbone`: the base class of every generator, and the contract the rest of the package reads.

The trainer, `upscale`, `pbasr train`, presets and converters need a few facts about a
generator: its upscaling factor, the multiple its input height and width must be, its channel
counts, whether it adds losses of its own during training. Every backbone states them here, in
one place, instead of each caller guessing with `getattr` (keras-hub's `Backbone`, with the
descriptor fields of spandrel's architecture registry).
"""

from __future__ import annotations

import keras


class SRBackbone(keras.Model):
    """A functional super-resolution generator: RGB in [0, 1] -> float32 SR image.

    A subclass builds its graph in `__init__` and hands it over with
    `super().__init__(inputs=..., outputs=..., scale=..., **kwargs)`. What it promises:

    - one input `(N, H, W, input_channels)`, channels_last, values in [0, 1];
    - one output `(N, scale*H, scale*W, output_channels)` in float32 under every dtype policy
      (end the graph with `float32_output`, or with a float32 layer of your own);
    - `size_multiple`: the multiple H and W must be for `model(x)`; 1 (the default) when the
      model pads inside and crops back, as every built-in backbone does. `upscale` pads its
      tiles to it;
    - `training_size_multiple`: the multiple H and W must be for the training forward
      (`training_outputs`); defaults to `size_multiple`. FeMaSR trains unpadded, so its LR
      patches must tile into its attention windows;
    - `get_config()`: returns `{**super().get_config(), <every constructor argument>}`; the
      base holds `name` and `trainable`, so saved `.keras` files and presets round-trip.

    `PBaSRTrainer` runs the training forward through `training_outputs(lr, hr, prior=None) ->
    (sr, {name: scalar loss})`; the base runs `model(lr, training=True)` and adds no loss. A
    backbone with losses of its own overrides it (FeMaSR: its codebook losses against the codes
    of the HR image given by `prior`).

    Example:
    >>> import numpy as np
    >>> class Nearest(SRBackbone):
    ...     def __init__(self, scale=2, **kwargs):
    ...         inputs = keras.Input((None, None, 3))
    ...         x = keras.layers.UpSampling2D(scale)(inputs)
    ...         super().__init__(inputs=inputs, outputs=SRBackbone.float32_output(x),
    ...                          scale=scale, **kwargs)
    ...     def get_config(self):
    ...         return {**super().get_config(), "scale": self.scale}
    >>> model = Nearest()
    >>> model.scale, model.size_multiple, model.input_channels, model.output_channels
    (2, 1, 3, 3)
    >>> model(np.zeros((1, 5, 7, 3), "float32")).shape
    (1, 10, 14, 3)
    """

    def __init__(self, *, inputs, outputs, scale: int, size_multiple: int = 1,
                 training_size_multiple: int | None = None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ValueError(f"{type(self).__name__}: an SRBackbone has one input and one output")
        if self.outputs[0].dtype != "float32":
            raise TypeError(
                f"{type(self).__name__}: the output must be float32 under every dtype policy, "
                f"got {self.outputs[0].dtype}; end the graph with SRBackbone.float32_output"
            )
        for what, value in (("scale", scale), ("size_multiple", size_multiple)):
            if int(value) != value or value < 1:
                raise ValueError(f"{type(self).__name__}: {what} must be a positive integer, "
                                 f"got {value!r}")
        self._scale = int(scale)
        self._size_multiple = int(size_multiple)
        self._training_size_multiple = int(training_size_multiple or size_multiple)

    @property
    def scale(self) -> int:
        """The integer upscaling factor: the output is `scale` times the input's H and W."""
        return self._scale

    @property
    def size_multiple(self) -> int:
        """The multiple the input H and W must be for `model(x)` (1: any size)."""
        return self._size_multiple

    @property
    def training_size_multiple(self) -> int:
        """The multiple the LR patch H and W must be for the training forward."""
        return self._training_size_multiple

    @property
    def input_channels(self) -> int:
        return int(self.inputs[0].shape[-1])

    @property
    def output_channels(self) -> int:
        return int(self.outputs[0].shape[-1])

    def training_outputs(self, lr, hr, prior=None) -> tuple:
        """The training-mode SR image of `lr` and the backbone's own losses ({} here).

        `hr` (the target) and `prior` (`PBaSRTrainer(generator_prior=...)`) are for backbones
        whose losses need them; LR H and W must be multiples of `training_size_multiple`.
        """
        return self(lr, training=True), {}

    @staticmethod
    def float32_output(x, name: str = "sr"):
        """The closing identity layer that makes the output float32 under mixed precision."""
        return keras.layers.Activation("linear", dtype="float32", name=name)(x)

    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable}
