"""Kernels, degradations, geometric ops and the tf.data pipeline (TensorFlow, run once)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from keras_pbasr import data  # noqa: E402
from keras_pbasr.data import degradations as deg  # noqa: E402
from keras_pbasr.data import kernels, pipeline, synthetic  # noqa: E402
from keras_pbasr.utils.image_files import read_rgb  # noqa: E402

pytestmark = pytest.mark.backend_agnostic


def _texture(size=64, seed=0) -> np.ndarray:
    """A smooth-plus-edges test image in [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    base = 0.5 + 0.3 * np.sin(8 * x + 3 * y)[..., None] * np.array([1.0, 0.6, 0.3])
    base[size // 4: size // 2, size // 3: 2 * size // 3] = 0.15
    return np.clip(base + 0.05 * rng.standard_normal((size, size, 3)), 0.1, 0.9).astype("float32")


def test_kernels_sum_to_one_and_respect_size():
    made = [
        kernels.gaussian_kernel(21, 7, 2.0),
        kernels.gaussian_kernel(21, 13, 3.0, 0.5, 0.7),
        kernels.generalized_gaussian_kernel(21, 11, 2.0, 1.0, 0.3, 0.6),
        kernels.plateau_kernel(21, 9, 1.5, 2.5, -1.0, 1.7),
        kernels.sinc_kernel(21, 13, math.pi / 2),
        kernels.disc_kernel(33, 5.0),
        kernels.motion_kernel(33, 20.0, 0.4),
        kernels.shifted_gaussian_kernel(25, 1.2, 1.5),
        kernels.pulse_kernel(21),
    ]
    for kernel in made:
        assert abs(float(tf.reduce_sum(kernel)) - 1.0) < 1e-5
    outside = np.asarray(made[0]).copy()
    outside[7:14, 7:14] = 0
    assert np.abs(outside).max() == 0  # size 7 on a 21 grid: zero outside the middle 7x7
    for symmetric in made[:7]:
        np.testing.assert_allclose(symmetric, np.asarray(symmetric)[::-1, ::-1], atol=1e-7)


def test_gaussian_kernel_matches_formula():
    sigma_x, sigma_y, theta = 2.0, 0.8, 0.6
    ax = np.arange(-4, 5)
    xx, yy = np.meshgrid(ax, ax)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inverse = np.linalg.inv(rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T)
    grid = np.stack([xx, yy], -1)
    expected = np.exp(-0.5 * np.einsum("...i,ij,...j", grid, inverse, grid))
    expected /= expected.sum()
    np.testing.assert_allclose(kernels.gaussian_kernel(9, 9, sigma_x, sigma_y, theta), expected,
                               atol=1e-6)
    # Motion: a horizontal line stays on the middle row; disc: radial, centre is the maximum.
    line = np.asarray(kernels.motion_kernel(9, 6.0, 0.0))
    assert line[4].sum() > 0.99 and line[4, 1:8].min() > 0
    shifted = np.asarray(kernels.shifted_gaussian_kernel(25, 1.0, 1.5))
    centre = (shifted.sum(axis=0) * np.arange(25)).sum()
    assert abs(centre - (12 - 1.5)) < 1e-4  # moved up-left by (sf - 1) / 2 for sf = 4


def test_filter2d_equals_scipy_mirror_convolution(rng):
    ndimage = pytest.importorskip("scipy.ndimage")
    image = rng.random((13, 17, 3)).astype("float32")
    kernel = rng.random((7, 7)).astype("float32")
    kernel /= kernel.sum()  # not symmetric: checks the flip (true convolution)
    out = deg.filter2d(tf.constant(image), tf.constant(kernel)).numpy()
    expected = ndimage.convolve(image, kernel[..., None], mode="mirror")
    np.testing.assert_allclose(out, expected, atol=2e-5)
    tiny = rng.random((3, 2, 3)).astype("float32")  # smaller than the padding
    out = deg.filter2d(tf.constant(tiny), tf.constant(kernel)).numpy()
    np.testing.assert_allclose(out, ndimage.convolve(tiny, kernel[..., None], mode="mirror"),
                               atol=2e-5)


def test_noise_and_jpeg_change_the_image():
    image = tf.constant(_texture(32))
    rng = deg.StatelessRng(tf.constant([1, 2], tf.int64))
    gauss = deg.gaussian_noise(rng, image, 10 / 255, tf.constant(False)).numpy()
    gray = deg.gaussian_noise(rng, image, 10 / 255, tf.constant(True)).numpy() - image.numpy()
    poisson = deg.poisson_noise(rng, image, 1.0, tf.constant(False)).numpy()
    compressed = deg.jpeg(image, 20).numpy()
    for changed in (gauss, poisson, compressed):
        assert np.abs(changed - image.numpy()).mean() > 1e-3
    assert abs(np.std(gauss - image.numpy()) - 10 / 255) < 0.01
    # Gray noise: the same in all channels.
    np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-6)
    assert deg.jpeg(image, 95).numpy().max() <= 1.0


@pytest.mark.parametrize("name", ["bsrgan", "realesrgan"])
def test_degradation_outputs_are_sane_and_seeded(name):
    hr = tf.constant(_texture(64))
    run = pipeline._degradation_function(name, 4, 64)  # the pipeline's own traced function
    outputs = [run(hr, tf.constant([7, i], tf.int64)).numpy() for i in range(6)]
    for lr in outputs:
        assert lr.shape == (16, 16, 3) and lr.dtype == np.float32
        assert lr.min() >= 0.0 and lr.max() <= 1.0 and np.isfinite(lr).all()
    again = run(hr, tf.constant([7, 0], tf.int64)).numpy()
    np.testing.assert_array_equal(outputs[0], again)
    assert not np.array_equal(outputs[0], outputs[1])
    # The LR still resembles a plain bicubic downscale (same content, same place).
    reference = tf.image.resize(hr, (16, 16), "area").numpy()
    correlations = [np.corrcoef(lr.ravel(), reference.ravel())[0, 1] for lr in outputs]
    assert np.median(correlations) > 0.6
    if name == "bsrgan":
        x2 = deg.bsrgan_degradation(tf.constant(_texture(32)), 2, tf.constant([1, 1], tf.int64))
        assert x2.shape == (16, 16, 3)


def test_mask_follows_hr_through_every_geometric_op():
    size = 48
    mask = np.zeros((size, 40, 1), np.float32)
    mask[5:20, 3:30] = 1.0  # an asymmetric L shape
    mask[5:40, 3:9] = 1.0
    hr = np.repeat(mask, 3, axis=-1) * 0.8 + 0.1  # the image shows the mask

    @tf.function(autograph=False)
    def augment(seed, resize_range):
        crop_hr, crop_mask = pipeline.random_resize_crop(seed, hr, mask, 32, resize_range)
        stacked = pipeline.random_flip_rotate(seed + 1, tf.concat([crop_hr, crop_mask], -1))
        return stacked[..., :3], stacked[..., 3:]

    seen = set()
    for index in range(12):
        seed = tf.constant([3, index], tf.int64)
        out_hr, out_mask = (t.numpy() for t in augment(seed, None))
        np.testing.assert_array_equal((out_hr[..., 0] > 0.5).astype(np.float32), out_mask[..., 0])
        seen.add(out_mask.tobytes())
        out_hr, out_mask = (t.numpy() for t in augment(seed, (0.5, 0.9)))
        # Resized: HR is interpolated, the mask re-binarised from the same geometry.
        decided = np.abs(out_hr[..., 0] - 0.5) > 0.05
        np.testing.assert_array_equal((out_hr[..., 0] > 0.5)[decided],
                                      out_mask[..., 0][decided] > 0)
        assert set(np.unique(out_mask)) <= {0.0, 1.0}
    assert len(seen) > 6  # crops, flips and rotations differ between seeds


def test_synthetic_blur_kept_only_blurs_the_region():
    image = tf.constant(_texture(64))
    region = np.zeros((64, 64, 1), np.float32)
    region[:, 32:] = 1.0  # blur the right half
    hr, mask = synthetic.synthesize_blur_kept(image, tf.constant(region), tf.constant([1, 5]),
                                              kinds=("disc",), defocus_radius=(4.0, 4.0))
    hr, mask = hr.numpy(), mask.numpy()
    np.testing.assert_array_equal(mask, 1.0 - region)
    change = np.abs(hr - image.numpy()).mean(axis=-1)
    assert change[:, :20].max() < 1e-3  # far from the region: untouched
    assert change[:, 40:].mean() > 0.01  # inside: blurred
    generated = synthetic.depth_like_region(40, 30, tf.constant([0, 9])).numpy()
    assert generated.shape == (40, 30, 1) and 0.1 < generated.mean() < 0.8


def _folder_of_pngs(path, count, size, rng):
    path.mkdir()
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
            path / f"img{index}.png")
    return path


def test_skip_mode_counts_bad_files_and_raise_mode_names_them(tmp_path, rng):
    folder = _folder_of_pngs(tmp_path / "hr", 3, (40, 40), rng)
    (folder / "broken.png").write_bytes((folder / "img0.png").read_bytes()[:200])
    (folder / "small.png").write_bytes((folder / "img1.png").read_bytes())
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "small.png")
    with pytest.raises(ValueError, match="broken.png"):
        data.mixed_dataset(folder, batch_size=2, patch_size=32, blur_ratio=0.0, seed=1)
    counter = data.DataErrorCounter()
    ds = data.mixed_dataset(folder, batch_size=2, patch_size=32, blur_ratio=0.0, seed=1,
                            on_error="skip", error_counter=counter)
    batch = next(iter(ds))
    assert batch["hr"].shape == (2, 32, 32, 3)
    assert sorted(e.path.split("/")[-1] for e in counter.errors) == ["broken.png", "small.png"]
    with pytest.raises(ValueError, match="no blur source"):
        data.mixed_dataset(folder, batch_size=2, patch_size=32)


def _check_contract(batch, n_general, n_blur, patch, scale):
    batch_size = n_general + n_blur
    assert set(batch) == {"lr", "hr", "mask", "is_blur"}
    assert batch["lr"].shape == (batch_size, patch // scale, patch // scale, 3)
    assert batch["hr"].shape == (batch_size, patch, patch, 3)
    assert batch["mask"].shape == (batch_size, patch, patch, 1)
    assert all(batch[k].dtype == np.float32 for k in batch)
    np.testing.assert_array_equal(batch["is_blur"], [0.0] * n_general + [1.0] * n_blur)
    assert batch["mask"][:n_general].min() == 1.0
    assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
    for key in ("lr", "hr"):
        assert batch[key].min() >= 0.0 and batch[key].max() <= 1.0
    # LR was made from this very HR patch (after its flips): same content, same place.
    reference = tf.image.resize(batch["hr"], batch["lr"].shape[1:3], "area").numpy()
    correlations = [np.corrcoef(r.ravel(), lr.ravel())[0, 1]
                    for r, lr in zip(reference, batch["lr"])]
    assert np.median(correlations) > 0.5


def test_end_to_end_on_shared_data(shared_data, tmp_path):
    general_dir = shared_data / "bsd100" / "HR"
    listing = tmp_path / "subset.txt"
    listing.write_text("\n".join(f"img_{i:03d}.png" for i in range(1, 9)))
    general = data.general_folder(general_dir, file_list=listing)
    blur = data.blur_folder(shared_data / "cuhk_blur" / "image", shared_data / "cuhk_blur" / "mask")
    ds = data.mixed_dataset(general, blur, batch_size=4, patch_size=64, scale=4, seed=5)
    first = [{k: v.numpy() for k, v in b.items()} for b in ds.take(2)]
    for batch in first:
        _check_contract(batch, 2, 2, 64, 4)
    assert 0.0 < np.mean([b["mask"][2:].mean() for b in first]) < 1.0  # real blur maps
    assert not np.array_equal(first[0]["hr"], first[1]["hr"])
    again = {k: v.numpy() for k, v in next(iter(ds)).items()}  # a new pass, same seed
    for key in first[0]:
        np.testing.assert_array_equal(first[0][key], again[key])
    # Real-ESRGAN with synthetic blur-kept samples on real blur-region shapes, 3:1 mix.
    synthetic_source = data.synthetic_blur(general, shared_data / "cuhk_blur" / "mask")
    ds = data.mixed_dataset(general, synthetic_source, batch_size=4, patch_size=64,
                            degradation="realesrgan", blur_ratio=0.25, seed=0)
    batch = {k: v.numpy() for k, v in next(iter(ds)).items()}
    _check_contract(batch, 3, 1, 64, 4)


def test_tensorflow_and_pillow_decoders_agree(tmp_path, rng):
    from keras_pbasr.data import io, sources

    rgba = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray((gray > 128).astype(np.uint8) * 255).save(tmp_path / "mask.png")
    for name in ("rgba.png", "gray.png"):
        path = str(tmp_path / name)
        decoder = sources._decoder_for(io.image_header(path))
        assert decoder != sources.DECODE_PILLOW
        by_tf = pipeline._decode_image(tf.constant(path), tf.constant(decoder), "white",
                                       "raise", None)
        by_pillow = pipeline._decode_image(tf.constant(path), tf.constant(sources.DECODE_PILLOW),
                                           "white", "raise", None)
        np.testing.assert_allclose(by_tf.numpy(), read_rgb(path), atol=1e-6)
        np.testing.assert_allclose(by_pillow.numpy(), read_rgb(path), atol=1e-6)
    mask_path = str(tmp_path / "mask.png")
    for polarity in ("sharp_high", "blur_high"):
        by_tf = pipeline._decode_mask(tf.constant(mask_path), tf.constant(0), 0.5, polarity,
                                      "raise", None)
        np.testing.assert_array_equal(by_tf.numpy(), io.read_mask(mask_path, polarity=polarity))


def test_pillow_decode_failure_is_counted_in_skip_mode(tmp_path):
    from keras_pbasr.data import io

    broken = tmp_path / "broken16.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    counter = data.DataErrorCounter()
    reader = pipeline._pillow_reader(read_rgb, "skip", counter, 3)
    assert reader(tf.constant(str(broken))).shape == (0, 0, 3)
    assert counter.counts() == {"decode": 1} and "broken16.png" in counter.errors[0].path
    with pytest.raises(io.ImageReadError, match="broken16.png"):
        pipeline._pillow_reader(read_rgb, "raise", counter, 3)(tf.constant(str(broken)))
