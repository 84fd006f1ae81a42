"""Evaluate super-resolved images against HR images, per region and per subset.

`evaluate(sr_dir=..., hr_dir=..., out_dir=...)` runs four steps, each a function here:
`pair_images` (SR and HR files by stem, with masks and labels), `score_pairs` (the metrics on
every image for the regions "all", and "blur" / "sharp" when blur masks are given),
`aggregate` (means per subset: blur type x intensity x area, from labels or, for the area,
from the mask) and `write_reports` (results.json, CSV and Markdown reports, plots).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_pbasr.data.io import read_blur_mask
from keras_pbasr.data.reblursr import SUBSET_LABELS, mask_area_class, read_subset_labels
from keras_pbasr.evaluation.plots import plot_best_worst, plot_subset_bars
from keras_pbasr.evaluation.reports import (
    json_safe,
    markdown_report,
    write_aggregates_csv,
    write_results_csv,
)
from keras_pbasr.inference.image_io import write_image
from keras_pbasr.inference.upscale import upscale
from keras_pbasr.metrics.catalog import DEFAULT_METRICS, METRICS, check_metric_names, compute_metric
from keras_pbasr.metrics.regions import REGIONS
from keras_pbasr.presets import from_preset
from keras_pbasr.utils.atomic_files import (
    check_writable_folder,
    output_folder,
    refuse_same_file,
    write_json_atomic,
    write_text_atomic,
)
from keras_pbasr.utils.image_files import (
    SkippedFiles,
    UnsupportedImageError,
    images_by_stem,
    read_image_array,
    read_rgb,
)

SIZE_POLICIES = ("error", "crop")
ON_ERROR = ("raise", "skip")
LABEL_KEYS = SUBSET_LABELS


def load_labels(labels_dir: str | Path, stems: list[str]) -> dict[str, dict[str, str]]:
    """Per-image subset labels {stem: {blur_type, intensity, area}} from `labels_dir`:

    - labels.json: {stem: {"blur_type": ..., "intensity": ..., "area": ...}} (any subset of
      the keys), or labels.csv with columns stem,blur_type,intensity,area;
    - or ReBlurSR's npy files (`keras_pbasr.data.reblursr.read_subset_labels`).

    Example:
    >>> load_labels("ReBlurSR", ["0001"])  # doctest: +SKIP
    {'0001': {'blur_type': 'defocus', 'intensity': 'heavy', 'area': 'small'}}
    """
    folder = Path(labels_dir)
    if (folder / "labels.json").is_file():
        data = json.loads((folder / "labels.json").read_text())
        return {str(k): {key: str(v[key]) for key in LABEL_KEYS if key in v}
                for k, v in data.items()}
    if (folder / "labels.csv").is_file():
        with open(folder / "labels.csv", newline="") as f:
            return {row["stem"]: {k: row[k] for k in LABEL_KEYS if row.get(k)}
                    for row in csv.DictReader(f)}
    try:
        return read_subset_labels(folder, stems)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{folder} holds no labels.json or labels.csv, and {error}") \
            from error


def subsets_of(labels: dict[str, str]) -> list[str]:
    """Subset names an image belongs to: all, each label, and blur type x each other label."""
    names = ["all"]
    names += [labels[k] for k in LABEL_KEYS if k in labels]
    if "blur_type" in labels:
        names += [f"{labels['blur_type']}/{labels[k]}" for k in ("intensity", "area")
                  if k in labels]
    return names


class Progress:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, total: int, enabled: bool = True, label: str = "evaluate"):
        self.total, self.enabled, self.label = total, enabled, label
        self.start = time.perf_counter()

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        width = 28
        filled = int(width * done / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (self.total - done) if done else 0.0
        sys.stderr.write(f"\r[{self.label}] [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{self.total} {elapsed:5.1f}s eta {eta:5.1f}s {note[:30]:<30}")
        if done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _match_sizes(stem: str, sr: np.ndarray, hr: np.ndarray, policy: str):
    if sr.shape == hr.shape:
        return sr, hr
    if policy == "crop":
        h, w = min(sr.shape[0], hr.shape[0]), min(sr.shape[1], hr.shape[1])
        return sr[:h, :w], hr[:h, :w]
    raise ValueError(
        f"{stem}: SR is {sr.shape[1]}x{sr.shape[0]} but HR is {hr.shape[1]}x{hr.shape[0]} "
        "(use size_policy='crop' / --size-policy crop to compare the common top-left area)"
    )


def super_resolve(model, lr_dir: Path, stems: list[str], out_dir: Path,
                  skipped: SkippedFiles | None, inputs: list[Path],
                  recursive: bool = False) -> Path:
    """Runs a model (or preset name/dir) on the LR images and writes the SR images to
    out_dir/sr; with `skipped`, unreadable LR images are skipped and counted there instead
    of raising."""
    lr_images = images_by_stem(lr_dir, recursive)
    missing = [s for s in stems if s not in lr_images]
    if missing:
        raise FileNotFoundError(f"{lr_dir} lacks LR images for {missing[:5]}")
    if isinstance(model, str | Path):
        model = from_preset(model)
    sr_dir = out_dir / "sr"
    sr_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(stems), label="super-resolve")
    for i, stem in enumerate(stems):
        source = lr_images[stem]
        if skipped is None:
            image = read_image_array(source)
        else:
            image = skipped.attempt(source, lambda source=source: read_image_array(source))
        if image is not None:
            target = sr_dir / f"{stem}.png"
            refuse_same_file(target, [*inputs, *lr_images.values()])
            write_image(target, upscale(model, image))
        progress.update(i + 1, stem)
    return sr_dir


@dataclass
class ImagePairs:
    """What `pair_images` found: the SR/HR/mask files by stem, the stems in both SR and HR,
    the files without a partner, and each image's labels (from `load_labels`)."""

    sr: dict[str, Path]
    hr: dict[str, Path]
    masks: dict[str, Path] | None
    stems: list[str]
    unpaired: dict[str, list[str]]
    labels: dict[str, dict[str, str]] = field(default_factory=dict)


def pair_images(sr_dir: str | Path, hr_images: dict[str, Path], *,
                mask_dir: str | Path | None = None, labels_dir: str | Path | None = None,
                recursive: bool = False) -> ImagePairs:
    """Step 1: pairs the SR files with the HR files by stem (unpaired ones are reported on
    stderr and ignored), finds each pair's blur mask and loads the subset labels.

    Example:
    >>> hr = images_by_stem("data/HR")  # doctest: +SKIP
    >>> pairs = pair_images("out/sr", hr, mask_dir="data/mask")  # doctest: +SKIP
    >>> pairs.stems[:2]  # doctest: +SKIP
    ['0001', '0002']
    """
    sr_images = images_by_stem(sr_dir, recursive)
    stems = sorted(set(hr_images) & set(sr_images))
    unpaired = {"hr_without_sr": sorted(set(hr_images) - set(sr_images)),
                "sr_without_hr": sorted(set(sr_images) - set(hr_images))}
    if not stems:
        raise ValueError(f"no file stem is in both {sr_dir} and the HR folder")
    if unpaired["hr_without_sr"] or unpaired["sr_without_hr"]:
        print(f"[evaluate] unpaired files ignored: {unpaired}", file=sys.stderr)
    masks = None
    if mask_dir is not None:
        masks = images_by_stem(mask_dir, recursive)
        lacking = [stem for stem in stems if stem not in masks]
        if lacking:
            raise FileNotFoundError(f"{lacking[0]}: no blur mask in {mask_dir}")
    labels = load_labels(labels_dir, stems) if labels_dir is not None else {}
    return ImagePairs(sr_images, hr_images, masks, stems, unpaired, labels)


def _read_pair(pairs: ImagePairs, stem: str, size_policy: str):
    """(sr, hr, mask or None) of one stem, the same size (see `size_policy`)."""
    hr = read_rgb(pairs.hr[stem], alpha="drop")
    mask = None if pairs.masks is None else read_blur_mask(pairs.masks[stem])
    sr = read_rgb(pairs.sr[stem], alpha="drop")
    if mask is not None and mask.shape[:2] != hr.shape[:2]:
        raise ValueError(f"{stem}: mask is {mask.shape[1]}x{mask.shape[0]} but HR is "
                         f"{hr.shape[1]}x{hr.shape[0]}")
    sr, hr = _match_sizes(stem, sr, hr, size_policy)
    if mask is not None:
        mask = mask[: hr.shape[0], : hr.shape[1]]
    return sr, hr, mask


def score_image(sr: np.ndarray, hr: np.ndarray, mask: np.ndarray | None, *,
                metrics: list[str], regions: list[str], crop_border: int,
                color_space: str) -> dict[str, dict[str, float]]:
    """{region: {metric: value}} of one image pair; no-reference metrics only for "all"."""
    scores: dict[str, dict[str, float]] = {}
    for region in regions:
        scores[region] = {}
        for name in metrics:
            if region != "all" and not METRICS[name].full_reference:
                continue
            value = compute_metric(name, sr[None], hr[None],
                                   mask=None if mask is None else mask[None],
                                   region=region, crop_border=crop_border,
                                   color_space=color_space)[0]
            scores[region][name] = float(value)
    return scores


def score_pairs(pairs: ImagePairs, *, metrics: list[str], regions: list[str],
                crop_border: int = 0, color_space: str = "yiq", size_policy: str = "error",
                skipped: SkippedFiles | None = None, progress: bool = True):
    """Step 2: scores every pair; returns ({stem: {region: {metric: value}}}, {stem: labels})
    where an image's labels gain its area class from its mask when no label gives it. With
    `skipped`, an unreadable pair is skipped and counted there instead of raising.

    Example:
    >>> results, labels = score_pairs(pairs, metrics=["psnr"],  # doctest: +SKIP
    ...                               regions=["all", "blur", "sharp"])
    >>> results["0001"]["blur"]["psnr"]  # doctest: +SKIP
    27.3
    """
    results: dict[str, dict] = {}
    image_labels: dict[str, dict[str, str]] = {}
    bar = Progress(len(pairs.stems), enabled=progress)
    for i, stem in enumerate(pairs.stems):
        try:
            sr, hr, mask = _read_pair(pairs, stem, size_policy)
        except UnsupportedImageError as error:
            if skipped is None:
                raise
            if progress and i:
                sys.stderr.write("\n")  # end the progress bar's line
            skipped.skip(stem, error)
            bar.update(i + 1, stem)
            continue
        image_labels[stem] = dict(pairs.labels.get(stem, {}))
        if mask is not None and "area" not in image_labels[stem]:
            image_labels[stem]["area"] = mask_area_class(mask)
        try:
            results[stem] = score_image(sr, hr, mask, metrics=metrics, regions=regions,
                                        crop_border=crop_border, color_space=color_space)
        except ValueError as error:
            raise ValueError(f"{stem}: {error}") from error
        bar.update(i + 1, stem)
    if not results:
        raise ValueError(f"no image pair could be read ({len(pairs.stems)} skipped, "
                         "listed above)")
    return results, image_labels


def write_reports(report: dict, out_dir: Path, *, plots: bool = True, lr_dir=None,
                  sr_images=None, hr_images=None, masks=None) -> list[Path]:
    """Step 4: writes results.json, results.csv, aggregates.csv, report.md and (with `plots`)
    the plots into out_dir; returns their paths.

    Example:
    >>> report = evaluate(sr_dir="out/sr", hr_dir="data/HR")  # doctest: +SKIP
    >>> write_reports(report, Path("out/eval"), plots=False)[0]  # doctest: +SKIP
    PosixPath('out/eval/results.json')
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "results.json", out_dir / "results.csv",
               out_dir / "aggregates.csv", out_dir / "report.md"]
    write_json_atomic(written[0], json_safe(report))
    write_results_csv(report, written[1])
    write_aggregates_csv(report, written[2])
    write_text_atomic(written[3], markdown_report(report))
    if plots:
        lr_images = images_by_stem(lr_dir) if lr_dir is not None else {}
        written += plot_subset_bars(report, out_dir / "plots")
        written += plot_best_worst(report, out_dir / "plots", sr_images=sr_images,
                                   hr_images=hr_images, masks=masks, lr_images=lr_images)
    return written


def _check_settings(metrics, regions, size_policy: str, on_error: str, has_masks: bool):
    metrics = check_metric_names(metrics)
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    regions = list(regions) if regions is not None else (
        list(REGIONS) if has_masks else ["all"])
    bad = [r for r in regions if r not in REGIONS]
    if bad:
        raise ValueError(f"unknown regions {bad}; available: {REGIONS}")
    if any(r != "all" for r in regions) and not has_masks:
        raise ValueError(f"regions {regions} need blur masks (mask_dir / --mask)")
    return metrics, regions


def evaluate(
    sr_dir: str | Path | None = None,
    hr_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    mask_dir: str | Path | None = None,
    labels_dir: str | Path | None = None,
    metrics: Iterable[str] = DEFAULT_METRICS,
    regions: Iterable[str] | None = None,
    crop_border: int = 0,
    color_space: str = "yiq",
    size_policy: str = "error",
    model=None,
    lr_dir: str | Path | None = None,
    plots: bool = True,
    progress: bool = True,
    on_error: str = "raise",
    recursive: bool = False,
) -> dict:
    """Scores SR images against HR images and writes the reports.

    Args:
        sr_dir, hr_dir: folders of images paired by file stem (SR may be omitted when
            `model` and `lr_dir` are given: the model's outputs are written to out_dir/sr).
        out_dir: where results.json, results.csv, aggregates.csv, report.md and plots go;
            None computes without writing.
        mask_dir: blur maps (0 = blurred, 255 = sharp) named by stem; enables the regions
            "blur" and "sharp", and the area subsets when no labels give them.
        labels_dir: subset labels (see `load_labels`).
        metrics: names from `keras_pbasr.metrics.METRICS`.
        regions: default ("all", "blur", "sharp") with masks, ("all",) without; asking for
            "blur"/"sharp" without masks is an error.
        size_policy: "error" (default) rejects SR/HR size mismatches naming the image;
            "crop" compares the common top-left area.
        model, lr_dir: a Keras model or preset (name or directory) run on the LR images first.
        on_error: "raise" (default) stops at the first unreadable or too large image;
            "skip" (the CLI's policy) skips that image with one line on stderr naming it,
            goes on, and lists it under "skipped" in the results ([name, reason] pairs: the
            stem, or the LR file with `model`).
        recursive: also look for images in the sub-folders of every folder (stems must
            still be unique).

    Returns the results dict written to results.json: {"images": {stem: {region: {metric:
    value}}}, "aggregates": {subset: {region: {metric: {"mean", "count", "nan"}}}},
    "nan_counts": {region: {metric: n}}, "labels": ..., "settings": ...}.

    Example:
    >>> evaluate(sr_dir="out/sr", hr_dir="data/HR", mask_dir="data/mask",  # doctest: +SKIP
    ...          out_dir="out/eval", metrics=["psnr", "lpips"])
    """
    if hr_dir is None:
        raise ValueError("evaluate needs hr_dir (--hr), the folder of HR images")
    metrics, regions = _check_settings(metrics, regions, size_policy, on_error,
                                       mask_dir is not None)
    skipped = SkippedFiles("evaluate") if on_error == "skip" else None
    hr_images = images_by_stem(hr_dir, recursive)
    if not hr_images:
        raise FileNotFoundError(f"no images in {hr_dir}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        check_writable_folder(out)
    if model is not None:
        if lr_dir is None:
            raise ValueError("running a model needs lr_dir (--lr)")
        if out is None:
            raise ValueError("running a model needs out_dir to write its SR images")
        with output_folder(out):
            sr_dir = super_resolve(model, Path(lr_dir), sorted(hr_images), out, skipped,
                                   list(hr_images.values()), recursive)
    if sr_dir is None:
        raise ValueError("give sr_dir (--sr), or model and lr_dir (--model, --lr)")

    pairs = pair_images(sr_dir, hr_images, mask_dir=mask_dir, labels_dir=labels_dir,
                        recursive=recursive)
    results, image_labels = score_pairs(
        pairs, metrics=metrics, regions=regions, crop_border=crop_border,
        color_space=color_space, size_policy=size_policy, skipped=skipped, progress=progress)
    report = {
        "images": results,
        "aggregates": aggregate(results, image_labels),
        "nan_counts": nan_counts(results),
        "labels": image_labels,
        "unpaired": pairs.unpaired,
        "skipped": [] if skipped is None else [list(item) for item in skipped.files],
        "settings": {
            "sr_dir": str(sr_dir), "hr_dir": str(hr_dir),
            "mask_dir": None if mask_dir is None else str(mask_dir),
            "labels_dir": None if labels_dir is None else str(labels_dir),
            "metrics": metrics, "regions": regions, "crop_border": crop_border,
            "color_space": color_space, "size_policy": size_policy,
            "higher_is_better": {m: METRICS[m].higher_is_better for m in metrics},
        },
    }
    if out is not None:
        write_reports(report, out, plots=plots, lr_dir=lr_dir, sr_images=pairs.sr,
                      hr_images=hr_images, masks=pairs.masks or {})
    return report


def aggregate(results: dict, image_labels: dict) -> dict:
    """Step 3: {subset: {region: {metric: {"mean", "count", "nan"}}}}; NaNs (empty regions) are
    left out of the mean and counted.

    Example:
    >>> aggregate({"a": {"all": {"psnr": 30.0}}}, {"a": {"blur_type": "motion"}})["motion"]
    {'all': {'psnr': {'mean': 30.0, 'count': 1, 'nan': 0}}}
    """
    values: dict = {}
    for stem, by_region in results.items():
        for subset in subsets_of(image_labels.get(stem, {})):
            for region, by_metric in by_region.items():
                for metric, value in by_metric.items():
                    values.setdefault(subset, {}).setdefault(region, {}).setdefault(
                        metric, []).append(value)
    out: dict = {}
    for subset, by_region in values.items():
        for region, by_metric in by_region.items():
            for metric, vals in by_metric.items():
                arr = np.asarray(vals, np.float64)
                finite = arr[~np.isnan(arr)]
                out.setdefault(subset, {}).setdefault(region, {})[metric] = {
                    "mean": float(finite.mean()) if finite.size else None,
                    "count": int(finite.size),
                    "nan": int(np.isnan(arr).sum()),
                }
    return out


def nan_counts(results: dict) -> dict:
    """{region: {metric: number of NaN values}} (NaN: the region is empty in that image)."""
    counts: dict = {}
    for by_region in results.values():
        for region, by_metric in by_region.items():
            for metric, value in by_metric.items():
                slot = counts.setdefault(region, {})
                slot[metric] = slot.get(metric, 0) + int(np.isnan(value))
    return counts
