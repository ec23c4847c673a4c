"""TCGA survival cohorts in the MCAT format, with UMPSNet's clinical metadata and 5-fold splits.

Files (``DATA_DIR/tcga_survival_mcat_umpsnet``; see ``SOURCES.md`` there):

* ``tcga_<cohort>_all_clean.csv.gz``: one row per *slide*: ``case_id``, ``survival_months``,
  ``censorship`` (1 = censored, MCAT's convention), ``age``, ``is_female`` and genomic columns
  ``<GENE>_rnaseq`` (z-scores with extreme outliers) and ``<GENE>_cnv`` (-2..2). Any cohort file in
  this format is read the same way, so a new cohort needs no code.
* ``signatures.csv``: six functional gene families (MCAT's genomic groups), one column each.
* ``status_all_umpsnet.json``: ``case_id -> {demographic, diagnosis, treatments, dataset}``.
* ``splits_umpsnet/splits_<k>.csv``: columns ``train`` and ``val``; ``val`` is the held-out *test*
  fold (as in MCAT), so any validation split must come from inside ``train``.

Traps handled here (measured on the files): several rows per patient (one per slide) are
deduplicated by ``case_id`` after checking that their outcome and genomic values agree; column sets
differ between cohorts (LUAD has no ``train`` column and an extra index column; gene sets differ by
a few genes), so the genomic columns a model uses are chosen on the training cohorts and a cohort
lacking one is an error naming the file and the columns; a missing CSV age is filled from the JSON
metadata; a patient without metadata, or with a missing or negative survival time, is a counted skip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.data.schema import Record
from polymodal.data.splits import SkipReport
from polymodal.data.tables import read_csv, read_json
from polymodal.errors import DataError, MissingDataError

__all__ = [
    "FOLDER",
    "GENOMIC_SUFFIXES",
    "TcgaCohorts",
    "check_genomic_columns",
    "cohort_file",
    "genomic_columns",
    "load_cohorts",
    "read_cohort",
    "read_folds",
    "read_metadata",
    "read_signatures",
]

FOLDER = "tcga_survival_mcat_umpsnet"
GENOMIC_SUFFIXES = ("_rnaseq", "_cnv", "_mut")
SIGNATURES = "signatures.csv"
METADATA = "status_all_umpsnet.json"
SPLITS = "splits_umpsnet"
# The numeric columns of a row that must agree between the slides of one patient.
OUTCOME = ("survival_months", "censorship")


def _folder(data_dir: str | Path) -> Path:
    data_dir = Path(data_dir)
    return data_dir if (data_dir / SIGNATURES).exists() or data_dir.name == FOLDER else data_dir / FOLDER


def cohort_file(data_dir: str | Path, cohort: str) -> Path:
    """``tcga_<cohort>_all_clean.csv[.gz]`` in the TCGA folder of ``data_dir`` (or ``data_dir`` itself)."""
    folder = _folder(data_dir)
    for name in (f"tcga_{cohort.lower()}_all_clean.csv.gz", f"tcga_{cohort.lower()}_all_clean.csv"):
        if (folder / name).exists():
            return folder / name
    found = sorted(p.name for p in folder.glob("tcga_*_all_clean.csv*")) if folder.exists() else []
    raise MissingDataError(
        f"no cohort file tcga_{cohort.lower()}_all_clean.csv[.gz] in {folder} (found: {', '.join(found) or 'none'}); "
        "the MCAT cohort files come from github.com/mahmoodlab/MCAT (datasets_csv_sig)"
    )


def _require(path: Path) -> Path:
    if not path.exists():
        raise MissingDataError(f"{path} is missing; see SOURCES.md for where the TCGA files come from")
    return path


def read_signatures(path: str | Path) -> dict[str, list[str]]:
    """Family name -> its genes, in file order, without blanks or repeats (MCAT's six groups)."""
    frame = read_csv(_require(Path(path)), dtype=str, require_rows=True)
    groups = {str(c): list(dict.fromkeys(g.strip() for g in frame[c].dropna() if g.strip())) for c in frame.columns}
    empty = [c for c, g in groups.items() if not g]
    if empty:
        raise DataError(f"gene family {empty[0]!r} lists no genes", file=path, field=empty[0])
    return groups


def read_metadata(path: str | Path) -> dict[str, dict[str, Any]]:
    """``case_id -> {demographic, diagnosis, treatments, dataset}`` from UMPSNet's status file."""
    data = read_json(_require(Path(path)))
    if not isinstance(data, dict):
        raise DataError("expected a JSON object keyed by case_id", file=path)
    for case, entry in data.items():
        if not isinstance(entry, dict):
            raise DataError(f"entry of {case!r} is not an object", file=path, field=case)
    return data


def genomic_columns(columns: Sequence[str], groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Family -> the genomic columns of ``columns`` whose gene is in it (MCAT's ``apply_sig`` rule).

    A gene in several families is used by each of them, as in MCAT.
    """
    present = set(columns)
    return {
        family: [f"{g}{s}" for g in genes for s in GENOMIC_SUFFIXES if f"{g}{s}" in present]
        for family, genes in groups.items()
    }


def check_genomic_columns(table: pd.DataFrame, columns: Sequence[str], file: str | Path) -> None:
    """Raise a DataError naming the file and the genomic columns a model needs that ``table`` lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"{len(missing)} genomic column(s) the model was trained on are missing: {shown}",
                        file=file, field=missing[0])


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_cohort(
    path: str | Path, metadata: Mapping[str, Mapping[str, Any]], skips: SkipReport | None = None
) -> tuple[list[Record], pd.DataFrame]:
    """Read one MCAT-format cohort file into one Record per patient.

    Args:
        path: the cohort CSV (gzipped or not).
        metadata: UMPSNet's clinical metadata by case_id.
        skips: where skipped patients are counted (a new report if None).

    Returns:
        ``(records, genomics)``: Records with ``inputs = {"genomics": case_id, "metadata": dict}``,
        ``target = (months, event)`` and ``meta = {"cohort", "file", "row"}``; and the (N, G) float
        DataFrame of genomic columns indexed by case_id (kept apart so a Record stays small).

    Raises:
        DataError: a missing required column, a non-numeric genomic value, a censorship outside
            {0, 1}, or slides of one patient that disagree (file, row and field named); an empty,
            header-only, truncated or damaged (gzip) file, or one cut mid-row (file and row named).
    """
    path = Path(path)
    skips = skips if skips is not None else SkipReport()
    frame = read_csv(_require(path), low_memory=False, require_rows=True)
    frame = frame.loc[:, [c for c in frame.columns if not str(c).startswith("Unnamed")]]
    for col in ("case_id", *OUTCOME):
        if col not in frame.columns:
            raise DataError("required column is missing", file=path, field=col)
    gene_cols = [c for c in frame.columns if str(c).endswith(GENOMIC_SUFFIXES)]
    if not gene_cols:
        raise DataError("no genomic columns (<GENE>_rnaseq / _cnv / _mut)", file=path)
    genes = frame[gene_cols].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(genes.to_numpy(dtype=np.float64))
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise DataError(f"non-numeric or missing value {frame.iloc[r][gene_cols[c]]!r}", file=path, row=r + 1,
                        field=gene_cols[c])
    cohort_default = path.name.split("_")[1].upper() if path.name.startswith("tcga_") else path.stem
    records: list[Record] = []
    first_row: dict[str, int] = {}
    small = frame[[c for c in ("case_id", *OUTCOME, "age", "oncotree_code") if c in frame.columns]]
    for i, values in enumerate(small.to_dict("records")):
        case, line = str(values["case_id"]), i + 1
        if case in first_row:  # another slide of a patient already read: it must agree
            j = first_row[case]
            for col in OUTCOME:
                a, b = _number(frame.iloc[j][col]), _number(values[col])
                if not (a == b or (math.isnan(a) and math.isnan(b))):
                    raise DataError(f"slides of {case} disagree ({a} on row {j + 1} vs {b})", file=path, row=line,
                                    field=col)
            if not np.array_equal(genes.iloc[j].to_numpy(), genes.iloc[i].to_numpy()):
                diff = gene_cols[int(np.flatnonzero(genes.iloc[j].to_numpy() != genes.iloc[i].to_numpy())[0])]
                raise DataError(f"slides of {case} disagree with row {j + 1}", file=path, row=line, field=diff)
            continue
        first_row[case] = i
        months, censored = _number(values["survival_months"]), _number(values["censorship"])
        if not math.isfinite(months):
            skips.add("missing survival time", f"{path.name} row {line} ({case})")
            continue
        if months < 0:
            skips.add("negative survival time", f"{path.name} row {line} ({case}): {months}")
            continue
        if censored not in (0.0, 1.0):
            raise DataError(f"censorship must be 0 or 1, got {values['censorship']!r}", file=path, row=line,
                            field="censorship")
        entry = metadata.get(case)
        if entry is None:
            skips.add("no clinical metadata", f"{path.name} row {line} ({case})")
            continue
        meta = dict(entry)
        demographic = dict(meta.get("demographic") or {})
        age = _number(values.get("age"))
        if math.isfinite(age):  # the CSV's age wins; the JSON fills the gaps (some LUAD ages)
            demographic["age"] = age
        meta["demographic"] = demographic
        cohort = str(meta.get("dataset") or values.get("oncotree_code") or cohort_default).upper()
        meta["dataset"] = cohort
        records.append(
            Record(
                id=case,
                inputs={"genomics": case, "metadata": meta},
                target=(months, 1.0 - censored),  # event = 1 - censorship
                meta={"cohort": cohort, "file": path.name, "row": line},
            )
        )
    kept = [first_row[r.id] for r in records]
    table = genes.iloc[kept].astype(np.float32)
    table.index = pd.Index([r.id for r in records], name="case_id")
    return records, table


def read_folds(split_dir: str | Path, n_folds: int = 5) -> list[tuple[list[str], list[str]]]:
    """``[(train case_ids, test case_ids)]`` per fold from ``splits_<k>.csv`` (``val`` is the test fold)."""
    folds = []
    for k in range(n_folds):
        path = _require(Path(split_dir) / f"splits_{k}.csv")
        frame = read_csv(path, dtype=str, require_rows=True)
        for col in ("train", "val"):
            if col not in frame.columns:
                raise DataError("split column is missing", file=path, field=col)
        train, test = (list(frame[c].dropna().str.strip()) for c in ("train", "val"))
        overlap = sorted(set(train) & set(test))
        if overlap:
            raise DataError(f"{len(overlap)} case(s) in both train and val, e.g. {overlap[0]}", file=path, field="val")
        folds.append((train, test))
    return folds


@dataclass
class TcgaCohorts:
    """Patients of several cohorts, their genomic tables, the gene families and the folds."""

    records: list[Record]
    genomics: pd.DataFrame  # (N, G) float32 by case_id; columns present in every cohort read
    groups: dict[str, list[str]]  # family -> genomic columns (subset of ``genomics.columns``)
    folds: list[tuple[list[str], list[str]]]
    skips: SkipReport = field(default_factory=SkipReport)
    files: dict[str, str] = field(default_factory=dict)

    def cohorts(self) -> list[str]:
        return sorted({str(r.meta["cohort"]) for r in self.records})


def load_cohorts(data_dir: str | Path, cohorts: Sequence[str], *, n_folds: int = 5,
                 columns_also_in: Sequence[str] = ()) -> TcgaCohorts:
    """Read the cohorts, keep the genomic columns they all share, and the UMPSNet folds.

    Cases of the split files outside these cohorts (the splits cover five cohorts) are ignored;
    patients of these cohorts missing from every split are reported as skips. ``columns_also_in``
    names cohorts whose files must also have every kept column (only their header is read), so a
    model can later score them (zero-shot) without a missing gene.
    """
    folder = _folder(data_dir)
    metadata = read_metadata(folder / METADATA)
    signatures = read_signatures(folder / SIGNATURES)
    skips = SkipReport()
    records: list[Record] = []
    tables = []
    files = {}
    for cohort in cohorts:
        path = cohort_file(folder, cohort)
        recs, table = read_cohort(path, metadata, skips)
        records += recs
        tables.append(table)
        files[cohort.upper()] = str(path)
    shared = [c for c in tables[0].columns if all(c in t.columns for t in tables[1:])]
    for other in columns_also_in:
        header = set(read_csv(cohort_file(folder, other), nrows=0).columns)
        shared = [c for c in shared if c in header]
    genomics = pd.concat([t[shared] for t in tables])
    groups = genomic_columns(shared, signatures)
    folds = read_folds(folder / SPLITS, n_folds)
    ids = {r.id for r in records}
    in_splits = {c for tr, te in folds for c in (*tr, *te)}
    for r in records:
        if r.id not in in_splits:
            skips.add("in no split file", f"{r.meta['file']} row {r.meta['row']} ({r.id})")
    folds = [([c for c in tr if c in ids], [c for c in te if c in ids]) for tr, te in folds]
    return TcgaCohorts(records, genomics, groups, folds, skips, files)
