"""`keras_pbasr.upscale`: super-resolve real images of any size with bounded memory.

The image is mirrored at the bottom and right only if the model needs a size multiple
(`SRBackbone.size_multiple`; 1 for every built-in backbone, so an untiled call is the plain
forward pass `model(x)`, as Real-ESRGAN's inference runs it), cut into tiles that overlap
and run through the network `batch_size` tiles at a time, blended with feathered weights into
a host (numpy) buffer, cropped, optionally resized to `outscale`, and converted back to the
input's kind, channel layout and bit depth.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_pbasr.inference.image_io import read_image_array
from keras_pbasr.inference.jax_sharding import local_device_count, shard_batch
from keras_pbasr.inference.tiling import (
    feather_weights,
    pad_symmetric,
    resolve_batch_size,
    resolve_tile,
    tile_starts,
)
from keras_pbasr.inference.torch_forward import build_torch_forward
from keras_pbasr.models.backbone import SRBackbone
from keras_pbasr.presets import from_preset
from keras_pbasr.utils.compiled_call import compiled_model_call
from keras_pbasr.utils.environment import gpu_visible
from keras_pbasr.utils.image_files import check_float_pixels

# Side of the blank image run once to find the scale of a model that is not an SRBackbone.
_SCALE_PROBE_SIZE = 16
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
ALPHA_MODES = ("model", "resize")
# cv2.COLOR_RGB2GRAY weights, used like the official code to turn a 3-channel result back to gray.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_predictors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# {model: {precision: copy of the model under that dtype policy}}; see _with_precision.
_precision_clones: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_predictors_lock = threading.Lock()

ProgressCallback = Callable[[int, int], None]


def _build_predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """A thread-safe numpy -> numpy forward pass in inference mode for `model`."""
    model_ref = weakref.ref(model)
    if keras.backend.backend() == "jax":
        forward = compiled_model_call(model)

        def predict(x: np.ndarray) -> np.ndarray:
            # Split over the local devices (both CPU cores when JAX exposes two: see
            # jax_sharding).
            sharded, batch = shard_batch(x)
            return np.asarray(forward(sharded))[:batch]

        return predict

    if keras.backend.backend() == "torch" and getattr(model, "_nodes_by_depth", None):
        # Direct convs (bias and activation fused, kernels prepared once), intermediates
        # freed after their last use: see torch_forward.
        return build_torch_forward(model)

    # TensorFlow: predict_on_batch reads the variables and writes no state; the predict
    # function is created here, once, under the lock.
    model.make_predict_function()

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model_ref().predict_on_batch(x))

    return predict


@functools.cache
def _tile_devices() -> tuple[bool, int]:
    """(a GPU is visible, devices a batch is split over): fixed once the backend runs, so
    looked up once per process."""
    return gpu_visible(), local_device_count() if keras.backend.backend() == "jax" else 1


def _predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    with _predictors_lock:
        predict = _predictors.get(model)
        if predict is None:
            predict = _build_predictor(model)
            _predictors[model] = predict
    return predict


def _with_precision(model: keras.Model, precision: str) -> keras.Model:
    """The model itself for float32, else its copy under the mixed dtype policy.

    The copy is built once per (model, policy) and kept while the model lives, so repeated
    calls reuse it and its compiled predictor; its weights are refreshed from the model on
    every call, so a model trained between calls is still upscaled with its current weights.
    """
    if precision == "float32":
        return model
    with _predictors_lock:
        clones = _precision_clones.setdefault(model, {})
        clone = clones.get(precision)
        if clone is None:
            # The dtype policy is thread-local Keras state, so this does not affect other
            # threads.
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy(precision)
            try:
                clone = model.__class__.from_config(model.get_config())
            finally:
                keras.config.set_dtype_policy(previous)
            clones[precision] = clone
    clone.set_weights(model.get_weights())
    return clone


def model_geometry(model: keras.Model) -> tuple[int, int, int]:
    """(scale, size multiple, input channels) of the network `upscale` runs.

    An `SRBackbone` states them (`scale`, `size_multiple`, `input_channels`); for any other
    one-input Keras model the scale is measured on a blank image and no multiple is needed.
    """
    if isinstance(model, SRBackbone):
        return model.scale, model.size_multiple, model.input_channels
    channels = int(model.inputs[0].shape[-1])
    probe = np.zeros((1, _SCALE_PROBE_SIZE, _SCALE_PROBE_SIZE, channels), "float32")
    return _predictor(model)(probe).shape[1] // _SCALE_PROBE_SIZE, 1, channels


def _run_network(
    predict: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    scale: int,
    multiple: int,
    tile: int | str | None,
    tile_overlap: int,
    batch_size: int,
    progress: ProgressCallback | None,
) -> np.ndarray:
    """(H, W, C) float32 in [0, 1] -> (scale*H, scale*W, C_out) float32, tile by tile.

    The image is padded only to a multiple of `multiple` (the model's own size constraint);
    tiles and their offsets are multiples of it.
    """
    height, width = image.shape[:2]
    tile = resolve_tile(tile, height, width)
    padded = pad_symmetric(image, multiple)
    padded_h, padded_w = padded.shape[:2]
    if tile:
        tile_size = tile // multiple * multiple
        if tile_size < multiple:
            raise ValueError(f"tile must be at least {multiple} pixels for this model, got {tile}")
    else:
        tile_size = max(padded_h, padded_w)
    tile_h, tile_w = min(tile_size, padded_h), min(tile_size, padded_w)
    starts_y = tile_starts(padded_h, tile_h, tile_overlap, multiple)
    starts_x = tile_starts(padded_w, tile_w, tile_overlap, multiple)
    # Blending happens at output resolution; the weights are separable over the tile grid.
    weights_y = feather_weights(
        [s * scale for s in starts_y], tile_h * scale, padded_h * scale, tile_overlap * scale
    )
    weights_x = feather_weights(
        [s * scale for s in starts_x], tile_w * scale, padded_w * scale, tile_overlap * scale
    )

    grid = [(iy, ix) for iy in range(len(starts_y)) for ix in range(len(starts_x))]
    output = None
    for first in range(0, len(grid), batch_size):
        chunk = grid[first : first + batch_size]
        batch = np.stack(
            [
                padded[starts_y[iy] : starts_y[iy] + tile_h, starts_x[ix] : starts_x[ix] + tile_w]
                for iy, ix in chunk
            ]
        )
        result = predict(batch)
        if output is None:
            output = np.zeros((padded_h * scale, padded_w * scale, result.shape[-1]), np.float32)
        for (iy, ix), tile_out in zip(chunk, result):
            y0, x0 = starts_y[iy] * scale, starts_x[ix] * scale
            weight = weights_y[iy][:, None, None] * weights_x[ix][None, :, None]
            output[y0 : y0 + tile_h * scale, x0 : x0 + tile_w * scale] += tile_out * weight
        if progress is not None:
            progress(min(first + batch_size, len(grid)), len(grid))
    return output[: height * scale, : width * scale]


def _resize(image: np.ndarray, size: tuple[int, int], lanczos: bool = True) -> np.ndarray:
    """Resizes (H, W, C) float32 to (height, width) channel by channel with Pillow."""
    from PIL import Image

    height, width = size
    if image.shape[:2] == (height, width):
        return image
    method = Image.Resampling.LANCZOS if lanczos else Image.Resampling.BILINEAR
    channels = [
        np.asarray(Image.fromarray(image[..., c]).resize((width, height), method))
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1)


def _to_float(array: np.ndarray, clip: bool = False) -> tuple[np.ndarray, Any]:
    """Array -> float32 [0, 1] (H, W, C) and the dtype to convert back to; float input is
    checked by `check_float_pixels` (non-finite values and values outside [0, 1] raise)."""
    if array.dtype == np.uint8:
        scaled = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        scaled = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        scaled = check_float_pixels(array.astype(np.float32), clip, "the input image")
    else:
        raise TypeError(
            f"unsupported pixel type {array.dtype}: use uint8, uint16 or float in [0, 1]"
        )
    if scaled.ndim == 2:
        scaled = scaled[..., None]
    if scaled.ndim != 3 or scaled.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}"
        )
    return scaled, array.dtype


def _from_float(image: np.ndarray, dtype: Any, squeeze: bool) -> np.ndarray:
    """Clips to [0, 1] and converts to `dtype`, a band of rows at a time so that no
    full-size float temporaries are created (large outputs run to gigabytes)."""
    out = np.empty(image.shape, dtype=dtype if dtype in (np.uint8, np.uint16) else np.float32)
    max_value = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype))
    for top in range(0, image.shape[0], 256):
        band = np.clip(image[top : top + 256], 0.0, 1.0)
        if max_value is not None:
            band = np.round(band * max_value)
        out[top : top + 256] = band
    return out[..., 0] if squeeze else out


def _upscale_one(
    array: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    scale: int,
    multiple: int,
    in_channels: int,
    tile: int | None,
    tile_overlap: int,
    outscale: float | None,
    alpha: str,
    batch_size: int,
    progress: ProgressCallback | None,
    clip: bool = False,
) -> np.ndarray:
    image, dtype = _to_float(array, clip)
    height, width, channels = image.shape

    def network(x: np.ndarray) -> np.ndarray:
        """Runs a 1- or 3-channel image, matching the model's channel count."""
        gray_in = x.shape[-1] == 1
        if gray_in and in_channels == 3:
            x = np.repeat(x, 3, axis=-1)
        elif not gray_in and in_channels == 1:
            x = (x @ _LUMA)[..., None]
        y = _run_network(predict, x, scale, multiple, tile, tile_overlap, batch_size, progress)
        if gray_in and y.shape[-1] == 3:
            y = (y @ _LUMA)[..., None]
        return y

    color = image[..., :3] if channels == 4 else image
    result = network(color)
    if channels == 4:
        if alpha == "model":
            alpha_out = network(image[..., 3:])
        else:
            alpha_out = _resize(image[..., 3:], result.shape[:2], lanczos=False)
        result = np.concatenate([result, alpha_out], axis=-1)
    if outscale is not None and outscale != scale:
        # Clamped first, as the official code does, so out-of-range values do not ring.
        result = _resize(np.clip(result, 0.0, 1.0), (int(height * outscale), int(width * outscale)))
    return _from_float(result, dtype, squeeze=array.ndim == 2)


def _pil_to_array(img) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img, dtype=np.uint16)
    if img.mode in ("L", "RGB", "RGBA"):
        return np.asarray(img)
    if img.mode == "LA" or (img.mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def _array_to_pil(array: np.ndarray, mode: str):
    from PIL import Image

    out = Image.fromarray(array)
    return out if out.mode == mode or mode not in ("L", "RGB", "RGBA") else out.convert(mode)


def upscale(
    model_or_preset: keras.Model | str | Path,
    image: Any,
    *,
    tile: int | str | None = "auto",
    tile_overlap: int = 32,
    outscale: float | None = None,
    alpha: str = "model",
    precision: str = "float32",
    batch_size: int | str = "auto",
    progress: ProgressCallback | None = None,
    clip: bool = False,
) -> Any:
    """Super-resolves one image or many, returning the same kind as given.

    Args:
        model_or_preset: a built super-resolution model, or a preset name or directory
            (loaded with `keras_pbasr.presets.from_preset` on every call; pass the model to
            reuse it).
        image: a file path (returns a numpy array with the file's bit depth), a PIL image
            (returns a PIL image of the same mode), a numpy array (H, W), (H, W, 1|3|4) or a
            batch (N, H, W, C), uint8, uint16 or float in [0, 1] (returns the same dtype and
            layout), or a list of any of these (returns a list).
        tile: tile size in input pixels (rounded down to the model's size multiple); `None`
            or 0 runs the whole image at once, which is the plain forward pass `model(x)` that
            Real-ESRGAN's inference runs by default; "auto" (default) does that up to
            512x512 input pixels and uses 256-pixel tiles above (memory stays bounded; tile
            seams then differ from the plain forward: for x4plus, whose receptive field spans
            hundreds of pixels, by up to ~20 levels on a few % of 8-bit values).
        tile_overlap: input pixels shared by neighbouring tiles; a quarter of it on each
            side is discarded and half is cross-faded. It should cover 4x the network's
            effective receptive radius for seamless output. Every kept pixel has at least
            tile_overlap/4 pixels of image context, so Real-ESRGAN's `tile_pad=P`
            corresponds to `tile_overlap=4*P`; at the image border the context stops at
            the border in both (no padding is added).
        outscale: final scale relative to the input; the network's result is resized with
            Lanczos when it differs from the network's own scale. Defaults to the latter.
        alpha: "model" runs an alpha channel through the network like a gray image;
            "resize" resizes it bilinearly.
        precision: "float32", "mixed_float16" or "mixed_bfloat16" (the model is rebuilt
            under that dtype policy on the first such call and the copy reused, with the
            model's current weights, on later calls).
        batch_size: tiles per forward pass; "auto" (default): one per device on a CPU
            (batching measured slower there; under JAX a batch is split over the local
            devices, see `keras_pbasr.inference.jax_sharding`), 4 on a GPU.
        progress: called as progress(done_tiles, total_tiles) for every image processed.
        clip: float input only: clip values outside [0, 1] instead of raising ValueError.
            NaN or infinite values always raise ValueError with their count; integer input
            is scaled by its dtype's range.

    Between calls it keeps only per-model caches (the compiled predictor and the mixed
    precision copy, dropped with the model), so threads may call it concurrently.

    Example:
    >>> import numpy as np
    >>> from keras_pbasr.models import SRVGGNetCompact
    >>> model = SRVGGNetCompact(num_feat=8, num_conv=2)
    >>> upscale(model, np.zeros((20, 30, 3), np.uint8), tile=16, tile_overlap=8).shape
    (80, 120, 3)
    """
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if tile_overlap < 0:
        raise ValueError(f"tile_overlap must be >= 0, got {tile_overlap}")
    batch_size = resolve_batch_size(batch_size, *_tile_devices())
    if outscale is not None and outscale <= 0:
        raise ValueError(f"outscale must be positive, got {outscale}")

    if isinstance(model_or_preset, keras.Model):
        model = model_or_preset
    else:
        model = from_preset(model_or_preset)
    model = _with_precision(model, precision)
    predict = _predictor(model)
    scale, multiple, in_channels = model_geometry(model)
    options = dict(
        predict=predict,
        scale=scale,
        multiple=multiple,
        in_channels=in_channels,
        tile=tile,
        tile_overlap=tile_overlap,
        outscale=outscale,
        alpha=alpha,
        batch_size=batch_size,
        progress=progress,
        clip=clip,
    )
    return _upscale_any(image, options)


def _upscale_any(image: Any, options: dict) -> Any:
    if isinstance(image, (list, tuple)):
        return [_upscale_any(item, options) for item in image]
    if isinstance(image, (str, Path)):
        return _upscale_one(read_image_array(image), **options)
    if isinstance(image, np.ndarray):
        if image.ndim == 4:
            return np.stack([_upscale_one(item, **options) for item in image])
        return _upscale_one(image, **options)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        result = _upscale_one(_pil_to_array(image), **options)
        return _array_to_pil(result, image.mode)
    if hasattr(image, "shape"):  # a backend tensor
        return _upscale_any(keras.ops.convert_to_numpy(image), options)
    raise TypeError(
        f"cannot upscale a {type(image).__name__}: pass a path, a PIL image, a numpy array "
        "or a list of these"
    )
