"""``polymodal eval RUN``: metrics recomputed from a run folder's saved scores."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from polymodal.errors import DataError, MissingDataError
from polymodal.evaluation import evaluate_binary
from polymodal.evaluation.rerun import reevaluate
from polymodal.io import write_json

N_VALID, N_TEST, SEEDS = 30, 40, 2
BOOT = {"n_boot": 50, "alpha": 0.1, "seed": 3}  # not evaluate_binary's defaults: they must be read back


def _arrays(rng: np.random.Generator) -> dict[str, Any]:
    y_val = np.array([0.0, 1.0] * (N_VALID // 2))
    y_test = np.array([0.0, 1.0] * (N_TEST // 2))
    return {
        "y_val": y_val,
        "y_test": y_test,
        "val": [np.clip(0.3 * y_val + rng.uniform(0, 0.7, N_VALID), 0, 1) for _ in range(SEEDS)],
        "test": [np.clip(0.2 * y_test + rng.uniform(0, 0.8, N_TEST), 0, 1) for _ in range(SEEDS)],
        "prior": [np.full(N_VALID, 0.5)],
        "prior_test": [np.full(N_TEST, 0.5)],
    }


def _rows(model: str, selection: str, y_val: np.ndarray, val: list[np.ndarray], y_test: np.ndarray,
          test: list[np.ndarray]) -> list[pd.DataFrame]:
    frames = []
    for seed, (s_val, s_test) in enumerate(zip(val, test, strict=True)):
        for split, y, s in (("valid", y_val, s_val), ("test", y_test, s_test)):
            frames.append(pd.DataFrame({"id": [f"{split}-{i:03d}" for i in range(len(y))], "split": split,
                                        "model": model, "seed": seed, "y_true": y, "score": s,
                                        "selection": selection}))
    return frames


def _stale(kind: str) -> dict[str, Any]:
    """A model entry with wrong numbers, as an older evaluation code might have written it."""
    return {"kind": kind, "threshold": {"rule": "youden", "per_seed": [0.123]},
            "splits": {"test": {"roc_auc": {"mean": -1.0}}}, "bootstrap": dict(BOOT), "note": "kept"}


def _run_folder(tmp_path: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """metrics.json (stale numbers) + predictions.csv for selections temporal (headline) and valid."""
    rng = np.random.default_rng(0)
    arrays = {"temporal": _arrays(rng), "valid": _arrays(rng)}
    frames = []
    for selection, a in arrays.items():
        frames += _rows("mexa-ctp", selection, a["y_val"], a["val"], a["y_test"], a["test"])
        frames += _rows("prior", selection, a["y_val"], a["prior"], a["y_test"], a["prior_test"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pd.concat(frames, ignore_index=True).to_csv(run_dir / "predictions.csv", index=False)
    stale = {"mexa-ctp": _stale("recipe"), "prior": _stale("trivial")}
    write_json(run_dir / "metrics.json", {
        "recipe": "mexa-ctp", "task": "binary", "primary_metric": "roc_auc",
        "selection": {"name": "temporal", "description": "temporal hold-out"},
        "models": stale, "selections": {"temporal": stale, "valid": stale},
        "robustness": {"none": {"roc_auc": {"mean": -1.0}}, "drop:drugs": {"roc_auc": {"mean": 0.5}}},
        "timing": {"total_seconds": 12.0},
    })
    return run_dir, arrays


def _expected(a: dict[str, Any], model: str) -> dict[str, Any]:
    val, test = (a["val"], a["test"]) if model == "mexa-ctp" else (a["prior"], a["prior_test"])
    return evaluate_binary(a["y_val"], val, a["y_test"], test, threshold_rule="youden", **BOOT)


def test_recomputed_metrics_equal_evaluate_binary(tmp_path: Path) -> None:
    run_dir, arrays = _run_folder(tmp_path)
    metrics = reevaluate(run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())
    for selection, a in arrays.items():
        for model in ("mexa-ctp", "prior"):
            write_json(tmp_path / "expected.json", _expected(a, model))  # NaN -> null, as in metrics.json
            expected = json.loads((tmp_path / "expected.json").read_text())
            got = saved["selections"][selection][model]
            for key in ("splits", "threshold", "bootstrap", "n", "seeds"):  # exact: scores round-trip the CSV
                assert got[key] == expected[key], (selection, model, key)
            assert got["note"] == "kept" and got["kind"] in ("recipe", "trivial")
    assert saved["models"] == saved["selections"]["temporal"]
    assert saved["robustness"]["none"] == saved["models"]["mexa-ctp"]["splits"]["test"]
    assert saved["robustness"]["drop:drugs"] == {"roc_auc": {"mean": 0.5}}
    assert saved["timing"] == {"total_seconds": 12.0}
    assert metrics["models"]["mexa-ctp"]["splits"]["test"]["roc_auc"]["mean"] == pytest.approx(
        np.mean(saved["models"]["mexa-ctp"]["splits"]["test"]["roc_auc"]["per_seed"]))
    assert "mexa-ctp" in (run_dir / "report.md").read_text()


def test_seed_rows_are_aligned_by_id(tmp_path: Path) -> None:
    run_dir, arrays = _run_folder(tmp_path)
    frame = pd.read_csv(run_dir / "predictions.csv")
    second = frame["seed"] == 1
    shuffled = pd.concat([frame[~second], frame[second].sample(frac=1.0, random_state=0)], ignore_index=True)
    shuffled.to_csv(run_dir / "predictions.csv", index=False)
    got = reevaluate(run_dir)["selections"]["valid"]["mexa-ctp"]
    expected = _expected(arrays["valid"], "mexa-ctp")
    assert got["threshold"]["per_seed"] == pytest.approx(expected["threshold"]["per_seed"])
    assert got["splits"]["test"]["roc_auc"]["per_seed"] == pytest.approx(
        expected["splits"]["test"]["roc_auc"]["per_seed"])


@pytest.mark.parametrize("name", ["metrics.json", "predictions.csv"])
def test_incomplete_run_folder_names_the_file(tmp_path: Path, name: str) -> None:
    run_dir, _ = _run_folder(tmp_path)
    (run_dir / name).unlink()
    with pytest.raises(MissingDataError, match=re.escape(name)):
        reevaluate(run_dir)


def test_malformed_predictions_name_file_and_field(tmp_path: Path) -> None:
    run_dir, _ = _run_folder(tmp_path)
    frame = pd.read_csv(run_dir / "predictions.csv")
    frame.drop(columns="score").to_csv(run_dir / "predictions.csv", index=False)
    with pytest.raises(DataError, match=r"predictions\.csv, field 'score'"):
        reevaluate(run_dir)
    frame["score"] = frame["score"].astype(object)
    frame.loc[4, "score"] = "oops"
    frame.to_csv(run_dir / "predictions.csv", index=False)
    with pytest.raises(DataError, match=r"predictions\.csv, row 5, field 'score'"):
        reevaluate(run_dir)
    (run_dir / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match=r"metrics\.json"):
        reevaluate(run_dir)
