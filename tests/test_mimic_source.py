"""MIMIC ETL (SafeDrug steps) and drug vocabularies on synthetic PhysioNet-layout directories."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.data.sources.drug_vocab import load_drug_vocab, normalise_ndc, read_ndc2rxcui
from polymodal.data.sources.mimic import build_cohort, read_mimic3, read_mimic4
from polymodal.errors import DataError, MissingDataError
from tests.mimic_synthetic import write_drug_tables, write_mimic3, write_mimic4


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    write_drug_tables(tmp_path)
    write_mimic3(tmp_path / "mimic3", n_patients=20)
    write_mimic4(tmp_path / "mimic-iv-2.2", n_patients=20)
    return tmp_path


def test_drug_vocab_maps_and_ddi(data_dir: Path) -> None:
    vocab = load_drug_vocab(data_dir)
    assert vocab.ndc_to_atc["00001000002"] == ["C09AA03"]
    assert vocab.gsn_to_atc["000104"] == ["A02BC01"]
    adj = vocab.ddi_matrix(["A02B", "C09A", "C10A"])
    assert adj.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert vocab.atc3_text("C10A").startswith("C10A lipid modifying agents, plain; lipid modifying agents")
    assert "simvastatin" in vocab.atc3_text("C10A")
    assert normalise_ndc("0") is None and normalise_ndc(None) is None and normalise_ndc("123") == "00000000123"


def test_ndc2rxcui_is_a_literal_not_code(tmp_path: Path) -> None:
    path = tmp_path / "ndc2RXCUI.txt"
    path.write_text("{'00001': u'42'}")
    assert read_ndc2rxcui(path) == {"00001": "42"}
    path.write_text("__import__('os').system('true')")
    with pytest.raises(DataError, match=r"ndc2RXCUI\.txt"):
        read_ndc2rxcui(path)


def test_mimic3_cohorts_follow_safedrug_steps(data_dir: Path) -> None:
    vocab, tables = load_drug_vocab(data_dir), read_mimic3(data_dir / "mimic3")
    sd = build_cohort(tables, vocab, "safedrug")
    every = build_cohort(tables, vocab, "all-admissions")
    # every fourth patient has one admission: out of the SafeDrug cohort, in the other. (SafeDrug
    # filters on >= 2 admissions *before* the procedure join, so a patient may end with one visit.)
    single = {1000 + p for p in range(20) if p % 4 == 3}
    assert not single & set(sd.patients) and single <= set(every.patients)
    assert set(sd.patients) < set(every.patients)
    assert all(v.procedures for v in sd.visits)  # SafeDrug's inner join needs procedures
    # the planted co-prescription is there, and Omeprazole was mapped through its GSN
    for visit in every.visits:
        assert ("C09A" in visit.medications) == ("D9:4011" in visit.diagnoses)
    steps = {s["step"]: s for s in sd.report.steps}
    assert steps["patients with >= 2 admissions"]["patients_dropped"] == 5
    assert "by GSN" in steps["map NDC -> ATC3"]["note"]
    assert sd.code_text["D9:4011"] == "Benign essential hypertension"
    times = [v.admittime for v in next(iter(sd.patients.values()))]
    assert times == sorted(times)


def test_mimic4_reads_both_icd_versions(data_dir: Path) -> None:
    vocab, tables = load_drug_vocab(data_dir), read_mimic4(data_dir)  # finds mimic-iv-*/hosp
    cohort = build_cohort(tables, vocab, "all-admissions")
    codes = {c for v in cohort.visits for c in v.diagnoses}
    assert "D10:I10" in codes and "D9:4011" in codes
    assert cohort.code_text["D10:I10"] == "Essential (primary) hypertension"
    assert cohort.source == "MIMIC-IV"


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    frame = pd.read_csv(path, dtype=str)
    edit(frame)
    frame.to_csv(path, index=False)


def test_bad_inputs_are_counted_or_named(data_dir: Path) -> None:
    rx = data_dir / "mimic3" / "PRESCRIPTIONS.csv"

    def damage(frame: pd.DataFrame) -> None:
        frame.loc[0, "NDC"] = np.nan  # no NDC
        frame.loc[1, "NDC"] = "0"  # SafeDrug's dropped NDC
        frame.loc[2, ["NDC", "GSN", "DRUG"]] = ["55555555555", "999999", "Mystery drug"]  # unmappable

    _rewrite(rx, damage)
    vocab = load_drug_vocab(data_dir)
    cohort = build_cohort(read_mimic3(data_dir / "mimic3"), vocab, "all-admissions")
    skips = cohort.report.skips
    assert skips["prescriptions: no NDC"]["count"] == 1
    assert skips["prescriptions: NDC '0' (SafeDrug drops these)"]["count"] == 1
    unmapped = skips["prescriptions: NDC not mapped to ATC (no NDC, GSN or name match)"]
    assert unmapped["count"] == 1 and "55555555555" in unmapped["examples"][0]


def test_visit_without_diagnoses_is_counted(data_dir: Path) -> None:
    diag = data_dir / "mimic3" / "DIAGNOSES_ICD.csv"
    first = pd.read_csv(diag, dtype=str)["HADM_ID"].iloc[0]
    _rewrite(diag, lambda f: f.drop(f.index[f["HADM_ID"] == first], inplace=True))
    cohort = build_cohort(read_mimic3(data_dir / "mimic3"), load_drug_vocab(data_dir), "all-admissions")
    entry = cohort.report.skips["visits: medications but no diagnoses"]
    assert entry["count"] == 1 and entry["examples"] == [first]


def test_malformed_date_names_file_row_column(data_dir: Path) -> None:
    _rewrite(data_dir / "mimic3" / "ADMISSIONS.csv", lambda f: f.__setitem__("ADMITTIME", f["ADMITTIME"].where(
        f.index != 3, "2150-13-45 99:00:00")))
    with pytest.raises(DataError, match=r"ADMISSIONS.csv, row 4, field 'admittime': malformed date"):
        read_mimic3(data_dir / "mimic3")


def test_unknown_icd_version_is_counted(data_dir: Path) -> None:
    import gzip

    path = data_dir / "mimic-iv-2.2" / "hosp" / "diagnoses_icd.csv.gz"
    frame = pd.read_csv(path, dtype=str)
    frame.loc[0, "icd_version"] = "11"
    with gzip.open(path, "wt") as fh:
        frame.to_csv(fh, index=False)
    tables = read_mimic4(data_dir / "mimic-iv-2.2")
    entry = tables.report.skips["diagnoses_icd: unknown icd_version (not 9 or 10)"]
    assert entry["count"] == 1 and "row 1" in entry["examples"][0]


def test_missing_table_and_column(data_dir: Path) -> None:
    (data_dir / "mimic3" / "PROCEDURES_ICD.csv").unlink()
    with pytest.raises(MissingDataError, match="PROCEDURES_ICD"):
        read_mimic3(data_dir / "mimic3")
    write_mimic3(data_dir / "m3b", n_patients=4)
    _rewrite(data_dir / "m3b" / "PRESCRIPTIONS.csv", lambda f: f.drop(columns="NDC", inplace=True))
    with pytest.raises(DataError, match=r"PRESCRIPTIONS\.csv, field 'ndc': missing column"):
        read_mimic3(data_dir / "m3b")


DATA = Path(os.environ.get("POLYMODAL_DATA", "/work/shared/data"))


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "mimic_iii_demo_1.4").is_dir(), reason="MIMIC-III demo not present")
def test_demo_counts() -> None:
    """The demo numbers issue #3 quotes: 129 admissions, 122 with prescriptions, 13 multi-visit patients."""
    vocab, tables = load_drug_vocab(DATA), read_mimic3(DATA / "mimic_iii_demo_1.4")
    sd = build_cohort(tables, vocab, "safedrug")
    steps = {s["step"]: s for s in sd.report.steps}
    assert steps["MIMIC-III admissions"]["visits_kept"] == 129
    assert steps["with admission ids, deduplicated"]["visits_kept"] == 122
    assert steps["patients with >= 2 admissions"]["patients_kept"] == 13
    assert steps["patients with >= 2 admissions"]["visits_kept"] == 41
    assert len(sd.patients) == 13 and len(sd.visits) == 38
