"""`polymodal quickstart` end to end on the cohort that ships with scikit-survival (one seed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from polymodal.quickstart import NETWORKS, run_quickstart


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("quickstart")
    return out, run_quickstart(out, seeds=1, progress=False)


def test_run_folder(run: tuple[Path, dict[str, Any]]) -> None:
    out, metrics = run
    for name in ("config.json", "split.json", "metrics.json", "predictions.csv", "report.md"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert list((out / "plots").glob("km_*.png"))
    report = (out / "report.md").read_text()
    assert "c_index" in report and "Does each modality help?" in report


def test_metrics_schema(run: tuple[Path, dict[str, Any]]) -> None:
    _, metrics = run
    assert metrics["recipe"] == "quickstart" and metrics["task"] == "survival"
    assert metrics["primary_metric"] == "c_index"
    assert set(metrics["dataset"]) >= {"description", "version", "sizes"}
    assert sum(metrics["dataset"]["sizes"].values()) == 198
    assert {"timing", "environment", "notes", "robustness"} <= set(metrics)
    kinds = {name: m["kind"] for name, m in metrics["models"].items()}
    assert kinds[next(iter(NETWORKS))] == "recipe" and kinds["kaplan-meier"] == "trivial"
    assert kinds["cox-clinical"] == "baseline" and {"genes-only", "clinical-only"} <= set(kinds)
    for name, model in metrics["models"].items():
        test = model["splits"]["test"]["c_index"]
        assert 0.0 <= test["mean"] <= 1.0, name
        assert test["ci_low"] <= test["mean"] <= test["ci_high"], name
        assert "c_index" in model["splits"]["valid"]
    assert metrics["models"]["kaplan-meier"]["splits"]["test"]["c_index"]["mean"] == 0.5
    assert set(metrics["robustness"]) == {"none", "drop:genes", "drop:clinical"}


def test_predictions_and_resume(run: tuple[Path, dict[str, Any]]) -> None:
    out, metrics = run
    frame = pd.read_csv(out / "predictions.csv")
    assert {"id", "split", "model", "seed", "time", "event", "risk"} <= set(frame.columns)
    assert set(frame["split"]) == {"valid", "test"} and set(frame["model"]) == set(metrics["models"])
    split = json.loads((out / "split.json").read_text())
    assert set(frame.loc[frame["split"] == "test", "id"]) == set(split["test"])
    # A second run reuses the saved split and the finished seeds: the same numbers come back.
    again = run_quickstart(out, seeds=1, progress=False)
    assert again["models"] == metrics["models"]
