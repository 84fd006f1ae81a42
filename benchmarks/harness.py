"""A small timing harness.

A benchmark module `benchmarks/bench_<name>.py` defines `run(bench: Benchmark) -> None`, which
times a reference and candidates with `bench.measure(...)`. The harness reports median, min and
max over repeated runs after warm-up, the ratio of each candidate's median to the reference
measured in the same run, and writes Markdown and JSON stamped with the command, machine,
backend and versions to benchmarks/results/.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from keras_pbasr.utils.environment import backend_versions, machine_info, package_version
from keras_pbasr.utils.timing import time_callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Timing:
    group: str
    name: str
    median_s: float
    min_s: float
    max_s: float
    repeats: int
    is_reference: bool = False
    ratio_to_reference: float | None = None
    extra: dict = field(default_factory=dict)
    samples_s: list[float] = field(default_factory=list)


class Benchmark:
    """Collects timings for one benchmark run, grouped; each group may have one reference."""

    def __init__(self, name: str, quick: bool = False):
        self.name = name
        self.quick = quick
        self.timings: list[Timing] = []
        self.notes: list[str] = []

    def measure(
        self,
        group: str,
        name: str,
        fn: Callable[[], object],
        *,
        reference: bool = False,
        warmup: int = 2,
        repeats: int = 10,
        **extra,
    ) -> Timing:
        if self.quick:
            warmup, repeats = min(warmup, 1), min(repeats, 3)
        times = time_callable(fn, warmup=warmup, repeats=repeats)
        return self._add(group, name, times, reference, extra)

    def measure_interleaved(
        self,
        group: str,
        fns: dict[str, Callable[[], object]],
        *,
        reference: str,
        warmup: int = 2,
        repeats: int = 10,
    ) -> dict[str, Timing]:
        """Times several callables in rounds (one call of each per round, in order), so that
        changing machine load affects all of them alike; each Timing keeps its samples, so
        per-round ratios can be taken. `reference` names the group's reference."""
        if reference not in fns:
            raise ValueError(f"reference {reference!r} is not one of {list(fns)}")
        if self.quick:
            warmup, repeats = min(warmup, 1), min(repeats, 3)
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        return {
            name: self._add(group, name, times[name], name == reference, {"interleaved": True})
            for name in fns
        }

    def _add(self, group: str, name: str, times: list[float], reference: bool, extra: dict):
        timing = Timing(
            group=group,
            name=name,
            median_s=statistics.median(times),
            min_s=min(times),
            max_s=max(times),
            repeats=len(times),
            is_reference=reference,
            extra=extra,
            samples_s=list(times),
        )
        self.timings.append(timing)
        print(
            f"  {group} | {name}: median {timing.median_s * 1e3:.2f} ms "
            f"(min {timing.min_s * 1e3:.2f}, max {timing.max_s * 1e3:.2f})",
            flush=True,
        )
        return timing

    def record(self, group: str, name: str, samples: float | list[float], *,
               reference: bool = False, **extra):
        """Adds a measurement taken elsewhere (e.g. in a subprocess): one time in seconds or
        the list of timed calls."""
        samples = [float(samples)] if isinstance(samples, (int, float)) else list(samples)
        timing = Timing(group, name, statistics.median(samples), min(samples), max(samples),
                        len(samples), reference, extra=extra, samples_s=samples)
        self.timings.append(timing)
        return timing

    def note(self, text: str) -> None:
        self.notes.append(text)

    def _ratios(self) -> None:
        refs = {t.group: t for t in self.timings if t.is_reference}
        for t in self.timings:
            ref = refs.get(t.group)
            if ref is not None and ref.median_s > 0:
                t.ratio_to_reference = t.median_s / ref.median_s

    def write(self, out_dir: Path | None = None) -> tuple[Path, Path]:
        import keras

        self._ratios()
        out_dir = out_dir or RESULTS_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = {
            "benchmark": self.name,
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks", *sys.argv[1:]]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "keras_backend": keras.backend.backend(),
            "versions": {
                "keras": keras.__version__,
                "keras_pbasr": package_version("keras-pbasr"),
                **backend_versions(),
            },
        }
        base = out_dir / f"{self.name}-{keras.backend.backend()}"
        json_path = base.with_suffix(".json")
        md_path = base.with_suffix(".md")
        payload = {**stamp, "timings": [asdict(t) for t in self.timings], "notes": self.notes}
        json_path.write_text(json.dumps(payload, indent=2))
        lines = [
            f"# Benchmark `{self.name}`",
            "",
            f"- command: `{stamp['command']}`",
            f"- date: {stamp['date']}",
            f"- machine: {stamp['machine']['cpu']} ({stamp['machine']['cpu_count']} cores), "
            f"{stamp['machine']['platform']}, Python {stamp['machine']['python']}",
            f"- Keras backend: {stamp['keras_backend']}; versions: "
            + ", ".join(f"{k} {v}" for k, v in stamp["versions"].items() if v),
            "",
            "| group | name | median ms | min ms | max ms | ratio to reference | extra |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for t in self.timings:
            ratio = "reference" if t.is_reference else (
                f"{t.ratio_to_reference:.2f}x" if t.ratio_to_reference is not None else "-"
            )
            extra = ", ".join(f"{k}={v}" for k, v in t.extra.items())
            lines.append(
                f"| {t.group} | {t.name} | {t.median_s * 1e3:.2f} | {t.min_s * 1e3:.2f} | "
                f"{t.max_s * 1e3:.2f} | {ratio} | {extra} |"
            )
        if self.notes:
            lines += ["", *self.notes]
        md_path.write_text("\n".join(lines) + "\n")
        print(f"wrote {md_path} and {json_path}")
        return md_path, json_path
