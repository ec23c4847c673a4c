"""The TCGA (MCAT / UMPSNet format) adapter: the known traps, bad input, and the real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.data.sources.tcga import (
    check_genomic_columns,
    genomic_columns,
    load_cohorts,
    read_cohort,
    read_folds,
    read_metadata,
    read_signatures,
)
from polymodal.data.splits import SkipReport
from polymodal.encoders.genomics import GenomicScaler
from polymodal.encoders.templates import cancer_text, render_templates
from polymodal.errors import DataError, MissingDataError
from tests.tcga_synthetic import write_tcga

DATA = Path(os.environ.get("POLYMODAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_tcga(tmp_path, n=30, duplicate_slides=3)


def _rewrite(folder: Path, cohort: str, edit) -> Path:  # type: ignore[no-untyped-def]
    path = folder / f"tcga_{cohort}_all_clean.csv.gz"
    frame = pd.read_csv(path, index_col=0)
    edit(frame)
    frame.to_csv(path, compression="gzip")
    return path


def test_slides_are_deduplicated_and_json_fills_missing_age(folder: Path) -> None:
    data = load_cohorts(folder.parent, ["AAA", "BBB"], n_folds=2)
    ids = [r.id for r in data.records]
    assert len(ids) == len(set(ids)) == 60  # 3 duplicate slides per cohort dropped
    bbb0 = next(r for r in data.records if r.id == "TCGA-BB-0000")
    assert bbb0.inputs["metadata"]["demographic"]["age"] == 60  # CSV age missing -> JSON age
    assert data.genomics.shape[0] == 60 and "train" not in data.genomics.columns
    # event = 1 - censorship (MCAT's convention)
    frame = pd.read_csv(folder / "tcga_aaa_all_clean.csv.gz", index_col=0).drop_duplicates("case_id")
    rec = {r.id: r for r in data.records}
    assert all(rec[c].target[1] == 1 - s for c, s in zip(frame["case_id"], frame["censorship"], strict=True))
    # the split files name a case of another cohort: ignored, not an error
    assert all("TCGA-ZZ-9999" not in tr for tr, _ in data.folds)


def test_gene_groups_follow_signatures_and_shared_columns(folder: Path) -> None:
    _rewrite(folder, "bbb", lambda f: f.drop(columns=["CY2_rnaseq"], inplace=True))
    data = load_cohorts(folder.parent, ["AAA", "BBB"], n_folds=2)
    assert "CY2_rnaseq" not in data.genomics.columns  # only the columns every cohort has
    assert data.groups["Oncogenes"][:2] == ["ON1_rnaseq", "ON2_rnaseq"]
    assert "TS1_rnaseq" in data.groups["Oncogenes"] and "TS1_rnaseq" in data.groups["Tumor Suppressor Genes"]
    assert data.groups["Cytokines and Growth Factors"] == ["CY1_rnaseq", "CY1_cnv", "CY2_cnv"]
    assert genomic_columns(["A_rnaseq", "A_cnv", "B_mut"], {"f": ["A", "B", "C"]}) == {"f": ["A_rnaseq", "A_cnv",
                                                                                              "B_mut"]}


def test_columns_can_be_restricted_to_a_cohort_scored_later(folder: Path) -> None:
    _rewrite(folder, "bbb", lambda f: f.drop(columns=["CD1_cnv"], inplace=True))
    alone = load_cohorts(folder.parent, ["AAA"], n_folds=2)
    both = load_cohorts(folder.parent, ["AAA"], n_folds=2, columns_also_in=["BBB"])
    assert "CD1_cnv" in alone.genomics.columns and "CD1_cnv" not in both.genomics.columns
    assert {r.meta["cohort"] for r in both.records} == {"AAA"}  # BBB's patients are not read


def test_missing_genes_name_the_file_and_columns(folder: Path) -> None:
    table = pd.DataFrame({"ON1_rnaseq": [0.0]})
    with pytest.raises(DataError, match=r"new\.csv.*2 genomic column.*ON2_rnaseq, TS1_cnv") as err:
        check_genomic_columns(table, ["ON1_rnaseq", "ON2_rnaseq", "TS1_cnv"], "new.csv")
    assert err.value.field == "ON2_rnaseq"


def test_bad_survival_times_and_missing_metadata_are_counted_skips(folder: Path) -> None:
    def edit(f: pd.DataFrame) -> None:
        f.loc[5, "survival_months"] = -1.0
        f.loc[6, "survival_months"] = np.nan

    path = _rewrite(folder, "aaa", edit)
    meta = read_metadata(folder / "status_all_umpsnet.json")
    del meta["TCGA-AA-0007"]
    skips = SkipReport()
    records, table = read_cohort(path, meta, skips)
    assert len(records) == 27 and table.shape[0] == 27
    assert skips.counts == {"negative survival time": 1, "missing survival time": 1, "no clinical metadata": 1}
    assert "row 6" in skips.examples["negative survival time"][0]


@pytest.mark.parametrize(
    ("edit", "row", "field"),
    [
        (lambda f: f.__setitem__("censorship", f["censorship"].where(f.index != 4, 2)), 5, "censorship"),
        (lambda f: f.__setitem__("TS2_rnaseq", f["TS2_rnaseq"].astype(object).where(f.index != 8, "abc")), 9,
         "TS2_rnaseq"),
    ],
)
def test_bad_values_name_file_row_and_field(folder: Path, edit, row: int, field: str) -> None:  # type: ignore[no-untyped-def]
    path = _rewrite(folder, "aaa", edit)
    with pytest.raises(DataError) as err:
        read_cohort(path, read_metadata(folder / "status_all_umpsnet.json"))
    assert (err.value.file, err.value.row, err.value.field) == (str(path), row, field)
    assert f"tcga_aaa_all_clean.csv.gz, row {row}, field '{field}'" in str(err.value)


def test_disagreeing_slides_of_one_patient_are_an_error(folder: Path) -> None:
    path = _rewrite(folder, "aaa", lambda f: f.__setitem__("survival_months",
                                                           f["survival_months"].where(f.index != 31, 999.0)))
    with pytest.raises(DataError, match="slides of TCGA-AA-0001 disagree") as err:
        read_cohort(path, read_metadata(folder / "status_all_umpsnet.json"))
    assert (err.value.row, err.value.field) == (32, "survival_months")


def test_missing_files_and_columns(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="tcga_ccc_all_clean"):
        load_cohorts(folder.parent, ["CCC"], n_folds=2)
    path = _rewrite(folder, "aaa", lambda f: f.drop(columns=["censorship"], inplace=True))
    with pytest.raises(DataError, match="field 'censorship'"):
        read_cohort(path, {})
    split = folder / "splits_umpsnet" / "splits_0.csv"
    frame = pd.read_csv(split, index_col=0)
    frame.loc[0, "val"] = frame.loc[0, "train"]
    frame.to_csv(split)
    with pytest.raises(DataError, match=r"splits_0\.csv, field 'val': 1 case"):
        read_folds(folder / "splits_umpsnet", 2)
    bad = tmp_path / "sig.csv"
    bad.write_text("A,B\nX,\n")
    with pytest.raises(DataError, match="'B' lists no genes"):
        read_signatures(bad)


def test_genomic_scaler_is_fitted_on_training_rows_and_bounds_outliers() -> None:
    train = pd.DataFrame({"g": [0.0, 1.0, -1.0, 14000.0], "h": [1.0, 2.0, 3.0, 4.0]})
    scaler = GenomicScaler(clip=3.0).fit(train)
    out = scaler.transform(pd.DataFrame({"h": [2.5, 100.0], "g": [0.5, 1e6], "extra": [0, 0]}))
    assert out.shape == (2, 2) and np.abs(out).max() <= 3.0 and np.isfinite(out).all()
    assert out[1, 1] == 3.0 and out[1, 0] > out[0, 0]  # outliers clipped; columns in the fitted order


def test_templates_leave_out_unreported_values() -> None:
    meta = json.loads(json.dumps({
        "demographic": {"race": "not reported", "gender": "female", "ethnicity": "not hispanic or latino", "age": 66},
        "diagnosis": {"primary_diagnosis": "Adenocarcinoma, NOS", "ajcc_pathologic_stage": "Stage IIB",
                      "ajcc_pathologic_t": "T2", "ajcc_pathologic_n": "NX", "ajcc_pathologic_m": "not reported"},
        "treatments": {"Pharmaceutical Therapy": "yes", "Radiation Therapy": "not reported"},
        "dataset": "LUAD",
    }))
    t = render_templates(meta)
    assert t["demographic"] == "A 66-year-old female patient, not hispanic or latino."
    assert t["cancer"] == "The cancer type is lung adenocarcinoma (LUAD)."
    assert t["diagnosis"] == "Primary diagnosis: adenocarcinoma, nos. Pathologic staging: Stage IIB, T2, NX."
    assert t["treatment"] == "Treatments: pharmaceutical therapy: yes."
    assert render_templates({})["demographic"] == "Patient demographics: not reported."
    assert cancer_text("XYZ") == "The cancer type is XYZ."


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "tcga_survival_mcat_umpsnet").exists(), reason="TCGA data not available")
def test_real_blca_luad_files() -> None:
    data = load_cohorts(DATA, ["BLCA", "LUAD"])
    cohorts = [r.meta["cohort"] for r in data.records]
    assert cohorts.count("BLCA") == 373 and cohorts.count("LUAD") == 453
    assert not data.skips.counts.get("no clinical metadata")
    assert len(data.folds) == 5 and all(len(te) > 100 for _, te in data.folds)
    assert sorted(c for _, te in data.folds for c in te) == sorted({c for _, te in data.folds for c in te})
    assert all(np.isfinite(float(r.inputs["metadata"]["demographic"]["age"])) for r in data.records)
    assert data.genomics.abs().to_numpy().max() > 1000  # the outliers the scaler must handle
    assert len(data.groups) == 6 and all(data.groups.values())
