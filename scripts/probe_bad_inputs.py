"""Re-runs the probe classes of issue 17 against the `pbasr` CLI and the Python API.

    PYTHONPATH=$PWD python scripts/probe_bad_inputs.py WORK_DIR [--only ID,ID]

Every probe runs in a subprocess (the real `pbasr` entry point, or `python -c` for the API),
records the exit code and the first stderr line, and checks that no user file was lost or
changed (a snapshot of the probe's folder before and after). Prints a Markdown table.
Needs torch (checkpoints), the shared test images for the training probe, and a weights
cache in ~/.keras/keras_pbasr/weights (copied, never modified) for the cache probes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PBASR = [sys.executable, "-m", "keras_pbasr.cli"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "tensorflow"}
ENV.pop("TF_CPP_MIN_LOG_LEVEL", None)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(path: Path, width: int, height: int) -> Path:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                     + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))
    return path


def black_png(path: Path, size: int) -> Path:
    """A valid size x size RGB PNG of zeros, streamed (13000^2 is ~500 KB on disk)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (size * 3 + 1)
    data = b"".join(compressor.compress(row) for _ in range(size)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", data)
                     + png_chunk(b"IEND", b""))
    return path


def good_png(path: Path, size=(48, 40), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def snapshot(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(command: list[str], cwd: Path, timeout: int = 600) -> tuple[int, str, str]:
    proc = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def api(code: str, cwd: Path) -> tuple[int, str, str]:
    return run([sys.executable, "-c", code], cwd)


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "skipped" in line]
    return (errors or lines or [""])[0][:160]


class Probes:
    def __init__(self, work: Path):
        self.work = work
        self.rows: list[dict] = []
        self.preset = work / "tiny_preset"
        self.checkpoint = work / "srvgg.pth"

    def setup(self) -> None:
        import keras  # noqa: F401  (under ENV's backend, via the package)

        from keras_pbasr.models import SRVGGNetCompact
        from keras_pbasr.presets import save_to_preset

        model = SRVGGNetCompact(num_feat=4, num_conv=1)
        model(np.zeros((1, 8, 8, 3), np.float32))
        save_to_preset(model, self.preset, overwrite=True)
        import torch

        sys.path.insert(0, str(REPO / "tests"))
        from torch_reference.srvgg import TorchSRVGGNetCompact

        torch.manual_seed(0)
        torch.save({"params": TorchSRVGGNetCompact(num_feat=4, num_conv=1).state_dict()},
                   self.checkpoint)

    def folder(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def record(self, probe: str, command: str, code: int, expect: str, ok: bool,
               message: str, lost: bool) -> None:
        verdict = "clear error" if code not in (0,) and ok else ("handled" if ok else "FAIL")
        if lost:
            verdict = "FAIL (data lost)"
        self.rows.append(dict(probe=probe, command=command, code=code, expect=expect,
                              verdict=verdict, message=message, lost=lost))
        print(f"{probe}: exit {code} {verdict}: {message}", file=sys.stderr, flush=True)


def probe_interrupts(p: Probes) -> None:
    for overwrite in (False, True):
        folder = p.folder(f"interrupt_{overwrite}")
        source = good_png(folder / "big.png", (1200, 1200), seed=1)
        out = folder / "out.png"
        if overwrite:
            good_png(out, (10, 10), seed=2)
        before = snapshot(folder)
        command = [*PBASR, "upscale", str(source), str(out), "--preset", str(p.preset),
                   "--tile", "0", *(["--overwrite"] if overwrite else [])]
        proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if any(".part" in name for name in os.listdir(folder)):
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        after = snapshot(folder)
        leftovers = [n for n in os.listdir(folder) if ".part" in n]
        lost = after != before
        p.record(f"Ctrl-C during the PNG write{' with --overwrite' if overwrite else ''}",
                 "pbasr upscale big.png out.png --preset tiny --tile 0"
                 + (" --overwrite" if overwrite else ""), proc.returncode,
                 "old file or none, no .part", not leftovers and not lost,
                 first_line(err), lost)


def probe_cli(p: Probes, probe: str, build, args: list[str], expect: str,
              expected_code: int | None = 1, check=None, shown: str | None = None) -> None:
    folder = p.folder(probe.replace(" ", "_")[:40])
    build(folder)
    before = snapshot(folder)
    code, out, err = run([*PBASR, *[a.format(dir=folder, preset=p.preset) for a in args]],
                         folder)
    after = snapshot(folder)
    extra_ok = check(folder, out, err) if check else True
    written = set(after) - set(before)
    changed = {k for k in before if after.get(k) != before[k]}
    ok = (expected_code is None or code == expected_code) and expect in (out + err) and extra_ok
    ok = ok and "Traceback" not in err
    p.record(probe, shown or "pbasr " + " ".join(args).replace("{dir}/", "").replace(
        "{preset}", "tiny"), code, expect, ok,
        first_line(err if code else out + err) + (f" [new: {sorted(written)[:4]}]"
                                                   if written and code else ""),
        bool(changed))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    p = Probes(work)
    p.setup()
    probe_interrupts(p)

    def nothing(folder):
        return None

    def hard_link(folder):
        good_png(folder / "in.png")
        os.link(folder / "in.png", folder / "link.png")

    probe_cli(p, "output is a hard link to the input", hard_link,
              ["upscale", "{dir}/in.png", "{dir}/link.png", "--preset", "{preset}",
               "--overwrite"], "same file as the input")

    def bomb(folder):
        header_only_png(folder / "bomb.png", 50000, 50000)

    probe_cli(p, "PNG header 50000x50000 (upscale)", bomb,
              ["upscale", "{dir}/bomb.png", "{dir}/out.png", "--preset", "{preset}"],
              "decompression bomb")

    def bad_folder(folder):
        src = folder / "in"
        src.mkdir()
        good_png(src / "a_good.png", seed=3)
        header_only_png(src / "b_bomb.png", 50000, 50000)
        data = good_png(src / "c_truncated.png", (64, 64)).read_bytes()
        (src / "c_truncated.png").write_bytes(data[: len(data) // 2])
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(src / "d_tiny.png")
        good_png(src / "e_good.png", seed=4)

    probe_cli(p, "folder with a bomb and a truncated file (upscale)", bad_folder,
              ["upscale", "{dir}/in", "{dir}/out", "--preset", "{preset}"],
              "skipped 2 of 5", check=lambda f, o, e: len(os.listdir(f / "out")) == 3)

    def huge(folder):
        black_png(folder / "huge.png", 13000)

    probe_cli(p, "valid 13000x13000 PNG (~500 KB)", huge,
              ["upscale", "{dir}/huge.png", "{dir}/out.png", "--preset", "{preset}"],
              "over the limit of 32,000,000")
    probe_cli(p, "blurmap folder: bomb, truncated, 1x1", bad_folder,
              ["blurmap", "{dir}/in", "{dir}/masks", "--stats"], "skipped 3 of 5",
              check=lambda f, o, e: (f / "masks" / "stats.csv").read_text().count("\n") == 3)

    def masks_exist(folder):
        bad_folder(folder)
        (folder / "masks").mkdir()
        good_png(folder / "masks" / "a_good.png")

    probe_cli(p, "blurmap re-run with masks present", masks_exist,
              ["blurmap", "{dir}/in", "{dir}/masks", "--stats"], "pass --overwrite")

    def train_typo(folder):
        shared = REPO.parent / "shared" / "data"
        config = {
            "output_dir": str(folder / "run"),
            "backbone": {"class": "SRVGGNetCompact", "num_feat": 8, "num_convs": 2,
                         "upscale": 2},
            "discriminator": {"num_feat": 4},
            "data": {"general": str(shared / "bsd100" / "HR"),
                     "blur_hr": str(shared / "cuhk_blur" / "image"),
                     "blur_mask": str(shared / "cuhk_blur" / "mask"),
                     "batch_size": 4, "patch_size": 32},
            "loss": {"perceptual_weight": 0.0}, "steps": 2, "checkpoint_every": 2,
        }
        (folder / "train.yaml").write_text(json.dumps(config))

    probe_cli(p, "backbone argument typo in a train config", train_typo,
              ["train", "{dir}/train.yaml"], "unknown argument(s) ['num_convs']")

    def train_ok(folder):
        train_typo(folder)
        config = json.loads((folder / "train.yaml").read_text())
        config["backbone"]["num_conv"] = config["backbone"].pop("num_convs")
        (folder / "train.yaml").write_text(json.dumps(config))

    probe_cli(p, "2-step training under TensorFlow: no C++ log lines", train_ok,
              ["train", "{dir}/train.yaml"], "merged model saved", expected_code=0,
              check=lambda f, o, e: "remapper" not in e and "cpu_feature_guard" not in e
              and "I0000" not in e and "E0000" not in e)

    def checkpoint(folder):
        shutil.copy(p.checkpoint, folder / "net.pth")

    probe_cli(p, "convert --set with a typo", checkpoint,
              ["convert", "{dir}/net.pth", "{dir}/out", "--set", "act_typ=relu"], "act_typ")

    def bad_crc(folder):
        import zipfile

        checkpoint(folder)
        path = folder / "net.pth"
        with zipfile.ZipFile(path) as archive:
            info = next(i for i in archive.infolist() if i.filename.endswith("data/0"))
        data = bytearray(path.read_bytes())
        name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                        info.header_offset + 30])
        data[info.header_offset + 30 + name_len + extra_len + 1] ^= 0x40
        path.write_bytes(bytes(data))

    probe_cli(p, ".pth with a bad zip CRC", bad_crc,
              ["convert", "{dir}/net.pth", "{dir}/out"], "fails its CRC check")

    def nan_checkpoint(folder):
        import torch

        state = torch.load(p.checkpoint, weights_only=True)
        state["params"]["body.0.weight"].view(-1)[:5] = float("nan")
        torch.save(state, folder / "net.pth")

    probe_cli(p, ".pth with NaN weights", nan_checkpoint,
              ["convert", "{dir}/net.pth", "{dir}/out"], "NaN or infinite weights")
    probe_cli(p, ".pth with NaN weights, --allow-non-finite", nan_checkpoint,
              ["convert", "{dir}/net.pth", "{dir}/out", "--allow-non-finite"], "wrote",
              expected_code=0)

    def text_file(folder):
        (folder / "net.pth").write_text("num_feat: 64\nnot a checkpoint\n")

    probe_cli(p, "convert a plain text file", text_file,
              ["convert", "{dir}/net.pth", "{dir}/out"], "is not a PyTorch checkpoint",
              check=lambda f, o, e: "execute code" not in e)

    def out_not_empty(folder):
        checkpoint(folder)
        (folder / "out").mkdir()
        (folder / "out" / "mine.txt").write_text("mine")

    probe_cli(p, "convert into a non-empty folder", out_not_empty,
              ["convert", "{dir}/net.pth", "{dir}/out"], "pass --overwrite",
              check=lambda f, o, e: "overwrite=True" not in e.replace("(overwrite=True)", ""))

    def one_image(folder):
        good_png(folder / "in.png")

    probe_cli(p, "unknown output extension", one_image,
              ["upscale", "{dir}/in.png", "{dir}/out.xyz", "--preset", "{preset}"],
              "unknown image extension")
    probe_cli(p, "read-only output folder", one_image,
              ["upscale", "{dir}/in.png", "/tmp/p17/ro/new/out.png", "--preset", "{preset}"],
              "cannot write into", shown="pbasr upscale in.png RO_MOUNT/new/out.png --preset tiny",
              check=lambda f, o, e: not Path("/tmp/p17/ro/new").exists())

    def foreign_preset(folder):
        shutil.copytree(p.preset, folder / "preset")
        config = json.loads((folder / "preset" / "config.json").read_text())
        config.update(module="keras_pbasr.cli.__main__", registered_name="keras_pbasr>Main")
        (folder / "preset" / "config.json").write_text(json.dumps(config))
        good_png(folder / "in.png")

    probe_cli(p, "preset config.json naming keras_pbasr.cli.__main__", foreign_preset,
              ["upscale", "{dir}/in.png", "{dir}/out.png", "--preset", "{dir}/preset"],
              "nothing was imported")

    # API probes (python -c), each asserting the exception and its message.
    api_probes = {
        "RRDBNet(num_blocks=1)": (
            "from keras_pbasr import RRDBNet\nRRDBNet(num_blocks=1)", "['num_blocks']"),
        "upscale(model, float image with NaN and Inf)": (
            "import numpy as np\nfrom keras_pbasr import upscale, SRVGGNetCompact\n"
            "x = np.full((8, 8, 3), .5, 'float32'); x[0, 0] = np.nan; x[1, 1, 0] = np.inf\n"
            "upscale(SRVGGNetCompact(num_feat=4, num_conv=1), x)", "4 NaN or infinite"),
        "upscale(model, float image in [0, 3])": (
            "import numpy as np\nfrom keras_pbasr import upscale, SRVGGNetCompact\n"
            "upscale(SRVGGNetCompact(num_feat=4, num_conv=1), np.full((8, 8, 3), 3., 'f4'))",
            "outside [0, 1]"),
        "compute_metric('psnr', NaN image, hr)": (
            "import numpy as np\nfrom keras_pbasr.metrics.catalog import compute_metric\n"
            "x = np.full((1, 16, 16, 3), .5, 'f4'); y = x.copy(); y[0, 0, 0, 0] = np.nan\n"
            "compute_metric('psnr', y, x)", "1 NaN or infinite"),
        "read_image_array(bomb.png)": (
            f"from keras_pbasr.utils.image_files import read_image_array\n"
            f"read_image_array({str(header_only_png(work / 'bomb.png', 50000, 50000))!r})",
            "ImageTooLargeError"),
    }
    for name, (code_text, expect) in api_probes.items():
        code, out, err = api(code_text, work)
        ok = code == 1 and expect in err
        p.record(name, f"python -c '{name}'", code, expect, ok,
                 err.strip().splitlines()[-1][:160] if err.strip() else "", False)

    cache_source = Path("~/.keras/keras_pbasr/weights").expanduser()
    if (cache_source / "dists.npz").is_file():
        for damage in ("flipped byte", "tampered with matching record"):
            folder = p.folder(f"cache_{damage[:7]}")
            cache = folder / "weights"
            cache.mkdir()
            for name in ("lpips_alex", "alexnet", "dists"):
                for suffix in (".npz", ".json"):
                    shutil.copy(cache_source / f"{name}{suffix}", cache / f"{name}{suffix}")
            data = bytearray((cache / "lpips_alex.npz").read_bytes())
            data[len(data) // 3] ^= 0x40
            (cache / "lpips_alex.npz").write_bytes(bytes(data))
            if damage.startswith("tampered"):
                import hashlib

                record = json.loads((cache / "lpips_alex.json").read_text())
                record["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
                (cache / "lpips_alex.json").write_text(json.dumps(record))
            ENV["PBASR_WEIGHTS_DIR"] = str(cache)
            code, out, err = run([*PBASR, "weights", "list"], folder)
            p.record(f"weights cache, {damage}: list", "pbasr weights list", code, "CORRUPT",
                     code == 1 and "CORRUPT" in out,
                     next((line.strip() for line in out.splitlines() if "CORRUPT" in line),
                          "")[:160], False)
            (folder / "hr").mkdir()
            good_png(folder / "hr" / "a.png", (64, 64), seed=5)
            code, out, err = run([*PBASR, "evaluate", "--sr", str(folder / "hr"), "--hr",
                                  str(folder / "hr"), "--out", str(folder / "eval"),
                                  "--metrics", "lpips", "--no-plots", "--quiet"], folder)
            p.record(f"weights cache, {damage}: evaluate --metrics lpips",
                     "pbasr evaluate --sr hr --hr hr --out eval --metrics lpips", code,
                     "is corrupt", code != 0 and "is corrupt" in err and "Traceback" not in err,
                     first_line(err), False)
            code, out, err = run([*PBASR, "weights", "fetch", "lpips_alex"], folder)
            repaired = run([*PBASR, "weights", "list"], folder)
            p.record(f"weights cache, {damage}: fetch repairs",
                     "pbasr weights fetch lpips_alex; pbasr weights list", code,
                     "re-fetched",
                     code == 0 and repaired[0] == 0,
                     first_line(err) if code else "repaired: list exits 0", False)
            ENV.pop("PBASR_WEIGHTS_DIR")

    for command in (["--help"], ["info"], *([c, "--help"] for c in (
            "info", "train", "convert", "blurmap", "compare-backends", "upscale", "export",
            "weights", "evaluate"))):
        code, out, err = run([*PBASR, *command], work)
        p.record(f"quiet: pbasr {' '.join(command)}", f"pbasr {' '.join(command)}", code,
                 "empty stderr", code == 0 and err == "", err[:80], False)
    code, out, err = run([*PBASR, "--verbose", "info"], work)
    p.record("pbasr --verbose info keeps TF's lines", "pbasr --verbose info", code,
             "I0000 lines", "I0000" in err or "oneDNN" in err, first_line(err), False)

    print("| probe | command | exit | verdict | first error line | lost |")
    print("|---|---|---|---|---|---|")
    for r in p.rows:
        message = r["message"].replace("|", "/").replace(str(work), "W")
        print(f"| {r['probe']} | `{r['command']}` | {r['code']} | {r['verdict']} | "
              f"{message} | {'yes' if r['lost'] else 'no'} |")
    return 0 if all(not r["verdict"].startswith("FAIL") for r in p.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
