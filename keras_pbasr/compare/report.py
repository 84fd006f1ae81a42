"""Writes the compare-backends report: terminal table, report.md, report.json, latency.png."""

from __future__ import annotations

from pathlib import Path

from keras_pbasr.utils.atomic_files import atomic_output, write_json_atomic, write_text_atomic


def _fmt(value, spec=".2f", missing="-"):
    return missing if value is None else format(value, spec)


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    for backend, r in report["backends"].items():
        lat = r.get("latency_ms", {})
        thr = r.get("throughput_mpix_s", {})
        train = r.get("train", {})
        agree = r.get("agreement", {})
        peak = r.get("peak_gpu_mb") if report["device"] == "gpu" else r.get("peak_rss_mb")
        rows.append([
            backend,
            r.get("status", "?"),
            _fmt(lat.get("eager")),
            _fmt(lat.get("jit")),
            _fmt(max(thr.values()) if thr else None, ".3f"),
            _fmt(train.get("step_ms_median")),
            _fmt(peak, ".0f"),
            _fmt(agree.get("output_max_abs"), ".2e"),
            _fmt(agree.get("output_psnr_db"), ".1f"),
            _fmt(agree.get("train_weights_max_abs"), ".2e"),
        ])
    return rows


HEADER = [
    "backend", "status", "eager ms", "jit ms", "best Mpix/s", "train step ms",
    "peak MB", "max abs vs first", "PSNR vs first dB", "train weights max abs",
]


def markdown_table(report: dict) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    return "\n".join(lines)


def write_report(report: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "report.json", report)
    m = report["machine"]
    header = (
        f"Command: `{report['command']}`\n\n"
        f"{report['date']}, {m['cpu']} ({m['cpu_count']} cores), device {report['device']}; "
        f"model {report['model']} ({report['parameters']:,} parameters), input "
        f"{'x'.join(map(str, report['input_shape']))}, {report['repeats']} timed runs"
        + (f", {report['train_steps']} PBaSR train steps" if report["train_steps"] else "")
        + ".\n\n"
    )
    table = markdown_table(report)
    write_text_atomic(out_dir / "report.md", header + table + "\n")
    print(header + table)
    _bar_chart(report, out_dir / "latency.png")


def _bar_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = [b for b, r in report["backends"].items() if r.get("status") == "ok"]
    modes = ["eager", "jit"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        values = [report["backends"][b].get("latency_ms", {}).get(mode, 0.0) for b in backends]
        ax.bar([j + i * width for j in range(len(backends))], values, width, label=mode)
    ax.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(backends))], backends)
    ax.set_ylabel("inference latency, median ms")
    ax.set_title(f"{report['model']} {'x'.join(map(str, report['input_shape']))} "
                 f"on {report['device']}")
    ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
