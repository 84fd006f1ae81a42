"""Pad-to-a-multiple and crop-back layers, so models with size constraints take any input."""

from __future__ import annotations

from keras import layers, ops, saving


def reflect_indices(length, padded_length):
    """Indices 0..padded_length-1 into an axis of `length` that continue it by mirror
    reflection without repeating the edge (torch/numpy 'reflect'). Beyond one reflection
    the pattern keeps bouncing, so inputs smaller than the padding still work."""
    period = ops.maximum(2 * (length - 1), 1)
    phase = ops.mod(ops.arange(padded_length), period)
    return ops.where(phase < length, phase, period - phase)


@saving.register_keras_serializable(package="keras_pbasr")
class ReflectPadToMultiple(layers.Layer):
    """Reflect-pads the bottom and right of (N, H, W, C) up to multiples of `multiple`
    (SRFormer's `check_image_size`,
    Real-ESRGAN's padding before an x2 / x1 RRDBNet)."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        # A gather rather than ops.pad(mode="reflect"): torch's reflect pad rejects a zero
        # pad on one axis and half precision on CPU.
        _, height, width, _ = ops.shape(x)
        padded_height = (height + self.multiple - 1) // self.multiple * self.multiple
        padded_width = (width + self.multiple - 1) // self.multiple * self.multiple
        x = ops.take(x, reflect_indices(height, padded_height), axis=1)
        return ops.take(x, reflect_indices(width, padded_width), axis=2)

    def compute_output_shape(self, input_shape):
        def padded(size):
            return None if size is None else -(-size // self.multiple) * self.multiple

        n, h, w, c = input_shape
        return (n, padded(h), padded(w), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@saving.register_keras_serializable(package="keras_pbasr")
class CropToScaledInput(layers.Layer):
    """Crops the upscaled output of a padded input back to (scale*H, scale*W) of the
    original input. Called on [sr, lr]."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        sr, lr = inputs
        batch, height, width, _ = ops.shape(lr)
        channels = ops.shape(sr)[-1]
        return ops.slice(sr, (0, 0, 0, 0), (batch, height * self.scale, width * self.scale,
                                            channels))

    def compute_output_shape(self, input_shapes):
        sr_shape, lr_shape = input_shapes
        n, h, w, _ = lr_shape
        s = self.scale
        return (n, None if h is None else h * s, None if w is None else w * s, sr_shape[-1])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def symmetric_indices(length, padded_length):
    """Indices 0..padded_length-1 into an axis of `length` that continue it by mirror
    reflection repeating the edge (numpy 'symmetric', torch.flip + cat); beyond one
    reflection the pattern keeps bouncing, so inputs smaller than the padding still work."""
    period = 2 * length
    phase = ops.mod(ops.arange(padded_length), period)
    return ops.where(phase < length, phase, period - 1 - phase)


@saving.register_keras_serializable(package="keras_pbasr")
class SymmetricPadPastMultiple(layers.Layer):
    """Symmetric-pads the bottom and right of (N, H, W, C) to the next multiple of `multiple`
    strictly above each size, i.e. by 1..multiple pixels (FeMaSR's and PBaSR's `test`, which
    pad by `(size // multiple + 1) * multiple - size` even when the size is a multiple)."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        _, height, width, _ = ops.shape(x)
        padded_height = (height // self.multiple + 1) * self.multiple
        padded_width = (width // self.multiple + 1) * self.multiple
        x = ops.take(x, symmetric_indices(height, padded_height), axis=1)
        return ops.take(x, symmetric_indices(width, padded_width), axis=2)

    def compute_output_shape(self, input_shape):
        def padded(size):
            return None if size is None else (size // self.multiple + 1) * self.multiple

        n, h, w, c = input_shape
        return (n, padded(h), padded(w), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}
