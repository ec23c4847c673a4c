"""``polymodal predict``: a real MEXA-CTP run on synthetic TOP files, then scoring label-less trials.

The text encoder is swapped for the hashing one (through the name the recipe looks up), so the
test needs no pretrained model; everything else (Morgan fingerprints, ICD vocabulary, the runner,
the featuriser saved as JSON, the saved state dicts) is the real code path.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.config import ProtocolConfig, TrainConfig
from polymodal.data.sources.top import COLUMNS, read_top_csv
from polymodal.encoders.text import HashingTextEncoder
from polymodal.errors import DataError, MissingDataError
from polymodal.io import write_json
from polymodal.recipes import mexa_ctp
from polymodal.runs import predict_file, run_recipe, write_example_input

ICD_TABLE = (
    'C34,"Malignant neoplasm of bronchus and lung"\nC349,"... unspecified part"\nC3490,"... lung"\n'
    'D02,"Carcinoma in situ of respiratory system"\nD022,"... bronchus and lung"\nD0220,"... unspecified"\n'
    'F32,"Major depressive disorder, single episode"\nF329,"... unspecified"\n'
)
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1"]
CODES = ["C34.90", "D02.20", "F32.9"]
STATEMENTS = ["Adults aged 18 or older", "Confirmed lung cancer", "Adequate renal function", "Major depression",
              "Signed informed consent", "ECOG 0 to 1"]
UNLABELED = [c for c in COLUMNS if c not in ("status", "why_stop", "label", "phase")]


def _trial(i: int, rng: np.random.Generator) -> dict[str, str]:
    """Label planted in the disease code and the first drug, so two epochs learn something."""
    label = int(rng.random() < 0.5)
    code = CODES[0] if label else CODES[int(rng.integers(1, 3))]
    drugs = [SMILES[label], SMILES[2 + int(rng.integers(0, 2))]]
    inclusion = rng.choice(STATEMENTS[:4], size=2, replace=False)
    criteria = ("Inclusion Criteria:\n\n" + "".join(f"  -  {s}\n" for s in inclusion)
                + "\nExclusion Criteria:\n\n  -  " + STATEMENTS[4 + label % 2] + "\n")
    return {"nctid": f"NCT{1_000_000 + i:08d}", "status": "completed", "why_stop": "", "label": str(label),
            "phase": "phase 1", "diseases": "['a disease']", "icdcodes": f"[\"['{code}']\"]",
            "drugs": "['drug a', 'drug b']", "smiless": repr(drugs), "criteria": criteria}


def _write(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _data_dir(root: Path) -> tuple[Path, list[dict[str, str]]]:
    rng = np.random.default_rng(0)
    rows = [_trial(i, rng) for i in range(60)]
    top = root / "TOP_clinical_trial_outcome"
    (top / "icdcode").mkdir(parents=True)
    (top / "icdcode" / "icd_10_direct_mapping.csv").write_text(ICD_TABLE, encoding="utf-8")
    for split, part in (("train", rows[:36]), ("valid", rows[36:48]), ("test", rows[48:])):
        _write(top / f"phase_I_{split}.csv", part, list(COLUMNS))
    return root, rows[48:]


@pytest.fixture(autouse=True)
def hashing_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # the run was trained with the hashing encoder: new trials must be embedded with it too
    monkeypatch.setattr(mexa_ctp, "SentenceTextEncoder", lambda model_id: HashingTextEncoder(dim=32))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One finished run folder (2 seeds, valid selection, 2 epochs) shared by the tests here."""
    root = tmp_path_factory.mktemp("predict")
    data_dir, test_rows = _data_dir(root / "data")
    cfg = mexa_ctp.MexaCtpConfig(
        # One thread, as the recipe's default: with 2 on a busy 2-core machine this took 60 s, not 6.
        train=TrainConfig(max_epochs=2, patience=2, batch_size=16, progress=False, threads=1),
        protocol=ProtocolConfig(seeds=2, selections=("valid",), robustness=False, baselines=False, n_boot=20),
    )
    threads = torch.get_num_threads()  # the runner sets it process-wide; give it back afterwards
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mexa_ctp, "SentenceTextEncoder", lambda model_id: HashingTextEncoder(dim=32))
            run_recipe(mexa_ctp.RECIPE, cfg, out_dir=root / "run", data_dir=data_dir, cache_dir=root / "cache",
                       progress=False)
        yield {"run_dir": root / "run", "cache_dir": root / "cache", "test_rows": test_rows, "root": root}
    finally:
        torch.set_num_threads(threads)


def test_scores_new_trials_with_the_saved_ensemble_and_threshold(run: dict[str, Any]) -> None:
    run_dir, root = run["run_dir"], run["root"]
    new = _trial(99, np.random.default_rng(1))
    new["criteria"] = "Inclusion Criteria:\n\n  -  A statement never seen in training\n"
    _write(root / "new.csv", [*run["test_rows"], new], UNLABELED)  # no label, status, why_stop, phase
    log = io.StringIO()
    n = predict_file(run_dir, root / "new.csv", root / "out" / "scores.csv", cache_dir=run["cache_dir"], log=log)

    out = pd.read_csv(root / "out" / "scores.csv", dtype={"id": str})
    assert n == len(out) == 13
    assert list(out.columns) == ["id", "score", "decision"]
    assert list(out["id"]) == [r["nctid"] for r in run["test_rows"]] + [new["nctid"]]
    assert out["score"].between(0, 1).all()

    # The seed ensemble reproduces the run's own test scores: same featuriser, same weights.
    saved = pd.read_csv(run_dir / "predictions.csv", dtype={"id": str}, float_precision="round_trip")
    saved = saved[(saved["split"] == "test") & (saved["model"] == "mexa-ctp")]
    assert sorted(saved["seed"].unique()) == [0, 1]
    expected = saved.groupby("id")["score"].mean()
    np.testing.assert_allclose(out["score"].iloc[:12], expected.loc[out["id"].iloc[:12]], atol=1e-6)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    threshold = float(np.mean(metrics["models"]["mexa-ctp"]["threshold"]["per_seed"]))
    assert (out["decision"] == (out["score"] >= threshold).astype(int)).all()
    assert f"score >= {threshold:.4f}" in log.getvalue()


def _predict(run_dir: Path, path: Path, cache_dir: Path) -> tuple[pd.DataFrame, float]:
    predictor = mexa_ctp.TrialPredictor(run_dir, cache_dir)
    return predictor.predict(predictor.read_input(path)), predictor.threshold


def test_decision_follows_the_threshold_in_metrics_json(run: dict[str, Any], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", "metrics.json", "artifacts", "jobs"):
        (run_dir / name).symlink_to(run["run_dir"] / name)
    (run_dir / "metrics.json").unlink()
    (run_dir / "metrics.json").write_bytes((run["run_dir"] / "metrics.json").read_bytes())
    _write(tmp_path / "new.csv", run["test_rows"], UNLABELED)
    first, _ = _predict(run_dir, tmp_path / "new.csv", run["cache_dir"])
    middle = float(np.median(first["score"]))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["models"]["mexa-ctp"]["threshold"]["per_seed"] = [middle - 1.0, middle + 1.0]  # mean = median
    write_json(run_dir / "metrics.json", metrics)
    again, threshold = _predict(run_dir, tmp_path / "new.csv", run["cache_dir"])
    np.testing.assert_array_equal(again["score"], first["score"])
    assert (again["decision"] == (again["score"] >= middle).astype(int)).all()
    assert threshold == pytest.approx(middle)


def test_bad_codes_and_smiles_are_counted_and_printed(run: dict[str, Any], tmp_path: Path) -> None:
    rows = [dict(r) for r in run["test_rows"][:3]]
    rows[0]["icdcodes"] = "[\"['Q99.99', 'C34.90']\"]"
    rows[1]["smiless"] = "['C1CC(', 'CCO']"
    _write(tmp_path / "new.csv", rows, UNLABELED)
    log = io.StringIO()
    n = predict_file(run["run_dir"], tmp_path / "new.csv", tmp_path / "scores.csv", cache_dir=run["cache_dir"],
                     log=log)
    assert n == 3  # a trial with a bad code or SMILES is still scored, without that item
    assert "1 x unknown ICD-10 code" in log.getvalue() and "'Q99.99'" in log.getvalue()
    assert "1 x unparsable SMILES" in log.getvalue()


def test_malformed_input_names_file_row_and_field(run: dict[str, Any], tmp_path: Path) -> None:
    rows = [dict(r) for r in run["test_rows"][:3]]
    rows[2]["nctid"] = "trial-3"
    _write(tmp_path / "bad.csv", rows, UNLABELED)
    with pytest.raises(DataError, match=r"bad\.csv, row 3, field 'nctid'"):
        predict_file(run["run_dir"], tmp_path / "bad.csv", tmp_path / "scores.csv", cache_dir=run["cache_dir"])
    assert not (tmp_path / "scores.csv").exists()


def test_incomplete_run_folder_names_the_file(run: dict[str, Any], tmp_path: Path) -> None:
    _write(tmp_path / "new.csv", run["test_rows"][:2], UNLABELED)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(MissingDataError, match=r"config\.json"):
        predict_file(run_dir, tmp_path / "new.csv", tmp_path / "scores.csv")
    (run_dir / "config.json").write_bytes((run["run_dir"] / "config.json").read_bytes())
    (run_dir / "metrics.json").write_bytes((run["run_dir"] / "metrics.json").read_bytes())
    with pytest.raises(MissingDataError, match=r"featurizer\.json"):
        predict_file(run_dir, tmp_path / "new.csv", tmp_path / "scores.csv")


def test_example_input_round_trips_through_predict(run: dict[str, Any], tmp_path: Path) -> None:
    n = write_example_input(run["run_dir"], tmp_path / "example.csv")
    example = pd.read_csv(tmp_path / "example.csv")
    assert n == len(example) == 5 and "label" not in example.columns
    assert predict_file(run["run_dir"], tmp_path / "example.csv", tmp_path / "scores.csv",
                        cache_dir=run["cache_dir"]) == 5


def test_cli(run: dict[str, Any], tmp_path: Path) -> None:
    _write(tmp_path / "new.csv", run["test_rows"][:4], UNLABELED)
    result = CliRunner().invoke(app, ["predict", str(run["run_dir"]), "--input", str(tmp_path / "new.csv"),
                                      "--output", str(tmp_path / "scores.csv"), "--cache-dir", str(run["cache_dir"])])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "scores.csv")) == 4


def test_read_top_csv_label_optional(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rows = [_trial(i, rng) for i in range(3)]
    rows[1]["label"] = ""
    (tmp_path / "icdcode").mkdir()
    (tmp_path / "icdcode" / "icd_10_direct_mapping.csv").write_text(ICD_TABLE, encoding="utf-8")
    _write(tmp_path / "trials.csv", rows, list(COLUMNS))
    records, skips = read_top_csv(tmp_path / "trials.csv", require_label=False)  # ICD tables found beside it
    assert [r.target for r in records][::2] == [float(rows[0]["label"]), float(rows[2]["label"])]
    assert np.isnan(records[1].target)
    assert not skips.counts
    with pytest.raises(DataError, match=r"trials\.csv, row 2, field 'label'"):
        read_top_csv(tmp_path / "trials.csv")
    _write(tmp_path / "trials.csv", rows, UNLABELED)
    with pytest.raises(DataError, match="lacks column"):
        read_top_csv(tmp_path / "trials.csv")
