"""keras_pbasr.upscale: tiling, image kinds, bit depths, outscale, batches, threads, CLI."""

from __future__ import annotations

import importlib
import threading

import keras
import numpy as np
import pytest
from PIL import Image

from keras_pbasr.cli import main as cli_main
from keras_pbasr.inference import UnsupportedImageError, read_image_array, upscale, write_image
from keras_pbasr.inference.tiling import (
    GPU_TILE_BATCH,
    feather_weights,
    pad_symmetric,
    resolve_batch_size,
    symmetric_pad_amount,
    tile_starts,
)
from keras_pbasr.models import SRVGGNetCompact
from keras_pbasr.presets import save_to_preset


def tiny_model(num_in_ch: int = 3) -> SRVGGNetCompact:
    # Receptive radius 4 LR pixels: an overlap of 16 discards exactly 4 on each inner side.
    model = SRVGGNetCompact(num_in_ch=num_in_ch, num_out_ch=num_in_ch, num_feat=8, num_conv=2)
    model(np.zeros((1, 8, 8, num_in_ch), "float32"))
    return model


# ---- pure geometry -------------------------------------------------------------------------


@pytest.mark.backend_agnostic
def test_pad_only_to_the_missing_multiple():
    assert [symmetric_pad_amount(s, 16) for s in (15, 16, 17, 32)] == [1, 0, 15, 0]
    assert symmetric_pad_amount(37, 1) == 0
    image = np.arange(3 * 5, dtype=np.float32).reshape(3, 5, 1)
    padded = pad_symmetric(image, 4)
    assert padded.shape == (4, 8, 1)
    np.testing.assert_array_equal(padded[3], padded[2])  # mirrored, edge repeated
    np.testing.assert_array_equal(padded[:, 5, 0], padded[:, 4, 0])


@pytest.mark.backend_agnostic
@pytest.mark.parametrize(
    "size,tile,overlap,multiple", [(100, 32, 8, 1), (97, 40, 16, 4), (30, 64, 8, 1)]
)
def test_tiles_cover_and_weights_sum_to_one(size, tile, overlap, multiple):
    size = size // multiple * multiple
    starts = tile_starts(size, min(tile, size), overlap, multiple)
    tile = min(tile, size)
    assert starts[0] == 0 and starts[-1] + tile == size
    assert all(s % multiple == 0 for s in starts)
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    weights = feather_weights(starts, tile, size, overlap)
    total = np.zeros(size)
    for s, w in zip(starts, weights):
        total[s : s + tile] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    if len(starts) > 1:
        # The outer quarter of the overlap next to an inner edge is discarded.
        assert np.all(weights[0][tile - overlap // 4 :] == 0)
        assert np.all(weights[-1][: overlap // 4] == 0)


@pytest.mark.backend_agnostic
def test_tile_overlap_must_leave_a_stride():
    with pytest.raises(ValueError, match="tile_overlap"):
        tile_starts(100, 16, 16)


# ---- tiling against whole-image inference --------------------------------------------------


@pytest.mark.parametrize(
    "shape,tile,overlap",
    [((37, 53), 24, 16), ((45, 29), 32, 16), ((61, 70), 40, 24)],
)
def test_tiled_equals_untiled(rng, shape, tile, overlap):
    model = tiny_model()
    image = rng.random((*shape, 3), dtype=np.float32)
    whole = upscale(model, image, tile=None)
    calls = []
    tiled = upscale(model, image, tile=tile, tile_overlap=overlap, batch_size=3,
                    progress=lambda done, total: calls.append(total))
    assert calls and calls[-1] > 1, "the image was not actually tiled"
    assert tiled.shape == whole.shape == (4 * shape[0], 4 * shape[1], 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-3)


@pytest.mark.backend_agnostic
def test_auto_batch_is_one_tile_per_cpu_device_and_four_on_a_gpu():
    assert resolve_batch_size("auto", gpu=False, devices=1) == 1
    assert resolve_batch_size("auto", gpu=False, devices=4) == 4
    assert resolve_batch_size("auto", gpu=True, devices=2) == GPU_TILE_BATCH
    assert resolve_batch_size(3, gpu=False, devices=1) == 3
    for bad in (0, -2, "four"):
        with pytest.raises(ValueError, match="batch_size"):
            resolve_batch_size(bad, gpu=False, devices=1)


def test_auto_batch_and_batches_of_tiles_give_the_same_image(rng):
    model = tiny_model()
    image = rng.random((37, 53, 3), dtype=np.float32)
    single = upscale(model, image, tile=24, tile_overlap=16, batch_size=1)
    for batch_size in ("auto", 4):
        np.testing.assert_allclose(
            upscale(model, image, tile=24, tile_overlap=16, batch_size=batch_size), single,
            atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        upscale(model, image, batch_size=0)


@pytest.mark.parametrize("shape,tile,overlap", [((37, 53), 24, 16), ((64, 48), 32, 16)])
def test_untiled_and_tiled_are_the_plain_forward(rng, shape, tile, overlap):
    """No padding unless the model needs a multiple: `upscale` is `model(x)` (clamped), as
    Real-ESRGAN's inference runs it; tiles take their context from the image only."""
    model = tiny_model()
    image = rng.random((*shape, 3), dtype=np.float32)
    plain = np.clip(keras.ops.convert_to_numpy(model(image[None]))[0], 0.0, 1.0)
    np.testing.assert_allclose(upscale(model, image, tile=None), plain, atol=1e-6)
    # Measured below 3e-7 (float32 summation order); overlap/4 covers the radius of 4 px.
    np.testing.assert_allclose(upscale(model, image, tile=tile, tile_overlap=overlap), plain,
                               atol=1e-5)


def test_hard_seams_without_overlap_differ(rng):
    """The comparison above can fail: tiles without overlap leave visible seams."""
    model = tiny_model()
    image = rng.random((40, 40, 3), dtype=np.float32)
    whole = upscale(model, image, tile=None)
    seamed = upscale(model, image, tile=16, tile_overlap=0)
    assert np.abs(seamed - whole).max() > 1e-3


# ---- image kinds and bit depths -------------------------------------------------------------


def test_uint8_uint16_and_float_keep_their_type(rng):
    model = tiny_model()
    base = rng.random((19, 23, 3), dtype=np.float32)
    out8 = upscale(model, np.round(base * 255).astype(np.uint8), tile=16, tile_overlap=8)
    out16 = upscale(model, np.round(base * 65535).astype(np.uint16), tile=16, tile_overlap=8)
    outf = upscale(model, base, tile=16, tile_overlap=8)
    assert out8.dtype == np.uint8 and out16.dtype == np.uint16 and outf.dtype == np.float32
    assert out8.shape == out16.shape == outf.shape == (76, 92, 3)
    # 16 bits are not rounded to 8: the values match the float result far below 1/255.
    assert np.abs(out16 / 65535.0 - np.clip(outf, 0, 1)).max() < 1e-4


def test_gray_stays_gray_and_rgba_keeps_alpha(rng):
    model = tiny_model()
    gray = (rng.random((21, 18)) * 255).astype(np.uint8)
    out = upscale(model, gray, tile=16, tile_overlap=8)
    assert out.shape == (84, 72) and out.dtype == np.uint8
    rgba = (rng.random((21, 18, 4)) * 255).astype(np.uint8)
    rgba[..., 3] = 200
    for alpha in ("model", "resize"):
        result = upscale(model, rgba, tile=16, tile_overlap=8, alpha=alpha)
        assert result.shape == (84, 72, 4)
    resized = upscale(model, rgba, alpha="resize")
    assert np.all(resized[..., 3] == 200)  # a bilinear resize keeps a constant alpha
    pil = upscale(model, Image.fromarray(rgba), tile=16, tile_overlap=8)
    assert isinstance(pil, Image.Image) and pil.mode == "RGBA" and pil.size == (72, 84)


def test_model_with_one_input_channel(rng):
    model = tiny_model(num_in_ch=1)
    out = upscale(model, (rng.random((10, 12)) * 255).astype(np.uint8), tile=None)
    assert out.shape == (40, 48)
    color = upscale(model, (rng.random((10, 12, 3)) * 255).astype(np.uint8), tile=None)
    assert color.shape == (40, 48, 1)


@pytest.mark.parametrize(
    "name,mode,bit_depth",
    [
        ("children-alpha.png", "RGBA", 8),
        ("tree_alpha_16bit.png", "RGBA", 16),
        ("00017_gray.png", "L", 8),
        ("wolf_gray.jpg", "L", 8),
    ],
)
def test_real_lr_files_keep_mode_and_bit_depth(shared_data, tmp_path, name, mode, bit_depth):
    source = shared_data / "real_lr" / name
    image = read_image_array(source)
    result = upscale(tiny_model(), source, tile=128, tile_overlap=16, batch_size=4)
    assert result.shape[:2] == (4 * image.shape[0], 4 * image.shape[1])
    assert result.dtype == (np.uint16 if bit_depth == 16 else np.uint8)
    out = tmp_path / f"{source.stem}.png"
    write_image(out, result)
    header = out.read_bytes()[:26]
    assert header[24] == bit_depth
    with Image.open(out) as img:
        assert img.mode == mode
    np.testing.assert_array_equal(read_image_array(out), result)


def test_unsupported_inputs_have_clear_errors(tmp_path):
    model = tiny_model()
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    with pytest.raises(UnsupportedImageError, match="notes.png"):
        upscale(model, fake)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        upscale(model, tmp_path / "missing.png")
    with pytest.raises(TypeError, match="int64"):
        upscale(model, np.zeros((8, 8, 3), np.int64))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        upscale(model, np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(TypeError, match="dict"):
        upscale(model, {"image": 1})
    with pytest.raises(UnsupportedImageError, match="JPEG has no alpha"):
        write_image(tmp_path / "x.jpg", np.zeros((4, 4, 4), np.uint8))


# ---- outscale, batches, threads, precision --------------------------------------------------


def test_outscale_resizes_the_network_result(rng):
    model = tiny_model()
    image = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    native = upscale(model, image, tile=None)
    assert upscale(model, image, tile=None, outscale=4).shape == native.shape
    assert upscale(model, image, tile=None, outscale=2).shape == (40, 60, 3)
    assert upscale(model, image, tile=None, outscale=3.5).shape == (70, 105, 3)
    half = upscale(model, image, tile=None, outscale=2).astype(np.float32)
    reference = np.asarray(Image.fromarray(native).resize((60, 40), Image.Resampling.LANCZOS))
    assert np.abs(half - reference).mean() < 2.0


def test_batch_and_list_equal_per_image_calls(rng):
    model = tiny_model()
    batch = (rng.random((3, 17, 22, 3)) * 255).astype(np.uint8)
    batched = upscale(model, batch, tile=16, tile_overlap=8)
    assert batched.shape == (3, 68, 88, 3)
    listed = upscale(model, list(batch), tile=16, tile_overlap=8)
    assert isinstance(listed, list) and len(listed) == 3
    for i in range(3):
        single = upscale(model, batch[i], tile=16, tile_overlap=8)
        np.testing.assert_array_equal(batched[i], single)
        np.testing.assert_array_equal(listed[i], single)


def test_concurrent_threads_equal_sequential_calls(rng):
    model = tiny_model()
    images = [rng.random((18 + i, 25 - i, 3), dtype=np.float32) for i in range(4)]
    sequential = [upscale(model, img, tile=16, tile_overlap=8) for img in images]
    results: list = [None] * len(images)
    errors: list = []

    def work(i):
        try:
            results[i] = upscale(model, images[i], tile=16, tile_overlap=8)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, expected in zip(results, sequential):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_mixed_precision_is_close_to_float32(rng):
    model = tiny_model()
    image = rng.random((16, 16, 3), dtype=np.float32)
    reference = upscale(model, image, tile=None)
    mixed = upscale(model, image, tile=None, precision="mixed_bfloat16")
    assert mixed.dtype == np.float32
    assert np.abs(mixed - reference).max() < 0.05
    with pytest.raises(ValueError, match="precision"):
        upscale(model, image, precision="float64")


def test_mixed_precision_copy_is_built_once_and_follows_the_weights(rng):
    # keras_pbasr.inference.upscale is the function; the module is reached by name.
    upscale_module = importlib.import_module("keras_pbasr.inference.upscale")
    model = tiny_model()
    image = rng.random((16, 16, 3), dtype=np.float32)
    first = upscale(model, image, tile=None, precision="mixed_bfloat16")
    clone = upscale_module._with_precision(model, "mixed_bfloat16")
    predictor = upscale_module._predictor(clone)
    np.testing.assert_array_equal(upscale(model, image, tile=None, precision="mixed_bfloat16"),
                                  first)
    assert upscale_module._with_precision(model, "mixed_bfloat16") is clone
    assert upscale_module._predictor(clone) is predictor
    assert clone.dtype_policy.name == "mixed_bfloat16"
    assert upscale_module._with_precision(model, "mixed_float16") is not clone

    model.set_weights([w * 0.5 for w in model.get_weights()])
    changed = upscale(model, image, tile=None, precision="mixed_bfloat16")
    assert np.abs(changed - first).max() > 0.01
    assert np.abs(changed - upscale(model, image, tile=None)).max() < 0.05


# ---- command line ---------------------------------------------------------------------------


def test_cli_upscale_folder_refuses_overwrites(tmp_path, rng, capsys):
    preset = save_to_preset(tiny_model(), tmp_path / "preset")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, shape in (("a.png", (20, 24, 3)), ("b.jpg", (18, 16, 3))):
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(inputs / name)
    Image.fromarray((rng.random((12, 10, 4)) * 255).astype(np.uint8)).save(inputs / "c.png")
    outputs = tmp_path / "out"
    args = ["upscale", str(inputs), str(outputs), "--preset", str(preset), "--tile", "16",
            "--tile-overlap", "8"]
    assert cli_main(args) == 0
    assert sorted(p.name for p in outputs.iterdir()) == ["a.png", "b.jpg", "c.png"]
    with Image.open(outputs / "c.png") as img:
        assert img.mode == "RGBA" and img.size == (40, 48)
    assert "tiles" in capsys.readouterr().err
    assert cli_main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main([*args, "--overwrite", "--batch-size", "3"]) == 0
    with pytest.raises(SystemExit):  # argparse: "expected 'auto' or a number"
        cli_main([*args, "--overwrite", "--batch-size", "many"])
    assert "expected 'auto' or a number" in capsys.readouterr().err
    # Writing into the input folder would replace the inputs: refused.
    assert cli_main(["upscale", str(inputs), str(inputs), "--preset", str(preset)]) == 1
    assert "over the input" in capsys.readouterr().err
    single = tmp_path / "single.png"
    assert cli_main(["upscale", str(inputs / "a.png"), str(single), "--preset", str(preset),
                     "--outscale", "2"]) == 0
    with Image.open(single) as img:
        assert img.size == (48, 40)


def test_cli_upscale_reports_bad_presets(tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    assert cli_main(["upscale", str(image), str(tmp_path / "o.png"), "--preset", "nope"]) == 1
    assert "unknown preset" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "option"), [("upscale", "--preset"), ("export", "--format")])
def test_cli_help(command, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([command, "--help"])
    assert exit_info.value.code == 0
    assert option in capsys.readouterr().out


def test_inference_predictor_equals_model_call(rng):
    """The inference predictor (torch: its own graph walk with direct convs; JAX: a jitted
    stateless call; TF: predict_on_batch) computes what the plain Keras call does, with
    convs of every kind it handles: LeakyReLU / ReLU / linear, both layouts, a 1x1 and a
    valid conv, a strided conv it leaves to Keras. Measured differences: 0 to 5e-7."""
    upscale_module = importlib.import_module("keras_pbasr.inference.upscale")
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="leaky_relu")(inputs)
    y = keras.layers.Permute((3, 1, 2))(x)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                            data_format="channels_first")(y)
    y = keras.layers.Conv2D(8, 1, data_format="channels_first")(y)
    x = keras.layers.Concatenate()([x, keras.layers.Permute((2, 3, 1))(y)])
    x = keras.layers.Conv2D(8, 3, padding="valid")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="leaky_relu")(x)
    x = keras.layers.UpSampling2D(2)(x)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(x))
    image = rng.random((2, 13, 11, 3), dtype=np.float32)
    expected = keras.ops.convert_to_numpy(model(image))
    predict = upscale_module._predictor(model)
    np.testing.assert_allclose(predict(image), expected, atol=2e-6)
    # New weights are used at once (the torch path caches its prepared kernels).
    model.set_weights([w * 0.5 for w in model.get_weights()])
    np.testing.assert_allclose(predict(image), keras.ops.convert_to_numpy(model(image)),
                               atol=2e-6)


@pytest.mark.backend_agnostic
def test_auto_tile_runs_small_images_whole_and_tiles_large_ones():
    from keras_pbasr.inference.tiling import AUTO_TILE_SIZE, AUTO_WHOLE_IMAGE_PIXELS, resolve_tile

    side = int(AUTO_WHOLE_IMAGE_PIXELS**0.5)
    assert resolve_tile("auto", side, side) is None
    assert resolve_tile("auto", side, side + 1) == AUTO_TILE_SIZE
    assert resolve_tile(0, 10, 10) is None and resolve_tile(None, 10, 10) is None
    assert resolve_tile(64, 10, 10) == 64
    with pytest.raises(ValueError, match="tile"):
        resolve_tile("big", 10, 10)


def test_default_upscale_is_the_plain_forward(rng):
    """tile="auto" (the default) runs a small image whole: exactly model(x), clipped."""
    model = SRVGGNetCompact(num_feat=8, num_conv=2)
    image = rng.random((40, 56, 3), dtype=np.float32)
    plain = np.clip(keras.ops.convert_to_numpy(model(image[None]))[0], 0, 1)
    np.testing.assert_allclose(upscale(model, image), plain, atol=1e-6)
