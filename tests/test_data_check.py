"""``polymodal data check`` on a temporary data directory with synthetic files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data.check import OTHER_DATASETS, check_data_dir
from polymodal.data.sources.top import COLUMNS

ICD_TABLE = 'C34,"Malignant neoplasm of bronchus and lung"\nC349,"... unspecified part"\nC3490,"... lung"\n'
CRITERIA = "Inclusion Criteria:\n\n  -  Adults\n\nExclusion Criteria:\n\n  -  Pregnancy\n"


def _row(nctid: str, label: str = "1", **overrides: str) -> dict[str, str]:
    row = {"nctid": nctid, "status": "completed", "why_stop": "", "label": label, "phase": "phase 1",
           "diseases": "['lung cancer']", "icdcodes": "[\"['C34.90']\"]", "drugs": "['ethanol']",
           "smiless": "['CCO']", "criteria": CRITERIA}
    return {**row, **overrides}


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)


def _data_dir(tmp_path: Path) -> Path:
    """Phase I complete and valid (one unknown code), phase II partial, phase III absent, two other folders."""
    top = tmp_path / "TOP_clinical_trial_outcome"
    (top / "icdcode").mkdir(parents=True)
    (top / "icdcode" / "icd_10_direct_mapping.csv").write_text(ICD_TABLE, encoding="utf-8")
    _write_csv(top / "phase_I_train.csv", [_row("NCT00000001"), _row("NCT00000002", "0"),
                                           _row("NCT00000003", icdcodes="[\"['Q99.99']\"]")])
    _write_csv(top / "phase_I_valid.csv", [_row("NCT00000004")])
    _write_csv(top / "phase_I_test.csv", [_row("NCT00000005", "0"), _row("NCT00000006")])
    _write_csv(top / "phase_II_valid.csv", [_row("NCT00000007")])
    (tmp_path / "MELD_text").mkdir()
    for name in ("train_sent_emo.csv", "dev_sent_emo.csv"):
        (tmp_path / "MELD_text" / name).write_text("a,b\n1,2\n", encoding="utf-8")
    (tmp_path / "fashion_product_images" / "images").mkdir(parents=True)
    (tmp_path / "fashion_product_images" / "images" / "1163.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "ph2" / "images").mkdir(parents=True)  # a folder with a reader, without its table
    (tmp_path / "ph2" / "images" / "IMD002.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "movielens_latest_small").mkdir()  # present but empty
    return tmp_path


def test_statuses_sizes_and_skips(tmp_path: Path) -> None:
    report = check_data_dir(_data_dir(tmp_path))
    datasets = report["datasets"]
    assert report["data_dir"] == str(tmp_path.resolve())

    phase_one = datasets["TOP phase I"]
    assert phase_one["status"] == "ok"
    assert "train 3 / valid 1 / test 2" in phase_one["details"]
    assert "1 unknown ICD-10 code" in phase_one["details"]
    assert datasets["TOP phase II"]["status"] == "partial"
    assert "phase_II_train.csv" in datasets["TOP phase II"]["details"]
    assert "phase_II_valid.csv" not in datasets["TOP phase II"]["details"]
    assert datasets["TOP phase III"]["status"] == "missing"
    assert datasets["TOP ICD-10 tables"]["status"] == "partial"  # no icd2ccs.txt

    assert datasets["MELD_text"] == {"status": "ok", "details": "2 files"}
    assert datasets["fashion_product_images"] == {"status": "ok", "details": "1 file"}  # counted recursively
    assert datasets["ph2"]["status"] == "partial" and "ph2_concepts.csv not found" in datasets["ph2"]["details"]
    assert datasets["movielens_latest_small"]["status"] == "missing"
    assert datasets["Time-MMD"]["status"] == "missing"
    assert set(OTHER_DATASETS) <= set(datasets)
    assert all(set(entry) == {"status", "details"} for entry in datasets.values())


def test_malformed_file_is_an_error_naming_file_row_and_field(tmp_path: Path) -> None:
    data_dir = _data_dir(tmp_path)
    _write_csv(data_dir / "TOP_clinical_trial_outcome" / "phase_I_valid.csv",
               [_row("NCT00000004"), _row("NCT00000008", label="maybe")])
    entry = check_data_dir(data_dir)["datasets"]["TOP phase I"]
    assert entry["status"] == "error"
    assert "phase_I_valid.csv, row 2, field 'label'" in entry["details"]


def test_missing_icd_table_is_an_error_for_a_complete_phase(tmp_path: Path) -> None:
    data_dir = _data_dir(tmp_path)
    (data_dir / "TOP_clinical_trial_outcome" / "icdcode" / "icd_10_direct_mapping.csv").unlink()
    datasets = check_data_dir(data_dir)["datasets"]
    assert datasets["TOP phase I"]["status"] == "error"
    assert "icd_10_direct_mapping.csv" in datasets["TOP phase I"]["details"]
    assert datasets["TOP ICD-10 tables"]["status"] == "missing"


def test_missing_data_dir_is_reported_not_raised(tmp_path: Path) -> None:
    report = check_data_dir(tmp_path / "nowhere")
    assert {entry["status"] for entry in report["datasets"].values()} == {"missing"}
    assert "does not exist" in report["datasets"]["TOP phase I"]["details"]


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMODAL_DATA", str(_data_dir(tmp_path)))
    assert check_data_dir(None)["datasets"]["TOP phase I"]["status"] == "ok"


def test_cli_json_and_exit_code(tmp_path: Path) -> None:
    runner = CliRunner()
    data_dir = _data_dir(tmp_path)
    ok = runner.invoke(app, ["data", "check", "--data-dir", str(data_dir), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["datasets"]["TOP phase I"]["status"] == "ok"
    _write_csv(data_dir / "TOP_clinical_trial_outcome" / "phase_I_test.csv", [_row("bad-id")])
    failed = runner.invoke(app, ["data", "check", "--data-dir", str(data_dir), "--json"])
    assert failed.exit_code == 1
    missing = runner.invoke(app, ["data", "check", "--data-dir", str(tmp_path / "nowhere")])
    assert missing.exit_code == 0 and "does not exist" in missing.stdout
