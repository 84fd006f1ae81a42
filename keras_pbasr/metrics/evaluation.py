"""Evaluate super-resolved images against HR images, per region and per subset.

`evaluate(sr_dir=..., hr_dir=..., out_dir=...)` pairs files by stem, computes the metrics on
every image for the regions "all" (and "blur" / "sharp" when blur masks are given), groups the
images into subsets (blur type x intensity x area, from labels or, for the area, from the
mask), and writes results.json, CSV and Markdown reports and plots (see reports.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from keras_pbasr.metrics.catalog import DEFAULT_METRICS, METRICS, check_metric_names, compute_metric
from keras_pbasr.metrics.regions import REGIONS
from keras_pbasr.utils.atomic_files import check_writable_folder, output_folder, refuse_same_file
from keras_pbasr.utils.image_files import (
    SkippedFiles,
    UnsupportedImageError,
    find_image_files,
    image_to_float_rgb,
    read_image_array,
)

SIZE_POLICIES = ("error", "crop")
ON_ERROR = ("raise", "skip")
# ReBlurSR label codes (reference.md section 3).
AREA_CODES = {0: "large", 1: "medium", 2: "small"}
DEGREE_CODES = {0: "heavy", 1: "little", 2: "middle"}
TYPE_CODES = {0: "defocus", 1: "motion"}
LABEL_KEYS = ("blur_type", "intensity", "area")


def list_images(folder: str | Path) -> dict[str, Path]:
    """{stem: path} of the image files in `folder`; two files with one stem are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    found: dict[str, Path] = {}
    for path in find_image_files(folder):
        if path.stem in found:
            raise ValueError(f"{folder}: two images share the stem {path.stem!r} "
                             f"({found[path.stem].name}, {path.name})")
        found[path.stem] = path
    return found


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]; gray is repeated, alpha is dropped."""
    return image_to_float_rgb(read_image_array(path), alpha="drop")


def read_blur_mask(path: Path) -> np.ndarray:
    """(H, W) float32 blur map in [0, 255] (0 = blurred, 255 = sharp)."""
    array = read_image_array(path)
    mask = array.astype(np.float32) / (257.0 if array.dtype == np.uint16 else 1.0)
    return mask[..., 0] if mask.ndim == 3 else mask


def area_class(mask: np.ndarray) -> str:
    """ReBlurSR area class from the blurred fraction: small < 45%, medium 45-55%, large."""
    from keras_pbasr.blurmap.scores import area_class as area_class_of_fraction

    return area_class_of_fraction(float(np.mean(mask < 127.5)))


def load_labels(labels_dir: str | Path, stems: list[str]) -> dict[str, dict[str, str]]:
    """Per-image subset labels {stem: {blur_type, intensity, area}} from `labels_dir`:

    - labels.json: {stem: {"blur_type": ..., "intensity": ..., "area": ...}} (any subset of
      the keys), or labels.csv with columns stem,blur_type,intensity,area;
    - or ReBlurSR's npy files defocus_motion_class.npy, degree_class.npy, area_class.npy,
      whose entries follow names.txt (one stem per line) when present, else the sorted stems.
    """
    folder = Path(labels_dir)
    if (folder / "labels.json").is_file():
        data = json.loads((folder / "labels.json").read_text())
        return {str(k): {key: str(v[key]) for key in LABEL_KEYS if key in v}
                for k, v in data.items()}
    if (folder / "labels.csv").is_file():
        import csv

        with open(folder / "labels.csv", newline="") as f:
            return {row["stem"]: {k: row[k] for k in LABEL_KEYS if row.get(k)}
                    for row in csv.DictReader(f)}
    files = {"blur_type": ("defocus_motion_class.npy", TYPE_CODES),
             "intensity": ("degree_class.npy", DEGREE_CODES),
             "area": ("area_class.npy", AREA_CODES)}
    present = {k: v for k, v in files.items() if (folder / v[0]).is_file()}
    if not present:
        raise FileNotFoundError(
            f"{folder} holds no labels.json, labels.csv or ReBlurSR npy label files "
            "(defocus_motion_class.npy, degree_class.npy, area_class.npy)"
        )
    names_file = folder / "names.txt"
    order = names_file.read_text().split() if names_file.is_file() else sorted(stems)
    labels: dict[str, dict[str, str]] = {stem: {} for stem in order}
    for key, (filename, codes) in present.items():
        values = np.load(folder / filename, allow_pickle=False).reshape(-1)
        if len(values) != len(order):
            source = "names.txt" if names_file.is_file() else "sorted HR stems"
            raise ValueError(f"{folder / filename} has {len(values)} entries for "
                             f"{len(order)} images ({source})")
        for stem, code in zip(order, values):
            labels[stem][key] = codes[int(code)]
    return labels


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


def _super_resolve(model, lr_dir: Path, stems: list[str], out_dir: Path,
                   skipped: SkippedFiles | None, inputs: list[Path]) -> Path:
    """Runs a model (or preset name/dir) on the LR images and writes the SR images; with
    `skipped`, unreadable LR images are skipped and counted there instead of raising."""
    from keras_pbasr.inference import read_image, upscale
    from keras_pbasr.inference.image_io import write_image

    lr_images = list_images(lr_dir)
    missing = [s for s in stems if s not in lr_images]
    if missing:
        raise FileNotFoundError(f"{lr_dir} lacks LR images for {missing[:5]}")
    if isinstance(model, str | Path):
        from keras_pbasr.presets import from_preset

        model = from_preset(model)
    sr_dir = out_dir / "sr"
    sr_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(stems), label="super-resolve")
    for i, stem in enumerate(stems):
        source = lr_images[stem]
        if skipped is None:
            image = read_image(source)
        else:
            image = skipped.attempt(source, lambda source=source: read_image(source))
        if image is not None:
            target = sr_dir / f"{stem}.png"
            refuse_same_file(target, [*inputs, *lr_images.values()])
            write_image(target, upscale(model, image))
        progress.update(i + 1, stem)
    return sr_dir


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

    Returns the results dict written to results.json: {"images": {stem: {region: {metric:
    value}}}, "aggregates": {subset: {region: {metric: {"mean", "count", "nan"}}}},
    "nan_counts": {region: {metric: n}}, "labels": ..., "settings": ...}.

    Example:
    >>> evaluate(sr_dir="out/sr", hr_dir="data/HR", mask_dir="data/mask",  # doctest: +SKIP
    ...          out_dir="out/eval", metrics=["psnr", "lpips"])
    """
    metrics = check_metric_names(metrics)
    if hr_dir is None:
        raise ValueError("evaluate needs hr_dir (--hr), the folder of HR images")
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    skipped = SkippedFiles("evaluate") if on_error == "skip" else None
    hr_images = list_images(hr_dir)
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
            sr_dir = _super_resolve(model, Path(lr_dir), sorted(hr_images), out, skipped,
                                    list(hr_images.values()))
    if sr_dir is None:
        raise ValueError("give sr_dir (--sr), or model and lr_dir (--model, --lr)")
    sr_images = list_images(sr_dir)
    stems = sorted(set(hr_images) & set(sr_images))
    unpaired = {"hr_without_sr": sorted(set(hr_images) - set(sr_images)),
                "sr_without_hr": sorted(set(sr_images) - set(hr_images))}
    if not stems:
        raise ValueError(f"no file stem is in both {sr_dir} and {hr_dir}")
    if unpaired["hr_without_sr"] or unpaired["sr_without_hr"]:
        print(f"[evaluate] unpaired files ignored: {unpaired}", file=sys.stderr)

    masks = list_images(mask_dir) if mask_dir is not None else {}
    regions = list(regions) if regions is not None else (
        list(REGIONS) if mask_dir is not None else ["all"])
    bad = [r for r in regions if r not in REGIONS]
    if bad:
        raise ValueError(f"unknown regions {bad}; available: {REGIONS}")
    if any(r != "all" for r in regions) and mask_dir is None:
        raise ValueError(f"regions {regions} need blur masks (mask_dir / --mask)")
    labels = load_labels(labels_dir, stems) if labels_dir is not None else {}

    results: dict[str, dict] = {}
    image_labels: dict[str, dict[str, str]] = {}
    bar = Progress(len(stems), enabled=progress)
    for i, stem in enumerate(stems):
        if mask_dir is not None and stem not in masks:
            raise FileNotFoundError(f"{stem}: no blur mask in {mask_dir}")
        try:
            hr = read_rgb(hr_images[stem])
            mask = None if mask_dir is None else read_blur_mask(masks[stem])
            sr = read_rgb(sr_images[stem])
        except UnsupportedImageError as error:
            if skipped is None:
                raise
            if progress and i:
                sys.stderr.write("\n")  # end the progress bar's line
            skipped.skip(stem, error)
            bar.update(i + 1, stem)
            continue
        if mask is not None and mask.shape[:2] != hr.shape[:2]:
            raise ValueError(f"{stem}: mask is {mask.shape[1]}x{mask.shape[0]} but HR is "
                             f"{hr.shape[1]}x{hr.shape[0]}")
        sr, hr = _match_sizes(stem, sr, hr, size_policy)
        if mask is not None:
            mask = mask[: hr.shape[0], : hr.shape[1]]
        image_labels[stem] = dict(labels.get(stem, {}))
        if mask is not None and "area" not in image_labels[stem]:
            image_labels[stem]["area"] = area_class(mask)
        results[stem] = {}
        for region in regions:
            results[stem][region] = {}
            for name in metrics:
                if region != "all" and not METRICS[name].full_reference:
                    continue
                try:
                    value = compute_metric(name, sr[None], hr[None],
                                           mask=None if mask is None else mask[None],
                                           region=region, crop_border=crop_border,
                                           color_space=color_space)[0]
                except ValueError as error:
                    raise ValueError(f"{stem}: {error}") from error
                results[stem][region][name] = float(value)
        bar.update(i + 1, stem)

    if not results:
        raise ValueError(f"no image pair could be read ({len(stems)} skipped, listed above)")
    report = {
        "images": results,
        "aggregates": aggregate(results, image_labels),
        "nan_counts": nan_counts(results),
        "labels": image_labels,
        "unpaired": unpaired,
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
        from keras_pbasr.metrics.reports import write_reports

        write_reports(report, out, plots=plots, lr_dir=lr_dir, sr_images=sr_images,
                      hr_images=hr_images, masks=masks)
    return report


def aggregate(results: dict, image_labels: dict) -> dict:
    """{subset: {region: {metric: {"mean", "count", "nan"}}}}; NaNs (empty regions) are
    left out of the mean and counted."""
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
    counts: dict = {}
    for by_region in results.values():
        for region, by_metric in by_region.items():
            for metric, value in by_metric.items():
                slot = counts.setdefault(region, {})
                slot[metric] = slot.get(metric, 0) + int(np.isnan(value))
    return counts
