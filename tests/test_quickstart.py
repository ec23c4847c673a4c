"""`polymodal quickstart` (the `quickstart` recipe on the one runner) end to end on the cohort that ships
with scikit-survival, one seed: run folder, metrics schema, resume after a killed job, eval, predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.config import apply_overrides
from polymodal.recipes.quickstart import HEADLINE, NETWORKS, QuickstartConfig
from polymodal.recipes.registry import REGISTRY
from polymodal.runs import evaluate_run, run_recipe
from polymodal.runs.api import _differences

RECIPE = REGISTRY.get("quickstart")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("quickstart") / "run"
    result = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--seeds", "1", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "metrics.json").read_text())


def test_registered_and_builds() -> None:
    cfg = apply_overrides(QuickstartConfig, {}, protocol={"seeds": 2})
    problem = RECIPE.build(cfg, data_dir=None)
    assert problem.task.name == "survival" and problem.task.headline == HEADLINE
    assert [j.key for j in problem.jobs] == [f"networks/{n}/seed_{s}" for n in NETWORKS for s in (0, 1)] + ["baselines"]
    split = problem.split_manifest
    assert len(split) == 198 and split["id"].is_unique and set(split["split"]) == {"train", "valid", "test"}


def test_run_folder(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    for name in ("config.json", "split.csv", "metrics.json", "predictions.csv", "manifest.json", "report.md",
                 "artifacts/featurizer.json", f"jobs/networks/{HEADLINE}/seed_0/model.pt"):
        assert (out / name).is_file(), name
    assert list((out / "plots").glob("km_*.png"))
    report = (out / "report.md").read_text()
    assert "c_index" in report and "Does each modality help?" in report


def test_metrics_schema(run: tuple[Path, dict[str, Any]]) -> None:
    _, metrics = run
    assert metrics["recipe"] == "quickstart" and metrics["task"] == "survival"
    assert metrics["primary_metric"] == "c_index"
    assert set(metrics["dataset"]) >= {"description", "version", "sizes"}
    assert sum(metrics["dataset"]["sizes"].values()) == 198
    assert {"timing", "environment", "notes", "robustness", "comparisons"} <= set(metrics)
    kinds = {name: m["kind"] for name, m in metrics["models"].items()}
    assert kinds == {"genes+clinical": "recipe", "genes-only": "ablation", "clinical-only": "ablation",
                     "cox-clinical": "baseline", "cox-genes+clinical": "baseline", "kaplan-meier": "trivial"}
    for name, model in metrics["models"].items():
        test = model["splits"]["test"]["c_index"]
        assert 0.0 <= test["mean"] <= 1.0, name
        assert test["ci_low"] <= test["mean"] <= test["ci_high"], name
        assert "c_index" in model["splits"]["valid"] and model["n"] == {"valid": 40, "test": 40}
    assert metrics["models"]["kaplan-meier"]["splits"]["test"]["c_index"]["mean"] == 0.5
    assert set(metrics["robustness"]) == {"none", "drop:genes", "drop:clinical"}
    assert [c["b"] for c in metrics["comparisons"]] == [n for n in metrics["models"] if n != HEADLINE]


def test_eval_reproduces_metrics_json(run: tuple[Path, dict[str, Any]]) -> None:
    out, metrics = run
    again, differences = evaluate_run(out)
    assert differences == [] and again["models"] == metrics["models"]


def test_a_killed_job_is_rerun_and_the_metrics_match(run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, metrics = run
    copy = tmp_path / "killed"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "jobs" / "networks" / "genes-only")  # as if killed while training it
    (copy / "metrics.json").unlink()
    cfg = QuickstartConfig.model_validate(json.loads((out / "config.json").read_text())["options"])
    again = run_recipe(RECIPE, cfg, out_dir=copy, progress=False)
    assert again is not None and again["runs"][-1]["jobs_run"] == ["networks/genes-only/seed_0"]
    assert _differences(metrics, again) == []
    assert (copy / "predictions.csv").read_bytes() == (out / "predictions.csv").read_bytes()


def test_predict_scores_one_row_per_input_row(run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = run
    example, scored = tmp_path / "example.csv", tmp_path / "scored.csv"
    result = CliRunner().invoke(app, ["predict", str(out), "--example-input", str(example)])
    assert result.exit_code == 0, result.output
    given = pd.read_csv(example)
    assert len(given) == 5 and not {"time", "event", "t.tdm"} & set(given.columns)
    result = CliRunner().invoke(app, ["predict", str(out), "--input", str(example), "--output", str(scored)])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(scored)
    assert list(got["id"]) == list(given["id"])
    # the saved featuriser and weights give back the run's own test risks (one seed: equal)
    preds = pd.read_csv(out / "predictions.csv")
    own = preds[(preds["model"] == HEADLINE) & (preds["split"] == "test") & (preds["condition"] == "none")]
    np.testing.assert_allclose(got["risk"], own.set_index("id").loc[got["id"], "risk"], rtol=1e-6)
    given.loc[2, "age"] = "old"
    given.to_csv(example, index=False)
    bad = CliRunner().invoke(app, ["predict", str(out), "--input", str(example), "--output", str(scored)])
    assert bad.exit_code != 0 and "row 3" in str(bad.exception) and "age" in str(bad.exception)
