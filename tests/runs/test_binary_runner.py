"""The one runner on a planted binary problem: it learns, writes one run folder, resumes, and
`polymodal eval` reproduces its metrics from predictions.csv alone."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from polymodal.config import TrainConfig
from polymodal.errors import ConfigError, DataError
from polymodal.runs import RunFolder, evaluate_run, load_run, run_recipe
from polymodal.tasks import flat_rows
from tests.synthetic import TOY, ToyConfig


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    metrics = run_recipe(TOY, ToyConfig(), out_dir=out, progress=False)
    assert metrics is not None
    return out, metrics


def test_learns_the_planted_signal_and_reports_baselines(finished: tuple[Path, dict]) -> None:
    _, metrics = finished
    ours = metrics["models"]["toy-experts"]["splits"]["test"]["roc_auc"]
    assert ours["mean"] > 0.85 and len(ours["per_seed"]) == 2
    assert metrics["models"]["prior"]["splits"]["test"]["roc_auc"]["mean"] == pytest.approx(0.5)
    assert {"tfidf-logistic", "embedding-logistic", "all-positive"} <= set(metrics["models"])
    assert set(metrics["selections"]) == {"temporal", "valid"}
    assert metrics["robustness"]["drop:signal"]["roc_auc"]["mean"] < 0.65 < 0.8 < \
        metrics["robustness"]["drop:noise"]["roc_auc"]["mean"]


def test_run_folder_layout(finished: tuple[Path, dict]) -> None:
    out, _ = finished
    for name in ("config.json", "split.csv", "predictions.csv", "manifest.json", "metrics.json", "report.md",
                 "run_log.json", "jobs/valid/seed_1/toy-experts/model.pt", "jobs/temporal/baselines/result.json"):
        assert (out / name).exists(), name
    preds = pd.read_csv(out / "predictions.csv")
    assert set(preds["condition"]) == {"none", "drop:signal", "drop:noise"}
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["name"] == "binary" and len(config["config_hash"]) == 16


def test_eval_reproduces_metrics_exactly(finished: tuple[Path, dict]) -> None:
    out, _ = finished
    again, differences = evaluate_run(out)
    assert differences == []
    assert again["models"] == json.loads((out / "metrics.json").read_text())["models"]
    assert flat_rows(again) == load_run(out).rows()


def test_eval_refuses_a_truncated_predictions_file(finished: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished[0], copy)
    lines = (copy / "predictions.csv").read_text().splitlines()
    (copy / "predictions.csv").write_text("\n".join(lines[:-10]) + "\n")
    before = (copy / "metrics.json").read_text()
    with pytest.raises(DataError, match="does not match the run's manifest"):
        evaluate_run(copy, write=True)
    assert (copy / "metrics.json").read_text() == before


def test_rerun_reuses_every_finished_job(finished: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    out, metrics = finished
    import polymodal.runs.record_binary as rb

    monkeypatch.setattr(rb, "_train_seed", partial(pytest.fail, "a finished job was trained again"))
    again = run_recipe(TOY, ToyConfig(), out_dir=out, progress=False)
    assert again is not None and again["models"] == metrics["models"]
    assert again["runs"][-1]["jobs_run"] == [] and again["runs"][-1]["resumed"] is True


def test_a_run_with_other_options_never_mixes_with_an_old_one(finished: tuple[Path, dict]) -> None:
    out, _ = finished
    with pytest.raises(ConfigError, match="other options"):
        run_recipe(TOY, ToyConfig(width=16), out_dir=out, progress=False)


def test_execution_only_options_keep_the_hash(finished: tuple[Path, dict]) -> None:
    from polymodal.runs.folder import config_hash

    a = ToyConfig().model_dump(mode="json")
    b = ToyConfig(train=TrainConfig(max_epochs=12, patience=4, batch_size=32, lr=3e-3, progress=True, threads=1,
                                    workers=2)).model_dump(mode="json")
    assert config_hash("toy", a) == config_hash("toy", b)
    assert RunFolder(finished[0]).job_done("valid/seed_0/toy-experts")


def test_out_pointing_at_a_file_is_refused_before_work(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="existing file"):
        run_recipe(TOY, ToyConfig(), out_dir=target, progress=False)


def test_jobs_trained_in_worker_processes_match_sequential_training(finished: tuple[Path, dict],
                                                                     tmp_path: Path) -> None:
    out, metrics = finished
    base = ToyConfig()
    parallel = base.model_copy(update={"train": base.train.model_copy(update={"workers": 2})})
    again = run_recipe(TOY, parallel, out_dir=tmp_path, progress=False)
    assert again is not None
    a = pd.read_csv(out / "predictions.csv").sort_values(["model", "selection", "seed", "condition", "split", "id"])
    b = pd.read_csv(tmp_path / "predictions.csv").sort_values(["model", "selection", "seed", "condition", "split",
                                                                 "id"])
    pd.testing.assert_series_equal(a["score"].reset_index(drop=True), b["score"].reset_index(drop=True),
                                   rtol=1e-5, atol=1e-6)
    assert again["config_hash"] == metrics["config_hash"]  # workers changes how, not what
