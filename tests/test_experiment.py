"""The binary runner end to end on planted data: it learns, reports, and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import polymodal.experiment as experiment
from polymodal.experiment import ProtocolConfig, run_binary
from polymodal.training import TrainConfig
from tests.synthetic import make_problem

TRAIN = TrainConfig(max_epochs=12, patience=4, batch_size=32, lr=3e-3, progress=False)
PROTOCOL = ProtocolConfig(seeds=2, n_boot=200)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    metrics = run_binary(make_problem(), PROTOCOL, TRAIN, out, config={"recipe": "toy"})
    return out, metrics


def test_learns_planted_signal_and_beats_trivial_baselines(finished_run: tuple[Path, dict]) -> None:
    _, metrics = finished_run
    ours = metrics["models"]["toy-experts"]["splits"]["test"]["roc_auc"]
    assert ours["mean"] > 0.85
    assert len(ours["per_seed"]) == 2 and ours["ci_low"] <= ours["mean"] <= ours["ci_high"]
    assert metrics["models"]["prior"]["splits"]["test"]["roc_auc"]["mean"] == pytest.approx(0.5)
    assert {"tfidf-logistic", "embedding-logistic", "all-positive"} <= set(metrics["models"])
    assert set(metrics["selections"]) == {"temporal", "valid"}


def test_dropping_the_signal_modality_hurts_and_dropping_noise_does_not(finished_run: tuple[Path, dict]) -> None:
    robust = finished_run[1]["robustness"]
    assert robust["drop:signal"]["roc_auc"]["mean"] < 0.65
    assert robust["drop:noise"]["roc_auc"]["mean"] > 0.8


def test_run_folder_is_complete_and_strict_json(finished_run: tuple[Path, dict]) -> None:
    out, _ = finished_run
    for name in ("config.json", "metrics.json", "predictions.csv", "report.md", "plots/roc.png",
                 "temporal/featurizer.pkl", "valid/seed_1/model.pt", "valid/seed_1/scores.npz"):
        assert (out / name).exists(), name
    json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    preds = pd.read_csv(out / "predictions.csv")
    assert set(preds["split"]) == {"valid", "test"}  # selection scores are stored as "valid", never mixed
    assert "toy-experts" in (out / "report.md").read_text()


def test_rerun_reuses_finished_seeds(finished_run: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    out, metrics = finished_run

    def no_training(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a finished seed was trained again")

    monkeypatch.setattr(experiment, "make_trainer", no_training)
    again = run_binary(make_problem(), PROTOCOL, TRAIN, out, config={"recipe": "toy"})
    assert again["models"]["toy-experts"]["splits"]["test"] == metrics["models"]["toy-experts"]["splits"]["test"]


def test_seeds_trained_in_worker_processes_match_sequential_training(
    finished_run: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = finished_run
    parallel = TRAIN.model_copy(update={"workers": 2})
    run_binary(make_problem(), PROTOCOL, parallel, tmp_path, config={"recipe": "toy"})
    for selection in ("temporal", "valid"):
        for seed in range(PROTOCOL.seeds):
            with np.load(out / selection / f"seed_{seed}" / "scores.npz") as a, \
                    np.load(tmp_path / selection / f"seed_{seed}" / "scores.npz") as b:
                np.testing.assert_allclose(a["test"], b["test"], rtol=1e-5, atol=1e-6)
