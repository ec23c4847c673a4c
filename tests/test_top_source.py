"""The TOP clinical-trial-outcome adapter, on small synthetic CSVs (and, marked slow, on real data)."""

from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from polymodal.data.sources.top import COLUMNS, INPUT_KEYS, load_top, parse_phase
from polymodal.errors import ConfigError, DataError, MissingDataError

CRITERIA = """
        Inclusion Criteria:

          -  Adults aged 18 years or older with histologically confirmed non-small cell lung
             cancer

        Exclusion Criteria:

          -  Pregnancy
      """
# A token no Record may carry: planted in status and why_stop, which reveal the outcome.
LEAK = "LEAKY-TERMINATED-FOR-FUTILITY"


def _row(**overrides: str) -> dict[str, str]:
    row = {
        "nctid": "NCT01187615",
        "status": f"terminated {LEAK}",
        "why_stop": f"lack of efficacy {LEAK}",
        "label": "0",
        "phase": "phase 1",
        "diseases": "[' Small Cell Lung Carcinoma ', 'nsclc']",
        "icdcodes": "[\"['D02.20', 'D02.21']\", \"['D02.20', 'C34.90']\"]",
        "drugs": "['cisplatin', 'ethanol']",
        "smiless": "['OCC', 'C(O)C', 'c1ccccc1O']",  # the first two are the same molecule
        "criteria": CRITERIA,
    }
    return {**row, **overrides}


def _write(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _dataset(tmp_path: Path, stem: str = "phase_I", **split_rows: list[dict[str, str]]) -> Path:
    """A data dir with TOP's layout: three split files and a tiny ICD table."""
    top = tmp_path / "TOP_clinical_trial_outcome"
    (top / "icdcode").mkdir(parents=True, exist_ok=True)
    (top / "icdcode" / "icd_10_direct_mapping.csv").write_text(
        'C34,"Malignant neoplasm of bronchus and lung"\nC349,"... unspecified part"\nC3490,"... lung"\n'
        'D02,"Carcinoma in situ of respiratory system"\nD022,"Carcinoma in situ of bronchus and lung"\n'
        'D0220,"... unspecified bronchus"\nD0221,"... right bronchus"\nF32,"Major depressive disorder"\n',
        encoding="utf-8",
    )
    defaults = {
        "train": [_row(), _row(nctid="NCT00000378", label="1")],
        "valid": [_row(nctid="NCT02000001", label="1")],
        "test": [_row(nctid="NCT04000001")],
    }
    for split, rows in {**defaults, **split_rows}.items():
        _write(top / f"{stem}_{split}.csv", rows)
    return tmp_path


def _error(data_dir: Path, **kwargs: Any) -> DataError:
    with pytest.raises(DataError) as err:
        load_top(data_dir, "I", **kwargs)
    return err.value


def test_loads_records_with_clean_inputs(tmp_path: Path) -> None:
    splits = load_top(_dataset(tmp_path), "I")
    assert splits.sizes() == {"train": 2, "valid": 1, "test": 1}
    record = splits.train[0]
    assert record.id == "NCT01187615" and record.target == 0.0
    assert record.inputs["drugs"] == ["CCO", "Oc1ccccc1"]  # canonical and de-duplicated
    assert record.inputs["drug_names"] == ["cisplatin", "ethanol"]
    assert record.inputs["diseases"] == ["small cell lung carcinoma", "nsclc"]
    assert record.inputs["icd_codes"] == ["D02.20", "D02.21", "C34.90"]  # flattened, de-duplicated
    assert record.inputs["inclusion"] == [
        "Adults aged 18 years or older with histologically confirmed non-small cell lung cancer"]
    assert record.inputs["exclusion"] == ["Pregnancy"]
    assert record.meta == {"nct_number": 1187615, "phase": "phase 1", "file": "phase_I_train.csv", "row": 1}
    assert splits.train[1].target == 1.0 and splits.train[1].meta["row"] == 2
    assert splits.files["test"].endswith("TOP_clinical_trial_outcome/phase_I_test.csv")
    assert "TOP phase I" in splits.description and "futianfan" in splits.description
    assert not splits.skips.counts


def test_outcome_revealing_columns_never_reach_a_record(tmp_path: Path) -> None:
    splits = load_top(_dataset(tmp_path), "I")
    for _, records in splits.items():
        for record in records:
            assert set(record.inputs) == set(INPUT_KEYS)
            assert set(record.meta) == {"nct_number", "phase", "file", "row"}
            assert LEAK not in repr(record.inputs) and LEAK not in repr(record.meta)
            assert "terminated" not in repr(record.inputs) + repr(record.meta)


@pytest.mark.parametrize(("given", "expected"), [("I", "I"), ("1", "I"), (2, "II"), ("phase 3", "III"),
                                                 ("Phase_II", "II"), ("iii", "III"), ("toy", "toy")])
def test_phase_aliases(given: str | int, expected: str) -> None:
    assert parse_phase(given) == expected


def test_unknown_phase_and_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown TOP phase"):
        load_top(tmp_path, "IV")
    with pytest.raises(ConfigError, match="unknown TOP task"):
        load_top(tmp_path, "I", task="approval")


def test_missing_files_are_named_with_their_source(tmp_path: Path) -> None:
    data_dir = _dataset(tmp_path, stem="phase_II")
    (data_dir / "TOP_clinical_trial_outcome" / "phase_II_train.csv").unlink()
    with pytest.raises(MissingDataError) as err:
        load_top(data_dir, "2")
    message = str(err.value)
    assert str(data_dir / "TOP_clinical_trial_outcome" / "phase_II_train.csv") in message
    assert "phase_II_valid.csv" not in message  # only what is missing
    assert "futianfan/clinical-trial-outcome-prediction" in message and "data/" in message


def test_indication_task_explains_missing_files_and_loads_supplied_ones(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="never published"):
        load_top(tmp_path, task="indication")
    splits = load_top(_dataset(tmp_path, stem="indication"), task="indication")
    assert splits.sizes() == {"train": 2, "valid": 1, "test": 1}
    assert "indication" in splits.description


def test_toy_files(tmp_path: Path) -> None:
    splits = load_top(_dataset(tmp_path, stem="toy"), "toy")
    assert splits.train[0].meta["file"] == "toy_train.csv"


def test_unparsable_smiles_is_counted_or_raised(tmp_path: Path) -> None:
    data_dir = _dataset(tmp_path, train=[_row(), _row(nctid="NCT00000002", smiless="['CCO', 'C1CC(']")])
    splits = load_top(data_dir, "I")
    assert splits.train[1].inputs["drugs"] == ["CCO"]
    assert splits.skips.counts["unparsable SMILES"] == 1
    assert splits.skips.examples["unparsable SMILES"] == ["phase_I_train.csv row 2: 'C1CC('"]
    err = _error(data_dir, strict=True)
    assert (Path(err.file).name, err.row, err.field) == ("phase_I_train.csv", 2, "smiless")
    assert "phase_I_train.csv, row 2, field 'smiless'" in str(err) and "C1CC(" in str(err)


def test_unknown_icd_code_is_counted_or_raised_and_newer_codes_are_kept(tmp_path: Path) -> None:
    codes = "[\"['D02.20', 'Z58.6', 'F32.A', 'not a code']\"]"
    data_dir = _dataset(tmp_path, valid=[_row(icdcodes=codes)])
    splits = load_top(data_dir, "I")
    assert splits.valid[0].inputs["icd_codes"] == ["D02.20", "F32.A"]
    assert splits.skips.counts["unknown ICD-10 code"] == 2
    assert splits.skips.counts["ICD code not in tables, kept under known ancestor"] == 1
    err = _error(data_dir, strict=True)
    assert "phase_I_valid.csv, row 1, field 'icdcodes'" in str(err) and "Z58.6" in str(err)


def test_missing_modalities_are_reported_not_dropped(tmp_path: Path) -> None:
    data_dir = _dataset(tmp_path, test=[_row(smiless="[]", criteria="", icdcodes="[]")])
    splits = load_top(data_dir, "I")
    record = splits.test[0]
    assert not record.has("drugs") and not record.has("inclusion") and not record.has("icd_codes")
    for key in ("drugs", "icd_codes", "inclusion", "exclusion"):
        assert splits.skips.counts[f"missing modality: {key}"] == 1
    assert splits.skips.examples["missing modality: drugs"] == ["phase_I_test.csv row 1 (NCT01187615)"]


@pytest.mark.parametrize(
    ("overrides", "field", "needle"),
    [
        ({"label": "2"}, "label", "0 or 1"),
        ({"label": "success"}, "label", "0 or 1"),
        ({"label": ""}, "label", "0 or 1"),
        ({"nctid": "NCT123"}, "nctid", "not an NCT id"),
        ({"diseases": "['cancer'"}, "diseases", "not a python list literal"),
        ({"drugs": "{'a': 1}"}, "drugs", "list of strings"),
        ({"smiless": "['CCO', 3]"}, "smiless", "list of strings"),
        ({"icdcodes": "[\"['D02.20'\"]"}, "icdcodes", "not a python list literal"),  # inner list broken
        ({"icdcodes": "['D02.20'"}, "icdcodes", "not a python list literal"),  # outer list broken
    ],
)
def test_bad_cells_name_file_row_and_field(tmp_path: Path, overrides: dict[str, str], field: str,
                                           needle: str) -> None:
    data_dir = _dataset(tmp_path, test=[_row(nctid="NCT04000001"), _row(**overrides)])
    err = _error(data_dir)
    assert (Path(err.file).name, err.row, err.field) == ("phase_I_test.csv", 2, field)
    assert f"phase_I_test.csv, row 2, field '{field}'" in str(err) and needle in str(err)


def test_repeated_nct_id(tmp_path: Path) -> None:
    err = _error(_dataset(tmp_path, valid=[_row(nctid="NCT00000001"), _row(nctid="NCT00000001")]))
    assert "phase_I_valid.csv, row 2, field 'nctid'" in str(err) and "repeats row 1" in str(err)


def test_missing_column(tmp_path: Path) -> None:
    data_dir = _dataset(tmp_path)
    _write(data_dir / "TOP_clinical_trial_outcome" / "phase_I_valid.csv", [_row()],
           columns=tuple(c for c in COLUMNS if c != "label"))
    err = _error(data_dir)
    assert "phase_I_valid.csv, field 'label'" in str(err) and "header" in str(err)


def test_malformed_csv_names_the_row(tmp_path: Path) -> None:
    data_dir = _dataset(tmp_path)
    path = data_dir / "TOP_clinical_trial_outcome" / "phase_I_train.csv"
    with open(path, "a", encoding="utf-8") as handle:  # row 3: one field too many
        handle.write("NCT00000003,completed,,1,phase 1,[],[],[],[],text,EXTRA\n")
    err = _error(data_dir)
    # Rows 1 and 2 hold multi-line criteria: the row count is in records, not in lines.
    assert (Path(err.file).name, err.row) == ("phase_I_train.csv", 3)
    assert "phase_I_train.csv, row 3" in str(err) and "malformed CSV" in str(err)


def test_unterminated_quote(tmp_path: Path) -> None:
    data_dir = _dataset(tmp_path)
    path = data_dir / "TOP_clinical_trial_outcome" / "phase_I_test.csv"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('NCT00000003,completed,,1,phase 1,[],[],[],[],"never closed\n')
    err = _error(data_dir)
    assert (Path(err.file).name, err.row) == ("phase_I_test.csv", 2)


def _real_data_dir() -> Path:
    env = os.environ.get("POLYMODAL_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.mark.slow
def test_real_phase_one() -> None:
    data_dir = _real_data_dir()
    if not (data_dir / "TOP_clinical_trial_outcome" / "phase_I_train.csv").exists():
        pytest.skip(f"TOP data not found under {data_dir}")
    splits = load_top(data_dir, "I")
    assert splits.sizes() == {"train": 1044, "valid": 117, "test": 627}
    means = {name: statistics.mean(r.target for r in records) for name, records in splits.items()}
    assert means == pytest.approx({"train": 592 / 1044, "valid": 67 / 117, "test": 347 / 627})
    for _, records in splits.items():
        assert all(set(r.inputs) == set(INPUT_KEYS) for r in records)
        assert all(r.has("drugs") and r.has("icd_codes") and r.has("inclusion") for r in records)
    print("\nTOP phase I skips:", {reason: n for reason, n in sorted(splits.skips.counts.items())})
