"""The nla-mmr run folder contract: predictions.csv -> `polymodal eval` recomputes the metrics without
retraining; `polymodal predict` scores new admissions with the saved models (planted signal, exact
agreement with the run's own scores, clear errors on bad input)."""

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
from polymodal.multilabel_experiment import run_medication
from polymodal.multilabel_predictions import PREDICTION_COLUMNS, reevaluate
from polymodal.predict import predict_file
from polymodal.recipes.nla_mmr import NlaMmrConfig
from polymodal.recipes.nla_mmr_predict import reevaluate_run
from tests.mimic_synthetic import write_drug_tables, write_mimic3

# small but long enough to learn the planted diagnosis -> medication links (as test_nla_mmr's learning test)
CFG = {"text_model": "hashing", "folds": 3, "repeats": 1, "cohorts": ["safedrug", "all-admissions"],
       "train": {"max_epochs": 30, "patience": 8, "lr": 5e-3},
       "protocol": {"seeds": 1, "n_boot": 30, "baselines": False, "robustness": True}}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("nla_run")
    write_drug_tables(root)
    write_mimic3(root / "mimic_iii_demo_1.4", n_patients=36)
    out, cache = root / "run", root / "cache"
    run_medication(apply_overrides(NlaMmrConfig, CFG), data_dir=root, out_dir=out, cache_dir=cache,
                   log=lambda _: None)
    return root, out, cache


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def test_run_folder_has_predictions_and_models(run: tuple[Path, Path, Path]) -> None:
    _, out, _ = run
    frame = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    assert tuple(frame.columns) == PREDICTION_COLUMNS
    assert set(frame["cohort"]) == {"safedrug", "all-admissions"}
    assert {"none", "drop:procedures", "drop:drug_structure", "drop:drug_text"} == set(frame["condition"])
    metrics = json.loads((out / "metrics.json").read_text())
    labels = metrics["cohorts"]["all-admissions"]["labels"]
    row = frame[frame["cohort"] == "all-admissions"].iloc[0]
    scores = np.array([float(s) for s in row["scores"].split(";")])
    assert len(scores) == len(labels)
    predicted = [m for m, s in zip(labels, scores, strict=True) if s >= float(row["threshold"])]
    assert ";".join(predicted) == row["predicted_set"]
    for cohort in ("safedrug", "all-admissions"):
        manifest = json.loads((out / cohort / "models.json").read_text())["models"]
        assert len(manifest) == 3  # 3 folds x 1 seed x 1 repeat
        assert all((out / cohort / m["file"]).is_file() for m in manifest)


def test_eval_reproduces_the_run_then_follows_the_predictions(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run_dir = _copy(run[1], tmp_path)
    before = json.loads((run_dir / "metrics.json").read_text())
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["models"] == before["models"]
    assert after["cohorts"]["safedrug"]["robustness"] == before["cohorts"]["safedrug"]["robustness"]
    # zero every score of one cohort's recipe rows: PR-AUC of every visit must fall to its chance level
    frame = pd.read_csv(run_dir / "predictions.csv", dtype=str, keep_default_na=False)
    rows = (frame["cohort"] == "all-admissions") & (frame["condition"] == "none")
    n_labels = len(before["cohorts"]["all-admissions"]["labels"])
    frame.loc[rows, "scores"] = ";".join(["0.5"] * n_labels)
    frame.to_csv(run_dir / "predictions.csv", index=False)
    changed = reevaluate_run(run_dir)
    pr = changed["models"]["nla-mmr [all-admissions]"]["splits"]["test"]["pr_auc"]["mean"]
    sizes = frame.loc[rows, "true_set"].str.count(";") + 1
    assert pr == pytest.approx(float(np.mean(sizes / n_labels)))  # tied scores: AP = share of positives
    assert changed["models"]["nla-mmr [safedrug]"] == before["models"]["nla-mmr [safedrug]"]


def test_eval_names_file_row_and_field(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run_dir = _copy(run[1], tmp_path)
    frame = pd.read_csv(run_dir / "predictions.csv", dtype=str, keep_default_na=False)
    frame.loc[4, "scores"] = "0.1;oops"
    frame.to_csv(run_dir / "predictions.csv", index=False)
    with pytest.raises(DataError, match=r"predictions.csv, row 5, field 'scores'"):
        reevaluate_run(run_dir)
    frame.drop(index=4).to_csv(run_dir / "predictions.csv", index=False)
    with pytest.raises(DataError, match="exactly once"):
        reevaluate(run_dir, lambda m: "")


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


def test_predict_reproduces_a_saved_models_scores(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """One saved fold model, the run's own test visits: predict gives the scores predictions.csv holds."""
    root, out, cache = run
    run_dir = _copy(out, tmp_path)
    manifest_path = run_dir / "all-admissions" / "models.json"
    manifest = json.loads(manifest_path.read_text())
    member = manifest["models"][0]
    manifest_path.write_text(json.dumps({**manifest, "models": [member]}))
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "cohorts": ["all-admissions"]}))
    preds = pd.read_csv(run_dir / "predictions.csv", dtype={"scores": str})
    mine = preds[(preds["cohort"] == "all-admissions") & (preds["model"] == "nla-mmr") & (preds["condition"] == "none")
                 & (preds["fold"] == member["fold"]) & (preds["seed"] == member["seed"])]
    visits = _admissions(root)
    visits = visits[visits["hadm_id"].isin(mine["hadm_id"])]
    visits.to_csv(tmp_path / "visits.csv", index=False)
    n = predict_file(run_dir, tmp_path / "visits.csv", tmp_path / "out.csv", cache_dir=cache)
    labels = json.loads((run_dir / "metrics.json").read_text())["cohorts"]["all-admissions"]["labels"]
    assert n == len(visits) * len(labels)
    got = pd.read_csv(tmp_path / "out.csv").pivot(index="id", columns="medication", values="score")[labels]
    expected = np.array([[float(s) for s in row.split(";")] for row in mine.set_index("hadm_id").loc[got.index,
                                                                                                   "scores"]])
    np.testing.assert_allclose(got.to_numpy(), expected, atol=1e-8)


def test_predict_finds_planted_signal_and_uses_history(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, out, cache = run
    (tmp_path / "new.csv").write_text(
        "subject_id,hadm_id,admittime,icd_version,diagnoses,procedures\n"
        "7,71,2150-01-01,9,4011;25000,\n"     # hypertension -> C09A (planted)
        "8,81,2150-01-01,9,25000,\n"          # the same admission without it
        "8,82,2150-03-01 08:30:00,9,272.0,\n"  # a second admission: history, scored by the safedrug models
        "9,91,2150-01-01,9,,\n")               # no diagnosis: counted, not scored
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        predict_file(out, tmp_path / "new.csv", tmp_path / "out.csv", cache_dir=cache, log=fh)
    frame = pd.read_csv(tmp_path / "out.csv")
    assert list(frame.columns) == ["id", "subject_id", "medication", "model", "score", "decision"]
    score = frame.set_index(["id", "medication"])["score"]
    assert score[(71, "C09A")] > score[(81, "C09A")] + 0.05  # the planted hypertension -> C09A link
    models = frame.groupby("id")["model"].first()
    assert models[82].startswith("safedrug") and models[71].startswith("all-admissions")
    assert 91 not in set(frame["id"])
    assert "1 x admissions without a diagnosis code" in log.read_text()


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
