"""The reproduction study (examples/reproduction_study.py): run planning, tables, end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def load_study():
    sys.path.insert(0, str(REPO / "examples"))  # the study imports the demo's helpers
    spec = importlib.util.spec_from_file_location("pbasr_reproduction_study",
                                                  REPO / "examples" / "reproduction_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def fake_scores(study, value: float) -> dict:
    """Scores of one model on every (set, region, metric), two images each."""
    scores: dict = {}
    for kind, region in study.GROUPS:
        scores.setdefault(kind, {})[region] = {m: [value, value + 0.2] for m in study.METRICS}
    return scores


def fake_results(study, scale, runs) -> dict:
    """Results as main() stores them: seed 0 and 1, each run's value offset by the seed."""
    results = {"seeds": [0, 1], "params": 1234, "history": {},
               "baselines": {"bicubic": fake_scores(study, 5.0), "init": fake_scores(study, 6.0)},
               "runs": {}}
    for seed in (0, 1):
        seed_runs = results["runs"].setdefault(f"seed{seed}", {})
        for index, run in enumerate(runs):
            models = ("merged", "general", "blur") if run.name == "cdm" else ("merged",)
            seed_runs[run.name] = {m: fake_scores(study, 10.0 * index + seed) for m in models}
            results["history"][f"{run.name}/seed{seed}"] = [
                {"branch_cosine": 1.0 - 1e-4 * step} for step in range(1, 4)]
    return results


@pytest.mark.backend_agnostic
def test_planned_runs_cover_every_setting_and_ablation_once():
    study = load_study()
    scale = study.parse_args(["--scale", "small"]).study
    runs = study.planned_runs(list(study.SETTINGS), list(study.ABLATIONS), scale)
    names = [run.name for run in runs]
    assert names == ["unified", "cdm", "pbasr", "pbasr_halved", "cfm_k1_l0.99", "cfm_k100_l0.99",
                     "cfm_k20_l0.9"]
    by_name = {run.name: run for run in runs}
    assert not by_name["unified"].two_branches and by_name["cdm"].cfm is None
    assert by_name["pbasr"].cfm == by_name["pbasr_halved"].cfm == (20, 0.99)
    assert by_name["pbasr_halved"].form == "printed" and by_name["pbasr"].form == "unhalved"
    # lambda0 = 1.0 gives lam = 1 exactly, i.e. no fusion: it is the cdm run.
    assert study.run_name_for((20, 1.0), scale) == "cdm"
    assert study.run_name_for((20, 0.99), scale) == "pbasr"
    assert [r.name for r in study.planned_runs(["unified"], [], scale)] == ["unified"]
    tiny = study.parse_args(["--scale", "tiny", "--steps", "5"]).study
    assert tiny.gan_steps == 5 and max(tiny.interval_ablation) < tiny.gan_steps
    with pytest.raises(SystemExit):
        study.parse_args(["--seeds", "0", "0"])


@pytest.mark.backend_agnostic
def test_refuses_a_non_empty_output_folder(tmp_path, shared_data):
    study = load_study()
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(SystemExit, match="not empty"):
        study.main(["--scale", "tiny", "--out", str(tmp_path), "--shared-data", str(shared_data)])
    assert (tmp_path / "keep.txt").read_text() == "x"


@pytest.mark.backend_agnostic
def test_missing_evaluation_data_names_the_folder(tmp_path):
    study = load_study()
    with pytest.raises(SystemExit, match="bsd100/HR"):
        study.main(["--scale", "tiny", "--out", str(tmp_path / "o"),
                    "--shared-data", str(tmp_path)])


@pytest.mark.backend_agnostic
def test_report_has_every_setting_ablation_and_the_seed_spread(tmp_path):
    study = load_study()
    args = study.parse_args(["--scale", "small", "--out", str(tmp_path)])
    runs = study.planned_runs(list(study.SETTINGS), list(study.ABLATIONS), args.study)
    results = fake_results(study, args.study, runs)

    class FakeLog:
        stages = {"setup": {"wall_s": 1.0, "cpu_s": 2.0}}

        def totals(self):
            return {"wall_s": 3.0, "cpu_s": 4.0}

    eval_sets = {"general": {"names": ["a", "b"]},
                 "blur": {"names": ["c", "d"], "mask": np.zeros((2, 4, 4), np.uint8)}}
    summary = {"general": ["g"], "blur": ["b"]}
    text = study.write_report(tmp_path, args, results, summary, eval_sets, FakeLog(),
                              "cmd").read_text()
    for label, _, _ in study.MAIN_ROWS:
        assert f"| {label} |" in text
    for title in study.GROUP_TITLES.values():
        assert title in text
    # unified is run 0: per-image mean 0.1 + seed -> seeds give 0.1 and 1.1: 0.6 +- 0.5.
    assert "| unified training | 0.60 ± 0.50 | 0.6000 ± 0.5000 |" in text
    # pbasr (run 2) minus unified (run 0) is +20 for both seeds.
    assert "| PBaSR (CDM + CFM), averaged | general, all | +20.000, +20.000 |" in text
    for k in (1, 20, 100):
        assert f"| {k} | 0.99 |" in text
    for lam0, run in ((0.9, "cfm_k20_l0.9"), (0.99, "pbasr"), (1, "cdm")):
        assert f"| 20 | {lam0:g} | {run} |" in text
    assert "0.999700 ± 0.000000" in text  # final logged branch cosine
    study.write_csv(results, tmp_path / "results.csv")
    rows = (tmp_path / "results.csv").read_text().splitlines()
    # header + baselines (2 models) + per seed (unified, cdm x3, pbasr, pbasr_halved,
    # 3 ablations = 9 models)
    assert len(rows) == 1 + (2 + 2 * 9) * len(study.GROUPS) * len(study.METRICS)
    study.save_cosine_plot(results["history"], tmp_path / "cos.png")
    assert (tmp_path / "cos.png").stat().st_size > 1000


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path, shared_data):
    """The smallest configuration on the current backend: every setting and both ablations,
    two seeds (14 short runs: minutes on a loaded 2-core machine)."""
    study = load_study()
    out = tmp_path / "study"
    assert study.main(["--scale", "tiny", "--steps", "2", "--warmup-steps", "2",
                       "--out", str(out), "--shared-data", str(shared_data)]) == 0
    text = (out / "report.md").read_text()
    for label, _, _ in study.MAIN_ROWS:
        assert f"| {label} |" in text
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"seed0", "seed1"}
    for seed_runs in results["runs"].values():
        assert set(seed_runs) == {"unified", "cdm", "pbasr", "pbasr_halved", "cfm_k1_l0.99",
                                  "cfm_k4_l0.99", "cfm_k2_l0.9"}
        lpips_blur = seed_runs["pbasr"]["merged"]["blur"]["blur"]["lpips"]
        assert all(0.0 <= v < 1.5 for v in lpips_blur)
    history = json.loads((out / "history.json").read_text())
    assert len(history["pbasr/seed0"]) == 2
    assert (out / "branch_cosine.png").is_file()
    assert (out / "models" / "pbasr_seed1" / "model.weights.h5").is_file()
