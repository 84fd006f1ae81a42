"""Evaluation plots (matplotlib, Agg backend): bar charts per subset and image crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_pbasr.data.io import read_blur_mask
from keras_pbasr.evaluation.reports import best_and_worst, ranking_metric
from keras_pbasr.utils.atomic_files import atomic_output
from keras_pbasr.utils.image_files import read_rgb

CROP = 256  # side of the crops shown for the best and worst images, in HR pixels


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (only plots need it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_figure(fig, path: Path) -> Path:
    """Writes `fig` as a PNG through a temporary file beside `path`, then closes it."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90)
    pyplot().close(fig)
    return path


def plot_subset_bars(report: dict, out_dir: Path) -> list[Path]:
    """One figure per region: a bar chart of each metric's mean per subset."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    metrics = report["settings"]["metrics"]
    subsets = list(report["aggregates"])
    for region in report["settings"]["regions"]:
        shown = [m for m in metrics
                 if any(m in report["aggregates"][s].get(region, {}) for s in subsets)]
        if not shown:
            continue
        fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], shown):
            means = [report["aggregates"][s].get(region, {}).get(metric, {}).get("mean")
                     for s in subsets]
            heights = [np.nan if m is None else m for m in means]
            ax.bar(range(len(subsets)), heights, color="tab:blue")
            ax.set_xticks(range(len(subsets)), subsets, rotation=60, ha="right", fontsize=7)
            ax.set_title(metric, fontsize=9)
        fig.suptitle(f"region: {region}")
        fig.tight_layout()
        paths.append(_write_figure(fig, out_dir / f"bars_{region}.png"))
    return paths


def _centre_crop(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return image[top : top + size, left : left + size]


def plot_best_worst(report: dict, out_dir: Path, *, sr_images, hr_images, masks,
                    lr_images=None) -> list[Path]:
    """Side-by-side centre crops (LR | SR | HR | mask) of the best and worst images by the
    ranking metric (LPIPS when computed). LR is shown when lr_dir is given, upsampled by
    nearest neighbour to the crop size; the mask when masks are given."""
    if not sr_images or not hr_images:
        return []
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = ranking_metric(report)
    lr_images = lr_images or {}
    paths = []
    for label, stem in zip(("best", "worst"), best_and_worst(report, metric)):
        hr = read_rgb(hr_images[stem], alpha="drop")
        sr = read_rgb(sr_images[stem], alpha="drop")[: hr.shape[0], : hr.shape[1]]
        size = min(CROP, hr.shape[0], hr.shape[1])
        top, left = (hr.shape[0] - size) // 2, (hr.shape[1] - size) // 2
        panels = []
        if stem in lr_images:
            lr = read_rgb(lr_images[stem], alpha="drop")
            factor = max(1, round(hr.shape[0] / lr.shape[0]))
            lr_crop = _centre_crop(lr, top // factor, left // factor, max(1, size // factor))
            panels.append(("LR (nearest)", np.repeat(np.repeat(lr_crop, factor, 0), factor, 1)))
        panels += [("SR", _centre_crop(sr, top, left, size)),
                   ("HR", _centre_crop(hr, top, left, size))]
        if masks and stem in masks:
            panels.append(("mask (white = sharp)",
                           _centre_crop(read_blur_mask(masks[stem]), top, left, size) / 255.0))
        fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3), squeeze=False)
        for ax, (title, image) in zip(axes[0], panels):
            ax.imshow(np.clip(image, 0, 1), cmap="gray" if image.ndim == 2 else None,
                      vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        value = report["images"][stem]["all"][metric]
        fig.suptitle(f"{label} by {metric}: {stem} ({metric} = {value:.4g})", fontsize=10)
        fig.tight_layout()
        paths.append(_write_figure(fig, out_dir / f"{label}_{stem}.png"))
    return paths
