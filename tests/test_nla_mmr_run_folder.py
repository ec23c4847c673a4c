"""The nla-mmr run folder on the one runner: `polymodal eval` reproduces metrics.json from
predictions.csv, a killed run resumes to identical metrics, and `polymodal predict` scores new
admissions with the saved models (example input, exact agreement with the run's own scores, planted
signal, clear errors on bad input)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.config import apply_overrides
from polymodal.errors import DataError
from polymodal.recipes.nla_mmr import RECIPE, NlaMmrConfig
from polymodal.recipes.nla_mmr_predict import VisitPredictor
from polymodal.runs import evaluate_run, predict_file, run_recipe
from polymodal.tasks import COMMON_COLUMNS
from polymodal.tasks.multilabel import MultilabelTask
from tests.mimic_synthetic import write_drug_tables, write_mimic3

# small but long enough to learn the planted diagnosis -> medication links (as test_nla_mmr's learning test)
CFG = {"text_model": "hashing", "folds": 3, "repeats": 1, "cohorts": ["safedrug", "all-admissions"],
       "train": {"max_epochs": 30, "patience": 8, "lr": 5e-3},
       "protocol": {"seeds": 1, "n_boot": 30, "baselines": False, "robustness": True}}
STABLE = ("models", "subsets", "comparisons", "robustness", "subset_robustness")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("nla_run")
    write_drug_tables(root)
    write_mimic3(root / "mimic_iii_demo_1.4", n_patients=36)
    out, cache = root / "run", root / "cache"
    run_recipe(RECIPE, apply_overrides(NlaMmrConfig, CFG), out_dir=out, data_dir=root, cache_dir=cache,
               progress=False)
    return root, out, cache


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def test_run_folder_layout(run: tuple[Path, Path, Path]) -> None:
    _, out, _ = run
    frame = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    assert tuple(frame.columns) == (*COMMON_COLUMNS, *MultilabelTask.columns)
    assert set(frame["subset"]) == {"safedrug", "all-admissions"}
    assert {"none", "drop:procedures", "drop:drug_structure", "drop:drug_text"} == set(frame["condition"])
    row = frame.iloc[0]
    labels, scores = row["labels"].split(";"), [float(s) for s in row["scores"].split(";")]
    assert ";".join(m for m, s in zip(labels, scores, strict=True) if s >= float(row["threshold"])) == \
        row["predicted_set"]
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["name"] == "multilabel" and config["task"]["spec"]["ddi"]["safedrug"] == ["C09A|C10A"]
    for cohort in ("safedrug", "all-admissions"):
        saved = sorted((out / "jobs" / cohort).glob("r0/f*/nla-mmr/seed_0/model.pt"))
        assert len(saved) == 3  # 3 folds x 1 seed x 1 repeat
        state = json.loads((saved[0].parent / "state.json").read_text())
        assert state["codes"][0] == "<unknown>" and state["labels"] and 0 < state["threshold"] < 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["subsets"]) == {"safedrug", "all-admissions"}
    assert set(metrics["subset_robustness"]["all-admissions"]) == {"none", "drop:procedures", "drop:drug_structure",
                                                                   "drop:drug_text"}
    assert len(metrics["vocabularies"]["safedrug"]) == 3
    report = (out / "report.md").read_text()
    assert "## Cohort `all-admissions`" in report and "### [all-admissions] Results (test)" in report
    assert "Published numbers" in report


def test_eval_reproduces_metrics_exactly(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run_dir = _copy(run[1], tmp_path)
    before = json.loads((run_dir / "metrics.json").read_text())
    again, differences = evaluate_run(run_dir)
    assert differences == []
    assert {k: again.get(k) for k in STABLE} == {k: before.get(k) for k in STABLE}
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert {"nla-mmr", "nla-mmr | all-admissions"} <= {r["model"] for r in rows}


def test_killed_run_resumes_to_identical_metrics(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A job whose result.json is gone (killed before it finished) is trained again; every other job is
    reused, and metrics.json comes out identical."""
    root, out, cache = run
    run_dir = _copy(out, tmp_path)
    before = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "jobs/all-admissions/r0/f1/nla-mmr/seed_0/result.json").unlink()
    again = run_recipe(RECIPE, apply_overrides(NlaMmrConfig, CFG), out_dir=run_dir, data_dir=root, cache_dir=cache,
                       progress=False)
    assert again is not None and again["runs"][-1]["jobs_run"] == ["all-admissions/r0/f1/nla-mmr/seed_0"]
    assert {k: again.get(k) for k in STABLE} == {k: before.get(k) for k in STABLE}


def test_task_metrics_match_hand_computation() -> None:
    """Two visits of one fold; the second has a medication outside the fold's labels (missed, ranked last)."""
    rows = pd.DataFrame({
        "model": "m", "kind": "recipe", "selection": "valid", "fold": 0, "seed": 0, "condition": "none",
        "subset": "c", "split": "test", "id": ["1", "2"], "patient": ["p", "q"], "threshold": 0.5,
        "labels": "A;B;C", "true_set": ["A;B", "C;Z"], "predicted_set": ["A;C", "C"],
        "scores": ["0.9;0.2;0.6", "0.1;0.2;0.8"]})
    task = MultilabelTask(headline="m", n_boot=10, ddi={"c": ["A|C"]})
    test = task.evaluate(rows)["models"]["m"]["splits"]["test"]
    # visit 1: predicted {A, C}, true {A, B}: Jaccard 1/3, F1 1/2, AP (1 + 2/3) / 2; one interacting pair
    # visit 2: predicted {C}, true {C, Z}: Jaccard 1/2, F1 2/3, AP (1 + 2/4) / 2 (Z ranks last of 4)
    assert test["jaccard"]["mean"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert test["f1"]["mean"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert test["pr_auc"]["mean"] == pytest.approx(((1 + 2 / 3) / 2 + (1 + 2 / 4) / 2) / 2)
    assert test["ddi_rate"]["mean"] == pytest.approx(1.0)
    assert test["avg_meds"]["mean"] == pytest.approx(1.5)
    # a second model on the same visits: paired comparisons, Holm-adjusted within each metric
    other = rows.assign(model="base", kind="trivial", scores=["0.5;0.5;0.5", "0.5;0.5;0.5"])
    comparisons = task.evaluate(pd.concat([rows, other], ignore_index=True))["comparisons"]
    jaccard = next(r for r in comparisons if r["metric"] == "jaccard_diff")
    # "base" predicts all three labels: Jaccard 2/3 on visit 1, 1/4 on visit 2 ({C} of {A, B, C, Z})
    assert jaccard["model"] == "m vs base"
    assert jaccard["mean"] == pytest.approx((1 / 3 + 1 / 2) / 2 - (2 / 3 + 1 / 4) / 2)
    assert all(r["p_adjusted"] >= r["p_value"] for r in comparisons)


def test_task_names_file_row_and_field() -> None:
    rows = pd.DataFrame({
        "model": "m", "kind": "recipe", "selection": "valid", "fold": 0, "seed": 0, "condition": "none",
        "subset": "c", "split": "test", "id": ["1", "2"], "patient": ["p", "q"], "threshold": 0.5,
        "labels": "A;B", "true_set": ["A", "B"], "predicted_set": ["A", ""], "scores": ["0.9;0.2", "0.1;oops"]})
    with pytest.raises(DataError, match=r"predictions.csv, row 2, field 'scores'"):
        MultilabelTask(headline="m", n_boot=10).evaluate(rows)
    with pytest.raises(DataError, match="exactly once"):
        MultilabelTask(headline="m", n_boot=10).evaluate(pd.concat([rows.iloc[:1].assign(scores="0.9;0.2"),
                                                                    rows.iloc[:1].assign(fold=1, scores="0.9;0.2"),
                                                                    rows.iloc[1:].assign(scores="0.1;0.2",
                                                                                         seed=1)]))


def _admissions(root: Path) -> pd.DataFrame:
    """The synthetic MIMIC-III admissions as `polymodal predict` input (one row per admission)."""
    mimic = root / "mimic_iii_demo_1.4"
    adm = pd.read_csv(mimic / "ADMISSIONS.csv")
    codes = {}
    for table, col in (("DIAGNOSES_ICD", "diagnoses"), ("PROCEDURES_ICD", "procedures")):
        t = pd.read_csv(mimic / f"{table}.csv", dtype={"ICD9_CODE": str}).dropna(subset=["ICD9_CODE"])
        codes[col] = t.groupby("HADM_ID")["ICD9_CODE"].agg(";".join)
    return pd.DataFrame({"subject_id": adm["SUBJECT_ID"], "hadm_id": adm["HADM_ID"], "admittime": adm["ADMITTIME"],
                         "icd_version": 9, "diagnoses": adm["HADM_ID"].map(codes["diagnoses"]).fillna(""),
                         "procedures": adm["HADM_ID"].map(codes["procedures"]).fillna("")})


def test_example_input_round_trip(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, out, cache = run
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(out), "--example-input", str(tmp_path / "ex.csv")])
    assert result.exit_code == 0, result.output
    example = pd.read_csv(tmp_path / "ex.csv")
    assert list(example.columns) == ["subject_id", "hadm_id", "admittime", "icd_version", "diagnoses", "procedures"]
    split = pd.read_csv(out / "split.csv")
    tested = split[(split["subset"] == "safedrug") & (split["fold"] == 0)]["id"]
    assert 0 < len(example) <= 5 and set(example["hadm_id"]) <= set(tested)  # test patients, no medications
    result = runner.invoke(app, ["predict", str(out), "--input", str(tmp_path / "ex.csv"), "--output",
                                 str(tmp_path / "out.csv"), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "out.csv")
    assert list(scored["id"].drop_duplicates()) == list(example["hadm_id"])


def test_predict_reproduces_a_saved_models_scores(run: tuple[Path, Path, Path]) -> None:
    """One saved fold model, the run's own test visits: predict gives the scores predictions.csv holds."""
    root, out, cache = run
    predictor = VisitPredictor(out, cache_dir=cache)
    member = next(m for m in predictor.members["all-admissions"] if m.state["fold"] == 1)
    predictor.members = {"all-admissions": [member]}
    preds = pd.read_csv(out / "predictions.csv", dtype={"scores": str, "id": str})
    mine = preds[(preds["subset"] == "all-admissions") & (preds["model"] == "nla-mmr")
                 & (preds["condition"] == "none") & (preds["fold"] == 1)]
    visits = _admissions(root)
    visits = visits[visits["hadm_id"].astype(str).isin(mine["id"])]
    got = predictor.predict(visits).pivot(index="id", columns="medication", values="score")[member.state["labels"]]
    expected = np.array([[float(s) for s in row.split(";")]
                         for row in mine.set_index("id").loc[got.index.astype(str), "scores"]])
    np.testing.assert_allclose(got.to_numpy(), expected, atol=1e-8)


def test_predict_finds_planted_signal_and_uses_history(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, out, cache = run
    (tmp_path / "new.csv").write_text(
        "subject_id,hadm_id,admittime,icd_version,diagnoses,procedures\n"
        "7,71,2150-01-01,9,4011;25000,\n"     # hypertension -> C09A (planted)
        "8,81,2150-01-01,9,25000,\n"          # the same admission without it
        "8,82,2150-03-01 08:30:00,9,272.0,\n"  # a second admission: history, scored by the safedrug models
        "9,91,2150-01-01,9,,\n"                # no diagnosis: counted, not scored
        "10,101,2150-01-01,9,99999,\n")        # a code no training patient had: the unknown code, counted
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        predict_file(out, tmp_path / "new.csv", tmp_path / "out.csv", cache_dir=cache, log=fh)
    frame = pd.read_csv(tmp_path / "out.csv")
    assert list(frame.columns) == ["id", "subject_id", "medication", "model", "score", "decision"]
    score = frame.set_index(["id", "medication"])["score"]
    assert score[(71, "C09A")] > score[(81, "C09A")] + 0.05  # the planted hypertension -> C09A link
    models = frame.groupby("id")["model"].first()
    assert models[82].startswith("safedrug") and models[71].startswith("all-admissions")
    assert 91 not in set(frame["id"]) and 101 in set(frame["id"])
    text = log.read_text()
    assert "1 x admissions without a diagnosis code" in text and "1 x codes no saved model's training" in text


@pytest.mark.parametrize(("body", "match"), [
    ("subject_id,hadm_id,admittime,icd_version\n1,2,2150-01-01,9\n", r"new.csv, field 'diagnoses'"),
    ("subject_id,hadm_id,admittime,icd_version,diagnoses\nx,2,2150-01-01,9,4011\n", r"row 1, field 'subject_id'"),
    ("subject_id,hadm_id,admittime,icd_version,diagnoses\n1,2,2150-01-01,9,4011\n1,2,2150-02-01,9,4011\n",
     r"row 2, field 'hadm_id'"),
    ("subject_id,hadm_id,admittime,icd_version,diagnoses\n1,2,01/02/2150,9,4011\n", r"row 1, field 'admittime'"),
    ("subject_id,hadm_id,admittime,icd_version,diagnoses\n1,2,2150-01-01,11,4011\n", r"row 1, field 'icd_version'"),
    ("subject_id,hadm_id,admittime,icd_version,diagnoses\n1,2,2150-01-01,9,40 11\n", r"row 1, field 'diagnoses'"),
])
def test_predict_bad_input_names_file_row_field(run: tuple[Path, Path, Path], tmp_path: Path, body: str,
                                                match: str) -> None:
    (tmp_path / "new.csv").write_text(body)
    with pytest.raises(DataError, match=match):
        predict_file(run[1], tmp_path / "new.csv", tmp_path / "out.csv", cache_dir=run[2])
