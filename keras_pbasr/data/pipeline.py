"""tf.data pipeline: decode -> random resize-crop -> flips/rotations -> LR synthesis -> batches.

See the package docstring (keras_pbasr.data) for the batch structure.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_pbasr.data import io
from keras_pbasr.data.degradations import DEGRADATIONS, StatelessRng, degrade
from keras_pbasr.data.errors import DataErrorCounter
from keras_pbasr.data.sources import (
    DECODE_PILLOW,
    DECODE_TF_ALPHA,
    DECODE_TF_RGB,
    ON_ERROR,
    SampleSource,
    blur_folder,
    general_folder,
    preflight,
)
from keras_pbasr.data.synthetic import depth_like_region, synthesize_blur_kept
from keras_pbasr.utils.image_files import read_rgb

# Sub-seeds of one element's seed, one per random stage.
_CROP, _SYNTHESIS, _DEGRADATION, _REGION, _FLIP = 1, 2, 3, 4, 5
_STREAM_GENERAL, _STREAM_BLUR = 0, 1


# ----------------------------------------------------------------------------- decoding


def _pillow_reader(read, on_error: str, counter: DataErrorCounter | None, channels: int):
    """A py_function body: Pillow read; in skip mode a failure returns an empty array."""

    def run(path):
        name = path.numpy().decode()
        try:
            return read(name)
        except io.ImageReadError as error:
            if on_error == "raise":
                raise
            if counter is not None:
                counter.add(name, str(error), "decode")
            return np.zeros((0, 0, channels), np.float32)

    return run


def _decode_image(path, decoder, alpha: str, on_error: str, counter) -> tf.Tensor:
    """float32 (H, W, 3) in [0, 1]; TF decodes 8-bit PNG/JPEG/WebP/BMP, Pillow the rest."""

    def tf_rgb():
        pixels = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.cast(pixels, tf.float32) / 255.0

    def tf_alpha():
        pixels = tf.io.decode_image(tf.io.read_file(path), channels=4, expand_animations=False)
        pixels = tf.cast(pixels, tf.float32) / 255.0
        rgb, weight = pixels[..., :3], pixels[..., 3:]
        return rgb * weight + (1.0 - weight) if alpha == "white" else rgb

    def pillow():
        read = _pillow_reader(lambda p: read_rgb(p, alpha), on_error, counter, 3)
        return tf.py_function(read, [path], tf.float32)

    branches = {DECODE_TF_RGB: tf_rgb, DECODE_TF_ALPHA: tf_alpha, DECODE_PILLOW: pillow}
    out = tf.switch_case(decoder, [_shape(branches[k], 3) for k in sorted(branches)])
    return out


def _decode_mask(path, decoder, threshold: float, polarity: str, on_error: str, counter):
    """float32 (H, W, 1), 1 = sharp, binarised like keras_pbasr.data.io.read_mask."""

    def tf_decoded():
        pixels = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        value = tf.reduce_mean(tf.cast(pixels, tf.float32), axis=-1, keepdims=True) / 255.0
        sharp = value >= threshold
        return tf.cast(tf.logical_not(sharp) if polarity == "blur_high" else sharp, tf.float32)

    def pillow():
        read = _pillow_reader(lambda p: io.read_mask(p, threshold, polarity), on_error, counter, 1)
        return tf.py_function(read, [path], tf.float32)

    branches = [_shape(tf_decoded, 1), _shape(tf_decoded, 1), _shape(pillow, 1)]
    return tf.switch_case(decoder, branches)


def _shape(fn, channels: int):
    def run():
        return tf.ensure_shape(fn(), [None, None, channels])

    return run


# ----------------------------------------------------------------------------- patches


def random_resize_crop(
    seed, hr: tf.Tensor, mask: tf.Tensor, patch_size: int, resize_range=None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Crops the same square from HR and mask; with resize_range=(low, high) the square has
    side patch_size / f for one factor f ~ U(low, high) (at least patch_size / short side) and
    both are resized to patch_size (HR bilinear with antialias, mask bilinear then >= 0.5)."""
    rng = StatelessRng(seed)
    hr, mask = tf.convert_to_tensor(hr, tf.float32), tf.convert_to_tensor(mask, tf.float32)
    height, width = tf.shape(hr)[0], tf.shape(hr)[1]
    short = tf.minimum(height, width)
    if resize_range is None:
        side = tf.constant(patch_size, tf.int32)
    else:
        low = tf.maximum(float(resize_range[0]), patch_size / tf.cast(short, tf.float32))
        factor = rng.uniform(low, tf.maximum(float(resize_range[1]), low) + 1e-6)
        side = tf.minimum(tf.cast(tf.round(patch_size / factor), tf.int32), short)
    top = tf.random.stateless_uniform((), rng.seed(), 0, height - side + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform((), rng.seed(), 0, width - side + 1, dtype=tf.int32)
    hr = hr[top:top + side, left:left + side]
    mask = mask[top:top + side, left:left + side]
    if resize_range is not None:
        size = (patch_size, patch_size)
        hr = tf.clip_by_value(tf.image.resize(hr, size, "bilinear", antialias=True), 0.0, 1.0)
        mask = tf.cast(tf.image.resize(mask, size, "bilinear", antialias=True) >= 0.5, tf.float32)
    return hr, mask


def random_flip_rotate(seed, stacked: tf.Tensor) -> tf.Tensor:
    """Horizontal flip, vertical flip and transpose (90-degree rotations with the flips), each
    with probability 0.5, applied to all channels of (P, P, C) together (BasicSR augment)."""
    rng = StatelessRng(seed)
    out = tf.where(rng.chance(0.5), tf.reverse(stacked, [1]), stacked)
    out = tf.where(rng.chance(0.5), tf.reverse(out, [0]), out)
    return tf.where(rng.chance(0.5), tf.transpose(out, [1, 0, 2]), out)


# ----------------------------------------------------------------------------- streams


def _plain(fn):
    # The graph code has no Python control flow on tensors; skipping AutoGraph's source
    # conversion cuts tracing time several-fold.
    return tf.autograph.experimental.do_not_convert(fn)


@functools.cache
def _degradation_function(degradation: str, scale: int, patch_size: int):
    # One traced function per setting, shared by both streams and by every dataset built in
    # this process: tracing the degradation graphs costs seconds.
    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([patch_size, patch_size, 3], tf.float32), tf.TensorSpec([2], tf.int64)])
    def run(hr, seed):
        lr = degrade(hr, scale, seed, degradation)
        return tf.ensure_shape(lr, [patch_size // scale, patch_size // scale, 3])

    return run


def _element_seed(seed: int, stream: int, index) -> tf.Tensor:
    base = tf.constant([seed, stream], tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))


def _sub_seed(element_seed, stage: int) -> tf.Tensor:
    return tf.cast(tf.random.experimental.stateless_fold_in(element_seed, stage), tf.int64)


def sample_dataset(
    source: SampleSource,
    *,
    patch_size: int = 256,
    scale: int = 4,
    degradation: str = "bsrgan",
    seed: int = 0,
    stream: int = 0,
    resize_range: tuple[float, float] | None = None,
    on_error: str = "raise",
    error_counter: DataErrorCounter | None = None,
    num_parallel_calls: int | None = None,
) -> tf.data.Dataset:
    """An endless, shuffled, unbatched stream of {"lr", "hr", "mask"} patches from one checked
    source (run `preflight` first, or use `mixed_dataset`, which does)."""
    if not source.decoders:
        raise ValueError("run keras_pbasr.data.sources.preflight on the source first")
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation must be one of {sorted(DEGRADATIONS)}, got {degradation!r}")
    if patch_size % scale:
        raise ValueError(f"patch_size {patch_size} must be a multiple of scale {scale}")
    parallel = num_parallel_calls or tf.data.AUTOTUNE
    kind = source.kind
    hr_paths = tf.constant(source.hr_paths)
    decoders = tf.constant(source.decoders, tf.int32)
    mask_paths = tf.constant(source.mask_paths) if kind == "blur" else None
    mask_decoders = tf.constant(source.mask_decoders, tf.int32) if kind == "blur" else None
    region_paths = tf.constant(source.region_paths) if source.region_paths else None
    region_decoders = tf.constant(source.region_decoders, tf.int32) if region_paths is not None \
        else None
    options = source.synthetic_options

    def load(index, file_index):
        element = _element_seed(seed, stream, index)
        hr = _decode_image(hr_paths[file_index], decoders[file_index], source.alpha, on_error,
                           error_counter)
        if kind == "blur":
            mask = _decode_mask(mask_paths[file_index], mask_decoders[file_index],
                                source.mask_threshold, source.mask_polarity, on_error,
                                error_counter)
        elif kind == "synthetic" and region_paths is not None:
            pick = tf.random.stateless_uniform((), _sub_seed(element, _REGION), 0,
                                               len(source.region_paths), dtype=tf.int32)
            sharp = _decode_mask(region_paths[pick], region_decoders[pick], 0.5,
                                 source.region_polarity, on_error, error_counter)
            size = tf.shape(hr)[:2]
            # Region shapes come from other photos: stretch them to this image.
            mask = tf.cast(tf.image.resize(sharp, size, "bilinear") >= 0.5, tf.float32)
        else:
            mask = tf.ones_like(hr[..., :1])
        return {"index": index, "hr": hr, "mask": mask}

    def usable(element):
        shape = tf.shape(element["hr"])
        mask_shape = tf.shape(element["mask"])
        return (tf.reduce_min(shape[:2]) > 0) & tf.reduce_all(mask_shape[:2] == shape[:2])

    def make_patch(element):
        seed_element = _element_seed(seed, stream, element["index"])
        hr, mask = random_resize_crop(_sub_seed(seed_element, _CROP), element["hr"],
                                      element["mask"], patch_size, resize_range)
        if kind == "synthetic":
            region = 1.0 - mask if region_paths is not None else depth_like_region(
                patch_size, patch_size, _sub_seed(seed_element, _REGION))
            hr, mask = synthesize_blur_kept(
                hr, region, _sub_seed(seed_element, _SYNTHESIS), options["kinds"],
                options["defocus_radius"], options["motion_length"], options["boundary_sigma"])
        stacked = random_flip_rotate(_sub_seed(seed_element, _FLIP),
                                     tf.concat([hr, mask], axis=-1))
        hr = tf.ensure_shape(stacked[..., :3], [patch_size, patch_size, 3])
        mask = tf.ensure_shape(stacked[..., 3:], [patch_size, patch_size, 1])
        lr = _degradation_function(degradation, scale, patch_size)(
            hr, _sub_seed(seed_element, _DEGRADATION))
        return {"lr": lr, "hr": hr, "mask": mask}

    count = len(source.hr_paths)

    def file_order(index):
        # Every epoch visits each file once, in an order drawn statelessly from (seed, epoch):
        # any new iterator over this dataset repeats the same sequence.
        epoch_seed = tf.random.experimental.stateless_fold_in(
            tf.constant([seed, stream + 100], tf.int64), index // count)
        order = tf.argsort(tf.random.stateless_uniform([count], epoch_seed))
        return index, tf.gather(order, tf.cast(index % count, tf.int32))

    dataset = tf.data.Dataset.counter().map(_plain(file_order)).map(
        _plain(load), num_parallel_calls=parallel, deterministic=True)
    if on_error == "skip":
        # Files that pass the preflight but still fail in a TensorFlow decoder are dropped
        # here (tf.data logs them); Pillow-decoded ones are counted by the reader itself.
        dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.filter(_plain(usable))
    return dataset.map(_plain(make_patch), num_parallel_calls=parallel, deterministic=True)


def _as_source(value, kind: str, error_counter) -> SampleSource | None:
    if value is None or isinstance(value, SampleSource):
        return value
    if kind == "blur":
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return blur_folder(value[0], value[1], error_counter=error_counter)
        raise TypeError("blur must be a SampleSource (blur_folder, reblursr, synthetic_blur) "
                        f"or an (hr_folder, mask_folder) pair, got {value!r}")
    return general_folder(value)


def mixed_dataset(
    general: SampleSource | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    blur: SampleSource | tuple[str | os.PathLike, str | os.PathLike] | None = None,
    *,
    batch_size: int = 16,
    patch_size: int = 256,
    scale: int = 4,
    degradation: str = "bsrgan",
    blur_ratio: float = 0.5,
    seed: int | None = None,
    on_error: str = "raise",
    error_counter: DataErrorCounter | None = None,
    general_resize_range: tuple[float, float] | None = None,
    blur_resize_range: tuple[float, float] | None = (0.5, 1.0),
    full_check: bool = False,
    num_parallel_calls: int | None = None,
    prefetch: int = 2,
) -> tf.data.Dataset:
    """Endless batches for PBaSR training: general samples first, blur samples last.

    n_blur = round(batch_size * blur_ratio) and n_general = batch_size - n_blur in every
    batch. Each element is {"lr" (B, P/s, P/s, 3), "hr" (B, P, P, 3), "mask" (B, P, P, 1),
    "is_blur" (B,)}, float32 (see keras_pbasr.data). All files are checked before the first
    batch (`preflight`): bad ones raise with the file name (on_error="raise") or are skipped
    and counted in `error_counter` (on_error="skip"); full_check=True also decodes every file
    once with Pillow first. The same seed gives the same batches.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if not 0.0 <= blur_ratio <= 1.0:
        raise ValueError(f"blur_ratio must be in [0, 1], got {blur_ratio}")
    n_blur = round(batch_size * blur_ratio)
    n_general = batch_size - n_blur
    general_source = _as_source(general, "general", error_counter)
    blur_source = _as_source(blur, "blur", error_counter)
    if n_general and general_source is None:
        raise ValueError(f"{n_general} general samples per batch but no general source given")
    if n_blur and blur_source is None:
        raise ValueError(f"{n_blur} blur samples per batch but no blur source given "
                         "(pass blur=..., or blur_ratio=0)")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    common = dict(patch_size=patch_size, scale=scale, degradation=degradation, seed=seed,
                  on_error=on_error, error_counter=error_counter,
                  num_parallel_calls=num_parallel_calls)
    parts = []
    if n_general:
        checked = preflight(general_source, patch_size, on_error, error_counter, full_check)
        parts.append((sample_dataset(checked, stream=_STREAM_GENERAL,
                                     resize_range=general_resize_range, **common)
                      .batch(n_general, drop_remainder=True), 0.0))
    if n_blur:
        checked = preflight(blur_source, patch_size, on_error, error_counter, full_check)
        parts.append((sample_dataset(checked, stream=_STREAM_BLUR,
                                     resize_range=blur_resize_range, **common)
                      .batch(n_blur, drop_remainder=True), 1.0))

    def with_flag(flag):
        def run(batch):
            count = tf.shape(batch["hr"])[0]
            return {**batch, "is_blur": tf.fill([count], tf.constant(flag, tf.float32))}

        return run

    flagged = [dataset.map(_plain(with_flag(flag))) for dataset, flag in parts]
    if len(flagged) == 1:
        dataset = flagged[0]
    else:
        dataset = tf.data.Dataset.zip(tuple(flagged)).map(_plain(
            lambda g, b: {key: tf.concat([g[key], b[key]], axis=0) for key in g}
        ))
    return dataset.prefetch(prefetch)
