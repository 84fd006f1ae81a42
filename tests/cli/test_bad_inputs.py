"""Bad inputs and faults (issue 17): each probe class gets a clear error and loses nothing.

Every case asserts the error type or exit code, that the message names the file or key, and
that no file was written or changed (`snapshot` compares a folder's files and bytes). Most
run in-process through the Python API or `keras_pbasr.cli.main`; the subprocess cases are
the interrupted write (SIGINT) and the quiet CLI.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_pbasr.cli import main as cli_main
from keras_pbasr.models import (
    ConditionalUNetDiscriminatorSN,
    FeMaSR,
    FeMaSRHQ,
    RRDBNet,
    SRFormer,
    SRVGGNetCompact,
    UNetDiscriminatorSN,
)
from keras_pbasr.presets import PresetError, from_preset, save_to_preset
from keras_pbasr.utils.atomic_files import (
    SameFileError,
    atomic_directory,
    atomic_output,
    check_writable_folder,
    output_folder,
    refuse_same_file,
)
from keras_pbasr.utils.image_files import (
    ImageReadError,
    ImageTooLargeError,
    SkippedFiles,
    read_image_array,
)
from keras_pbasr.utils.native_logs import invoked_as_cli, is_native_log_line

REPO = Path(__file__).resolve().parents[2]
# Error handling and file safety do not depend on the backend: run once, in the TF pass.
pytestmark = pytest.mark.backend_agnostic


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (hidden temporary files included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height; its pixel data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def good_png(path: Path, size=(24, 20), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def truncated_png(path: Path) -> Path:
    data = good_png(path, (64, 64)).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory) -> Path:
    model = SRVGGNetCompact(num_feat=4, num_conv=1)
    model(np.zeros((1, 8, 8, 3), np.float32))
    return save_to_preset(model, tmp_path_factory.mktemp("preset") / "tiny")


def bad_folder(folder: Path) -> Path:
    """A folder of inputs: two good images and a bomb, a truncated and a 1x1 file."""
    folder.mkdir()
    good_png(folder / "a_good.png", seed=1)
    header_only_png(folder / "b_bomb.png", 50000, 50000)
    truncated_png(folder / "c_truncated.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "d_tiny.png")
    good_png(folder / "e_good.png", seed=2)
    return folder


# ------------------------------------------------------------------ atomic writes, same file

def test_atomic_output_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old" and snapshot(tmp_path) == {"report.json": b"old"}
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "export") as tmp:
        (tmp / "saved_model.pb").write_text("half")
        raise KeyboardInterrupt
    assert snapshot(tmp_path) == {"report.json": b"old"}
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "old.pb").write_text("old export")
    with atomic_directory(tmp_path / "export") as tmp:
        (tmp / "new.pb").write_text("new export")
    assert sorted(os.listdir(tmp_path)) == ["export", "report.json"]
    assert os.listdir(tmp_path / "export") == ["new.pb"]


def test_output_folder_removes_the_folders_it_created_when_left_empty(tmp_path):
    with pytest.raises(ValueError), output_folder(tmp_path / "new" / "sub"):
        raise ValueError("every image failed")
    assert os.listdir(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        check_writable_folder(tmp_path / "file" / "out")


def test_hard_link_to_the_input_is_refused_and_the_input_kept(tmp_path, tiny_preset):
    source = good_png(tmp_path / "in.png")
    link = tmp_path / "link.png"
    os.link(source, link)
    with pytest.raises(SameFileError, match="link.png"):
        refuse_same_file(link, [source])
    assert cli_main(["upscale", str(source), str(link), "--preset", str(tiny_preset),
                     "--overwrite"]) == 1
    masks = tmp_path / "masks"
    masks.mkdir()
    os.link(source, masks / "in.png")
    before = snapshot(tmp_path)
    assert cli_main(["blurmap", str(source), str(masks), "--overwrite"]) == 1
    assert snapshot(tmp_path) == before


def test_sigint_during_a_large_png_write_leaves_the_old_file_or_none(tmp_path):
    """A subprocess writes a ~100 MB PNG; SIGINT arrives during the write."""
    # The child restores Python's SIGINT handler: a shell starts background jobs with SIGINT
    # ignored, and Python keeps an inherited SIG_IGN (seen when the suite ran under `cmd &`).
    script = (
        "import signal, sys, numpy as np\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from keras_pbasr.inference.image_io import write_image\n"
        "image = np.random.default_rng(0).integers(0, 255, (5000, 5000, 3), dtype=np.uint8)\n"
        "print('writing', flush=True)\n"
        "write_image(sys.argv[1], image)\n"
        "print('done', flush=True)\n"
    )
    for existing in (True, False):
        folder = tmp_path / f"existing_{existing}"
        folder.mkdir()
        out = folder / "out.png"
        if existing:
            good_png(out)
        before = snapshot(folder)
        env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "jax"}
        proc = subprocess.Popen([sys.executable, "-c", script, str(out)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        assert "done" not in stdout and "KeyboardInterrupt" in stderr
        assert snapshot(folder) == before  # the old file, or none; no .part file left


# ------------------------------------------------------------------ image reading, folder runs

def test_bomb_and_oversized_headers_raise_the_package_error_before_decoding(tmp_path,
                                                                             monkeypatch):
    with pytest.raises(ImageTooLargeError, match="bomb.png.*decompression bomb"):
        read_image_array(header_only_png(tmp_path / "bomb.png", 50000, 50000))
    with pytest.raises(ImageTooLargeError, match="big.png: 8000x8000.*PBASR_MAX_IMAGE_PIXELS"):
        read_image_array(header_only_png(tmp_path / "big.png", 8000, 8000))
    small = good_png(tmp_path / "small.png")
    monkeypatch.setenv("PBASR_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(ImageTooLargeError, match="small.png: 24x20"):
        read_image_array(small)
    assert read_image_array(small, max_pixels=24 * 20).shape == (20, 24, 3)
    with pytest.raises(ImageReadError, match="truncated.png"):
        read_image_array(truncated_png(tmp_path / "truncated.png"), max_pixels=10**9)


def test_a_float_tiff_with_nan_pixels_is_an_unreadable_image(tmp_path):
    values = np.full((6, 5), 0.5, np.float32)
    values[0, :2] = np.nan
    Image.fromarray(values).save(tmp_path / "nan.tif")
    with pytest.raises(ImageReadError, match="nan.tif: 2 NaN or infinite pixel"):
        read_image_array(tmp_path / "nan.tif")


def test_upscale_folder_skips_bad_files_processes_the_rest_and_exits_1(tmp_path, tiny_preset,
                                                                        capsys):
    inputs = bad_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert cli_main(["upscale", str(inputs), str(out), "--preset", str(tiny_preset)]) == 1
    err = capsys.readouterr().err
    for name in ("b_bomb.png", "c_truncated.png"):
        assert f"upscale: skipped {inputs / name}" in err
    assert "skipped 2 of 5 file(s)" in err
    assert sorted(os.listdir(out)) == ["a_good.png", "d_tiny.png", "e_good.png"]


def test_blurmap_folder_skips_bad_files_and_writes_stats_for_the_rest(tmp_path, capsys):
    inputs = bad_folder(tmp_path / "in")
    out = tmp_path / "masks"
    assert cli_main(["blurmap", str(inputs), str(out), "--stats"]) == 1
    err = capsys.readouterr().err
    for name in ("b_bomb.png", "c_truncated.png", "d_tiny.png"):
        assert f"blurmap: skipped {inputs / name}" in err
    assert sorted(os.listdir(out)) == ["a_good.png", "e_good.png", "stats.csv"]
    rows = (out / "stats.csv").read_text().splitlines()
    assert rows[0].startswith("image,") and [r.split(",")[0] for r in rows[1:]] == [
        "a_good.png", "e_good.png"]
    # A re-run is refused (outputs exist) before any work, and changes nothing.
    before = snapshot(out)
    assert cli_main(["blurmap", str(inputs), str(out), "--stats"]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err and snapshot(out) == before


def test_evaluate_skips_an_unreadable_image_and_exits_1(tmp_path, capsys):
    hr, sr = tmp_path / "hr", tmp_path / "sr"
    hr.mkdir()
    sr.mkdir()
    for stem in ("a", "b"):
        good_png(hr / f"{stem}.png", (32, 32), seed=3)
        good_png(sr / f"{stem}.png", (32, 32), seed=4)
    truncated_png(sr / "b.png")
    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--sr", str(sr), "--hr", str(hr), "--out", str(out),
                     "--metrics", "psnr", "--no-plots", "--quiet"]) == 1
    assert f"evaluate: skipped b: {sr / 'b.png'}" in capsys.readouterr().err
    report = json.loads((out / "results.json").read_text())
    assert list(report["images"]) == ["a"] and report["skipped"][0][0] == "b"


def test_training_data_skips_print_one_line_per_file(capsys):
    from keras_pbasr.data.errors import DataErrorCounter

    counter = DataErrorCounter()
    counter.add("data/x.png", "data/x.png: unreadable or corrupt image (truncated)", "decode")
    assert "training data: skipped data/x.png: unreadable" in capsys.readouterr().err
    assert counter.exit_code == 1 and SkippedFiles("t").exit_code == 0


# ------------------------------------------------------------------ outputs checked first

@pytest.mark.parametrize("output, message", [
    ("out.xyz", "unknown image extension '.xyz'"),
    ("file/out.png", "is a file"),
])
def test_bad_outputs_fail_before_the_model_loads(tmp_path, capsys, output, message):
    source = good_png(tmp_path / "in.png")
    (tmp_path / "file").write_text("not a folder")
    before = snapshot(tmp_path)
    # A preset that does not exist: the output error must come first.
    assert cli_main(["upscale", str(source), str(tmp_path / output), "--preset", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pbasr: error:") and message in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_a_failed_folder_run_leaves_no_empty_output_folder(tmp_path, tiny_preset):
    inputs = tmp_path / "in"
    inputs.mkdir()
    truncated_png(inputs / "broken.png")
    assert cli_main(["upscale", str(inputs), str(tmp_path / "new" / "out"),
                     "--preset", str(tiny_preset)]) == 1
    assert sorted(os.listdir(tmp_path)) == ["in"]


# ------------------------------------------------------------------ upscale and metric inputs

def test_non_finite_and_out_of_range_float_inputs_raise_unless_clipped(tiny_preset):
    from keras_pbasr.inference import upscale
    from keras_pbasr.metrics.catalog import compute_metric

    model = from_preset(tiny_preset)
    image = np.full((8, 8, 3), 0.5, np.float32)
    bad = image.copy()
    bad[0, 0, 0], bad[1, 1, 1] = np.nan, np.inf
    with pytest.raises(ValueError, match="2 NaN or infinite"):
        upscale(model, bad, tile=None)
    with pytest.raises(ValueError, match="192 value.*outside \\[0, 1\\].*clip=True"):
        upscale(model, image * 3, tile=None)
    assert upscale(model, image * 3, tile=None, clip=True).shape == (32, 32, 3)
    assert upscale(model, (image * 255).astype(np.uint8), tile=None).dtype == np.uint8
    with pytest.raises(ValueError, match="sr images: 2 NaN"):
        compute_metric("psnr", bad[None], image[None])
    with pytest.raises(ValueError, match="hr images: 192 value"):
        compute_metric("psnr", image[None], image[None] * 3)
    assert np.isfinite(compute_metric("psnr", image[None] * 3, image[None], clip=True)).all()


# ------------------------------------------------------------------ strict constructors

@pytest.mark.parametrize("cls", [RRDBNet, SRVGGNetCompact, SRFormer, FeMaSR, FeMaSRHQ,
                                 UNetDiscriminatorSN, ConditionalUNetDiscriminatorSN])
def test_constructors_refuse_unknown_arguments_listing_the_valid_ones(cls):
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['num_blocks'\]; valid: .*name"):
        cls(num_blocks=1)


# ------------------------------------------------------------------ checkpoints, convert

def srvgg_checkpoint(path: Path, poison: float | None = None) -> Path:
    torch = pytest.importorskip("torch")
    from torch_reference.srvgg import TorchSRVGGNetCompact

    torch.manual_seed(0)
    state = TorchSRVGGNetCompact(num_feat=4, num_conv=1).state_dict()
    if poison is not None:
        state["body.0.weight"].view(-1)[:3] = poison
    torch.save({"params": state}, path)
    return path


def flip_stored_byte(path: Path, member_suffix: str) -> None:
    """Changes one byte inside a stored (uncompressed) zip member, keeping its CRC field."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                    info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + 1] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("probe", ["set_typo", "crc", "non_finite", "text_file", "not_empty"])
def test_convert_refuses_bad_checkpoints_and_arguments(tmp_path, capsys, probe):
    checkpoint = srvgg_checkpoint(tmp_path / "net.pth",
                                  poison=float("nan") if probe == "non_finite" else None)
    out = tmp_path / "preset"
    args = ["convert", str(checkpoint), str(out)]
    expect = {
        "set_typo": "act_typ",
        "crc": "fails its CRC check",
        "non_finite": "NaN or infinite weights in body.0.weight (3)",
        "text_file": "is not a PyTorch checkpoint",
        "not_empty": "pass --overwrite",
    }[probe]
    if probe == "set_typo":
        args += ["--set", "act_typ=relu"]
    elif probe == "crc":
        flip_stored_byte(checkpoint, "data/0")
    elif probe == "text_file":
        checkpoint.write_text("num_feat: 64\nthis is a config, not a checkpoint\n")
    elif probe == "not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert cli_main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("pbasr: error:") and expect in err and "Traceback" not in err
    assert "execute code" not in err and "overwrite=True" not in err.replace("(overwrite=True)",
                                                                             "")
    assert snapshot(tmp_path) == before
    if probe == "non_finite":
        assert cli_main([*args, "--allow-non-finite"]) == 0
        assert (out / "model.weights.h5").is_file()


# ------------------------------------------------------------------ presets, weights cache

def test_a_preset_naming_a_foreign_module_is_refused_without_importing_it(tmp_path):
    model = SRVGGNetCompact(num_feat=4, num_conv=1)
    model(np.zeros((1, 8, 8, 3), np.float32))
    path = save_to_preset(model, tmp_path / "p")
    config = json.loads((path / "config.json").read_text())
    config.update(module="keras_pbasr.cli.__main__", registered_name="keras_pbasr>Main")
    (path / "config.json").write_text(json.dumps(config))
    sys.modules.pop("keras_pbasr.cli.__main__", None)
    with pytest.raises(PresetError, match="'keras_pbasr>Main'.*nothing was imported"):
        from_preset(path)
    assert "keras_pbasr.cli.__main__" not in sys.modules


@pytest.mark.parametrize("damage", ["flipped_byte", "tampered_with_record"])
def test_corrupt_weights_cache_entries_are_named_listed_and_fetched_again(
        tmp_path, monkeypatch, capsys, damage):
    from keras_pbasr.utils.file_hash import file_sha256
    from keras_pbasr.weights import fetch, store

    monkeypatch.setenv("PBASR_WEIGHTS_DIR", str(tmp_path))
    store.save_weights_arrays("dists", {"alpha": np.ones((1, 4), np.float32)}, {"kind": "test"})
    npz = tmp_path / "dists.npz"
    flip_stored_byte(npz, "alpha.npy")
    if damage == "tampered_with_record":
        record = json.loads((tmp_path / "dists.json").read_text())
        record["sha256"] = file_sha256(npz)
        (tmp_path / "dists.json").write_text(json.dumps(record))
    with pytest.raises(store.CorruptWeightsError, match="dists.npz is corrupt.*weights fetch"):
        store.load_weights_arrays("dists")
    assert cli_main(["weights", "list"]) == 1
    assert "CORRUPT" in capsys.readouterr().out
    refetched = []

    def fake_locate(artifact, artifacts_dir, tmp):  # no registry access in tests
        refetched.append(artifact.filename)
        raise RuntimeError("registry unreachable")

    monkeypatch.setattr(fetch, "locate_artifact", fake_locate)
    with pytest.raises(RuntimeError):
        fetch.fetch_weights(["dists"])
    assert refetched == [fetch.DISTS_WHEEL.filename]


# ------------------------------------------------------------------ CLI errors and quiet output

def test_cli_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    missing = str(tmp_path / "missing.png")
    assert cli_main(["upscale", missing, str(tmp_path / "o.png"), "--preset", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pbasr: error:") and "missing.png" in err
    assert cli_main(["upscale", missing, str(tmp_path / "o.png"), "--preset", "x",
                     "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_native_log_filter_recognises_tensorflow_records_only():
    assert is_native_log_line(b"I0000 00:00:1796544002.478193    5964 port.cc:153] oneDNN on")
    assert is_native_log_line(b"WARNING: All log messages before absl::InitializeLog() is "
                              b"called are written to STDERR")
    assert not is_native_log_line(b"pbasr: error: in.png: file not found")
    assert not is_native_log_line(b"Traceback (most recent call last):")
    assert invoked_as_cli(["/venv/bin/pbasr", "info"])
    assert invoked_as_cli(["python", "-m", "keras_pbasr.cli", "info"])
    assert not invoked_as_cli(["python", "-m", "pytest", "tests"])


def test_the_cli_is_quiet_under_tensorflow_unless_verbose():
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    quiet = subprocess.run([sys.executable, "-m", "keras_pbasr.cli", "upscale", "--help"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "usage: pbasr upscale" in quiet.stdout
    assert quiet.stderr == ""
