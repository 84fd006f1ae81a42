"""Evaluation reports: the results as JSON-safe data, results.csv, aggregates.csv, report.md,
and the ranking the plots use (`keras_pbasr.evaluation.evaluation.write_reports` writes them)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from keras_pbasr.metrics.catalog import METRICS
from keras_pbasr.utils.atomic_files import atomic_output


def json_safe(value):
    """NaN -> None (JSON has no NaN); nested containers are converted recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_results_csv(report: dict, path: Path) -> None:
    metrics = report["settings"]["metrics"]
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["stem", "region", *metrics, "blur_type", "intensity", "area"])
        for stem, by_region in report["images"].items():
            labels = report["labels"].get(stem, {})
            for region, values in by_region.items():
                writer.writerow([stem, region,
                                 *[_fmt(values.get(m)) for m in metrics],
                                 *[labels.get(k, "") for k in ("blur_type", "intensity", "area")]])


def write_aggregates_csv(report: dict, path: Path) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["subset", "region", "metric", "mean", "count", "nan"])
        for subset, by_region in report["aggregates"].items():
            for region, by_metric in by_region.items():
                for metric, agg in by_metric.items():
                    writer.writerow([subset, region, metric, _fmt(agg["mean"]), agg["count"],
                                     agg["nan"]])


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.6g}"


def markdown_report(report: dict) -> str:
    """Tables of mean values per subset (rows) and metric (columns), one per region."""
    metrics = report["settings"]["metrics"]
    arrows = {m: "↑" if METRICS[m].higher_is_better else "↓" for m in metrics}
    lines = ["# Evaluation report", "",
             f"- SR: `{report['settings']['sr_dir']}`; HR: `{report['settings']['hr_dir']}`; "
             f"masks: `{report['settings']['mask_dir']}`",
             f"- images: {len(report['images'])}; crop_border "
             f"{report['settings']['crop_border']}; luma {report['settings']['color_space']}",
             ""]
    for region in report["settings"]["regions"]:
        shown = [m for m in metrics if region == "all" or METRICS[m].full_reference]
        lines += [f"## Region: {region}", "",
                  "| subset | n | " + " | ".join(f"{m} {arrows[m]}" for m in shown) + " |",
                  "|---|---:|" + "---:|" * len(shown)]
        for subset, by_region in report["aggregates"].items():
            if region not in by_region:
                continue
            row = by_region[region]
            n = max((row[m]["count"] + row[m]["nan"] for m in shown if m in row), default=0)
            cells = [_fmt(row[m]["mean"]) if m in row else "-" for m in shown]
            lines.append(f"| {subset} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    nan_lines = [f"- {region} / {metric}: {count} image(s) with an empty region (NaN)"
                 for region, by_metric in report["nan_counts"].items()
                 for metric, count in by_metric.items() if count]
    lines += ["## NaN counts", "", *(nan_lines or ["- none"]), ""]
    unpaired = report.get("unpaired", {})
    if any(unpaired.values()):
        lines += ["## Unpaired files (ignored)", "", f"- {unpaired}", ""]
    return "\n".join(lines)


def ranking_metric(report: dict) -> str:
    """The metric that ranks images for the best/worst crops: LPIPS when computed."""
    metrics = report["settings"]["metrics"]
    for preferred in ("lpips", "dists", "psnr"):
        if preferred in metrics:
            return preferred
    return metrics[0]


def best_and_worst(report: dict, metric: str, region: str = "all") -> tuple[str, str]:
    scored = [(v[region][metric], stem) for stem, v in report["images"].items()
              if region in v and metric in v[region] and not np.isnan(v[region][metric])]
    if not scored:
        raise ValueError(f"no finite {metric} value to rank images by")
    scored.sort()
    low, high = scored[0][1], scored[-1][1]
    return (high, low) if METRICS[metric].higher_is_better else (low, high)
