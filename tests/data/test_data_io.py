"""Image I/O, file builders, preflight and bad input (Pillow only, no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from keras_pbasr import data
from keras_pbasr.data import io, sources
from keras_pbasr.data.cache import numpy_batches, write_batch_cache
from keras_pbasr.utils.image_files import collect_inputs, images_by_stem, read_rgb

pytestmark = pytest.mark.backend_agnostic


def _rgb(rng, h=20, w=28) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(array, path, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_formats_read_exactly(tmp_path, rng, suffix):
    pixels = _rgb(rng)
    options = {"lossless": True} if suffix == ".webp" else {}
    path = _save(pixels, tmp_path / f"a{suffix}", **options)
    out = read_rgb(path)
    assert out.dtype == np.float32 and out.shape == (20, 28, 3)
    np.testing.assert_array_equal(out, pixels / np.float32(255))


def test_jpeg_reads_close(tmp_path):
    pixels = np.tile(np.linspace(0, 255, 28, dtype=np.uint8)[None, :, None], (20, 1, 3))
    out = read_rgb(_save(pixels, tmp_path / "a.jpg", quality=95))
    assert np.abs(out - pixels / 255.0).max() < 0.05


def test_sixteen_bit_gray_png_and_tiff(tmp_path):
    values = np.array([[0, 1000, 65535], [300, 40000, 12345]], dtype=np.uint16)
    for suffix in (".png", ".tif"):
        path = tmp_path / f"g16{suffix}"
        Image.fromarray(values).save(path)
        out = read_rgb(path)
        assert out.shape == (2, 3, 3)
        np.testing.assert_allclose(out[..., 0], values / 65535.0, atol=1e-7)
        assert np.array_equal(out[..., 0], out[..., 2])


def test_grayscale_expands_to_rgb(tmp_path, rng):
    gray = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    out = read_rgb(_save(gray, tmp_path / "g.png"))
    assert out.shape == (9, 7, 3)
    np.testing.assert_array_equal(out[..., 1], gray / np.float32(255))


def test_alpha_policies(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200  # red-ish colour everywhere
    rgba[0, 0, 3] = 0  # transparent
    rgba[1, 1, 3] = 255  # opaque
    rgba[0, 1, 3] = 128
    path = _save(rgba, tmp_path / "a.png")
    white = read_rgb(path)
    np.testing.assert_allclose(white[0, 0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(white[1, 1], [200 / 255, 0, 0], atol=1e-6)
    np.testing.assert_allclose(white[0, 1, 1], 1 - 128 / 255, atol=1e-6)
    dropped = read_rgb(path, alpha="drop")
    np.testing.assert_allclose(dropped[0, 0], [200 / 255, 0, 0], atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        read_rgb(path, alpha="black")


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :5] = 255  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rot.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    out = read_rgb(path)
    assert out.shape == (30, 10, 3)
    assert out[:5].mean() > 0.9 and out[-5:].mean() < 0.1  # the band is now on top
    assert io.image_header(path)["height"] == 30
    assert sources._decoder_for(io.image_header(path)) == sources.DECODE_PILLOW


def test_mask_threshold_and_polarity(tmp_path):
    values = np.array([[0, 100, 127, 128, 255]], np.uint8)
    path = _save(values, tmp_path / "m.png")
    sharp_high = io.read_mask(path)
    np.testing.assert_array_equal(sharp_high[0, :, 0], [0, 0, 0, 1, 1])
    inverted = io.read_mask(path, polarity="blur_high")
    np.testing.assert_array_equal(inverted[0, :, 0], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(io.read_mask(path, threshold=0.3)[0, :, 0], [0, 1, 1, 1, 1])


def test_garbage_and_truncated_files_name_the_file(tmp_path, rng):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(io.ImageReadError, match="garbage.png"):
        read_rgb(garbage)
    good = _save(_rgb(rng, 64, 64), tmp_path / "good.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(io.ImageReadError, match="truncated.png"):
        read_rgb(truncated)
    with pytest.raises(io.ImageReadError, match="truncated.png"):
        io.check_file_integrity(truncated)
    jpeg = _save(_rgb(rng, 64, 64), tmp_path / "good.jpg")
    cut_jpeg = tmp_path / "cut.jpg"
    cut_jpeg.write_bytes(jpeg.read_bytes()[:-200])
    with pytest.raises(io.ImageReadError, match="cut.jpg"):
        io.check_file_integrity(cut_jpeg)
    with pytest.raises(io.ImageReadError, match="missing.png"):
        read_rgb(tmp_path / "missing.png")


def test_list_images_errors_and_file_list(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        collect_inputs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        collect_inputs(tmp_path / "empty")
    (tmp_path / "hr" / "sub").mkdir(parents=True)
    _save(_rgb(rng), tmp_path / "hr" / "a.png")
    _save(_rgb(rng), tmp_path / "hr" / "sub" / "b.jpg")
    (tmp_path / "hr" / "notes.txt").write_text("x")
    assert [p.name for p in collect_inputs(tmp_path / "hr", recursive=True)] == ["a.png", "b.jpg"]
    assert [p.name for p in collect_inputs(tmp_path / "hr")] == ["a.png"]
    listing = tmp_path / "list.txt"
    listing.write_text("# chosen\nsub/b.jpg\n")
    assert [p.name for p in sources.listed_files(tmp_path / "hr", listing)] == ["b.jpg"]
    assert data.general_folder(tmp_path / "hr", file_list=listing).hr_paths == (
        str(tmp_path / "hr" / "sub" / "b.jpg"),)
    listing.write_text("gone.png\n")
    with pytest.raises(FileNotFoundError, match="missing"):
        sources.listed_files(tmp_path / "hr", listing)


def _blur_folders(tmp_path, rng, names=("a", "b", "c"), size=(40, 48)):
    (tmp_path / "hr").mkdir()
    (tmp_path / "mask").mkdir()
    for name in names:
        _save(_rgb(rng, *size), tmp_path / "hr" / f"{name}.png")
        _save((rng.random(size) > 0.5).astype(np.uint8) * 255, tmp_path / "mask" / f"{name}.png")
    return tmp_path / "hr", tmp_path / "mask"


def test_blur_pairs_by_stem_not_position(tmp_path, rng):
    hr, mask = _blur_folders(tmp_path, rng, names=("a", "b", "c"))
    (mask / "b.png").unlink()  # sorted-index pairing would now give a<->a, b<->c
    with pytest.raises(FileNotFoundError, match="b.png"):
        data.blur_folder(hr, mask)
    counter = data.DataErrorCounter()
    source = data.blur_folder(hr, mask, on_missing_mask="skip", error_counter=counter)
    pairs = [(p.split("/")[-1], m.split("/")[-1]) for p, m in
             zip(source.hr_paths, source.mask_paths)]
    assert pairs == [("a.png", "a.png"), ("c.png", "c.png")]
    assert counter.counts() == {"preflight": 1} and "b.png" in counter.errors[0].path


def test_preflight_bad_inputs(tmp_path, rng):
    hr, mask = _blur_folders(tmp_path, rng, names=("a", "b", "c", "d"))
    _save((rng.random((20, 20)) > 0.5).astype(np.uint8) * 255, mask / "b.png")  # wrong size
    (hr / "c.png").write_bytes((hr / "c.png").read_bytes()[:300])  # truncated
    (hr / "d.png").write_bytes(b"\x89PNG garbage")
    source = data.blur_folder(hr, mask)
    with pytest.raises(ValueError, match="b.png.*differs"):
        sources.preflight(source, min_size=32)
    with pytest.raises(ValueError, match="smaller than the 64x64 patch"):
        sources.preflight(data.SampleSource("general", (str(hr / "a.png"),)), min_size=64)
    counter = data.DataErrorCounter()
    checked = sources.preflight(source, min_size=32, on_error="skip", error_counter=counter)
    assert [p.split("/")[-1] for p in checked.hr_paths] == ["a.png"]
    assert len(checked.mask_paths) == len(checked.decoders) == 1
    assert len(counter) == 3 and "3 (preflight 3); 3 new" in counter.report()
    assert "0 new" in counter.report()
    # Damage inside JPEG data, end marker intact: only the full decode notices.
    jpeg = hr / "e.jpg"
    Image.fromarray(_rgb(rng, 40, 48)).save(jpeg)
    raw = bytearray(jpeg.read_bytes())
    raw[200:] = bytes(len(raw) - 202) + b"\xff\xd9"
    jpeg.write_bytes(bytes(raw))
    damaged = data.SampleSource("general", (str(jpeg),))
    assert len(sources.preflight(damaged, 32).hr_paths) == 1
    with pytest.raises(ValueError, match="e.jpg"):
        sources.preflight(damaged, 32, full_decode=True)
    with pytest.raises(ValueError, match="no usable"):
        sources.preflight(data.SampleSource("general", (str(hr / "d.png"),)), 32, "skip")


def test_data_error_report_callback_prints_counts():
    counter = data.DataErrorCounter()
    counter.add("x.png", "broken", "decode")
    lines = []
    data.DataErrorReport(counter, print_fn=lines.append).on_epoch_end(0)
    assert lines == ["epoch 1: skipped input files: 1 (decode 1); 1 new"]


def test_paired_folders_and_load_pair(tmp_path, rng):
    (tmp_path / "HR").mkdir()
    (tmp_path / "LR").mkdir()
    (tmp_path / "mask").mkdir()
    _save(_rgb(rng, 18, 21), tmp_path / "HR" / "baby.png")  # not a multiple of 4: mod-crop
    _save(_rgb(rng, 4, 5), tmp_path / "LR" / "babyx4.png")
    _save(np.full((18, 21), 255, np.uint8), tmp_path / "mask" / "baby.png")
    pairs = data.paired_folders(tmp_path / "LR", tmp_path / "HR", tmp_path / "mask", scale=4)
    assert [(p.name, p.lr_path.name) for p in pairs] == [("baby", "babyx4.png")]
    loaded = data.load_pair(pairs[0], scale=4)
    assert loaded["hr"].shape == (16, 20, 3) and loaded["mask"].shape == (16, 20, 1)
    assert loaded["mask"].min() == 1.0
    _save(_rgb(rng, 4, 5), tmp_path / "LR" / "babyx4.png")
    _save(_rgb(rng, 30, 30), tmp_path / "HR" / "other.png")
    with pytest.raises(FileNotFoundError, match="other.png"):
        data.paired_folders(tmp_path / "LR", tmp_path / "HR", scale=4)
    bad = data.ImagePair("baby", tmp_path / "LR" / "babyx4.png", tmp_path / "HR" / "other.png")
    with pytest.raises(ValueError, match="other.png"):
        data.load_pair(bad, scale=4)


def test_reblursr_layouts_and_subsets(tmp_path, rng):
    root = tmp_path / "ReBlurSR"
    (root / "ALL_HR").mkdir(parents=True)
    (root / "ALL_mask").mkdir()
    names = ["s0", "s1", "s2", "s3"]
    for name in names:
        _save(_rgb(rng, 8, 8), root / "ALL_HR" / f"{name}.png")
        _save(np.zeros((8, 8), np.uint8), root / "ALL_mask" / f"{name}.png")
    np.save(root / "defocus_motion_class.npy", np.array([0, 1, 0, 1]))
    np.save(root / "train_validation.npy", np.array([0, 0, 1, 1]))
    np.save(root / "degree_class.npy", np.array([0, 1, 2, 0]))
    np.save(root / "area_class.npy", np.array([2, 2, 1, 0]))
    stems = lambda s: [p.split("/")[-1] for p in s.hr_paths]  # noqa: E731
    assert stems(data.reblursr(root, "train")) == ["s0.png", "s1.png"]
    assert stems(data.reblursr(root, "train", blur_type="motion")) == ["s1.png"]
    assert stems(data.reblursr(root, "valid", intensity="heavy")) == ["s3.png"]
    assert stems(data.reblursr(root, "valid", area="medium")) == ["s2.png"]
    with pytest.raises(ValueError, match="no ReBlurSR samples"):
        data.reblursr(root, "train", area="large")
    with pytest.raises(ValueError, match="intensity"):
        data.reblursr(root, intensity="extreme")
    lr = root / "valid" / "defocus" / "LR" / "X4"
    lr.mkdir(parents=True)
    _save(_rgb(rng, 2, 2), lr / "s2.png")
    pairs = data.reblursr_validation_pairs(root, "defocus")
    assert [(p.name, p.mask_path.name) for p in pairs] == [("s2", "s2.png")]
    # The split layout written by the official script.
    split = tmp_path / "split"
    for kind in ("defocus", "motion"):
        for sub in ("HR", "mask"):
            (split / "train" / kind / sub).mkdir(parents=True)
            _save(_rgb(rng, 8, 8), split / "train" / kind / sub / f"{kind}1.png")
    assert stems(data.reblursr(split, "train")) == ["defocus1.png", "motion1.png"]
    with pytest.raises(ValueError, match="only blur_type"):
        data.reblursr(split, "train", area="small")


def test_numpy_batches_round_trip(tmp_path, rng):
    batches = [{
        "lr": rng.random((2, 4, 4, 3)).astype(np.float32),
        "hr": rng.random((2, 16, 16, 3)).astype(np.float32),
        "mask": (rng.random((2, 16, 16, 1)) > 0.5).astype(np.float32),
        "is_blur": np.array([0.0, 1.0], np.float32),
    } for _ in range(3)]
    path = write_batch_cache(iter(batches), tmp_path / "cache.npz", num_batches=3)
    loaded = list(numpy_batches(path, shuffle=False, repeat=False))
    assert len(loaded) == 3
    for original, again in zip(batches, loaded):
        assert again.keys() == original.keys()
        assert all(again[k].dtype == np.float32 for k in again)
        assert np.abs(again["hr"] - original["hr"]).max() <= 0.5 / 255 + 1e-6
        np.testing.assert_array_equal(again["mask"], original["mask"])
        np.testing.assert_array_equal(again["is_blur"], original["is_blur"])
    shuffled = numpy_batches(path, seed=1)
    assert len([next(shuffled) for _ in range(7)]) == 7  # repeats forever
    with pytest.raises(ValueError, match="ended after 3"):
        write_batch_cache(iter(batches), tmp_path / "more.npz", num_batches=4)
    with pytest.raises(FileNotFoundError, match="write_batch_cache"):
        next(numpy_batches(tmp_path / "none.npz"))


def test_shared_real_files(shared_data):
    real = shared_data / "real_lr"
    for name in ("children-alpha.png", "tree_alpha_16bit.png", "00017_gray.png", "wolf_gray.jpg"):
        image = read_rgb(real / name)
        assert image.shape[-1] == 3 and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
    assert io.image_header(real / "tree_alpha_16bit.png")["sixteen_bit"]
    cuhk = shared_data / "cuhk_blur"
    source = data.blur_folder(cuhk / "image", cuhk / "mask")
    assert len(source) == 6
    assert all(h.split("/")[-1][:-4] == m.split("/")[-1][:-4]
               for h, m in zip(source.hr_paths, source.mask_paths))
    mask = io.read_mask(source.mask_paths[0])
    assert 0 < mask.mean() < 1
    pairs = data.paired_folders(shared_data / "set5" / "LR_bicubic" / "X4",
                                shared_data / "set5" / "HR", scale=4)
    assert len(pairs) == 5
    loaded = data.load_pair(pairs[0], scale=4)
    assert loaded["hr"].shape[0] == 4 * loaded["lr"].shape[0]


# ---- the package's one reader (keras_pbasr.utils.image_files) ---------------------------------


def test_data_inference_and_metrics_share_one_reader(tmp_path, rng):
    from keras_pbasr.inference import read_image_array as inference_read_image
    from keras_pbasr.utils import image_files

    assert inference_read_image is image_files.read_image_array
    rgba = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    path = _save(rgba, tmp_path / "a.png")
    raw = inference_read_image(path)
    np.testing.assert_array_equal(raw, rgba)  # alpha kept, 8 bits kept
    np.testing.assert_array_equal(read_rgb(path), image_files.image_to_float_rgb(raw))
    np.testing.assert_array_equal(read_rgb(path, alpha="drop"),
                                  image_files.image_to_float_rgb(raw, alpha="drop"))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        inference_read_image(tmp_path / "missing.png")
    with pytest.raises(io.ImageReadError, match="missing.png"):
        inference_read_image(tmp_path / "missing.png")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, rng, orientation):
    from PIL import ImageOps

    from keras_pbasr.utils.image_files import read_image_array

    pixels = _rgb(rng, 4, 7)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(pixels, tmp_path / "o.png", exif=exif)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(read_image_array(path), expected)
    header = io.image_header(path)
    assert (header["height"], header["width"]) == expected.shape[:2]


def test_sixteen_bit_colour_png_keeps_sixteen_bits_everywhere(tmp_path, rng):
    """Pillow would reduce it to 8 bits; the one reader decodes it with pypng."""
    import png

    from keras_pbasr.inference import read_image_array as inference_read_image

    rgba = rng.integers(0, 65536, (3, 5, 4), dtype=np.uint16)
    path = tmp_path / "c16.png"
    with open(path, "wb") as handle:
        png.Writer(5, 3, greyscale=False, alpha=True, bitdepth=16).write(
            handle, rgba.reshape(3, 20)
        )
    np.testing.assert_array_equal(inference_read_image(path), rgba)
    dropped = read_rgb(path, alpha="drop")
    np.testing.assert_allclose(dropped, rgba[..., :3] / 65535.0, atol=1e-7)
    assert sources._decoder_for(io.image_header(path)) == sources.DECODE_PILLOW


def test_one_extension_list_for_every_folder_listing(tmp_path, rng):
    from keras_pbasr.cli.upscale import plan_outputs
    from keras_pbasr.utils.image_files import IMAGE_EXTENSIONS, find_image_files

    (tmp_path / "sub").mkdir()
    (tmp_path / "folder.png").mkdir()  # a folder is never an image
    (tmp_path / "notes.txt").write_text("x")
    top = [_save(_rgb(rng, 4, 4), tmp_path / f"a{i}{suffix.upper()}")
           for i, suffix in enumerate(IMAGE_EXTENSIONS)]
    nested = _save(_rgb(rng, 4, 4), tmp_path / "sub" / "n.png")
    assert find_image_files(tmp_path) == sorted(top)
    assert find_image_files(tmp_path, recursive=True) == sorted([*top, nested])
    # One recursion rule: a folder means its own images; sub-folders only when asked.
    assert collect_inputs(tmp_path) == sorted(top)
    assert collect_inputs(tmp_path, recursive=True) == sorted([*top, nested])
    assert [src for src, _ in plan_outputs(tmp_path, tmp_path / "out", "png")] == sorted(top)
    planned = plan_outputs(tmp_path, tmp_path / "out", "png", recursive=True)
    assert planned[-1] == (nested, tmp_path / "out" / "sub" / "n.png")
    assert sorted(images_by_stem(tmp_path).values()) == sorted(top)
    assert images_by_stem(tmp_path, recursive=True)["n"] == nested
