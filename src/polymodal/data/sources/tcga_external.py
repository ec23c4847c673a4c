"""Read an external TCGA-like cohort file for a trained model: harmonise, check coverage, impute, validate.

``read_external_cohort`` is what ``polymodal eval RUN --cohort NAME`` and ``predict`` call for a TCGA
recipe (umpsnet first) instead of failing on the first training column a file lacks:

    stats = TrainingStats.load(run / "fold_0" / "training_stats.json")
    cohort = read_external_cohort(path, read_metadata(folder / METADATA), stats, min_coverage=0.25)
    cohort.records, cohort.genomics           # as read_cohort returns them, every training column present
    cohort.rows_missing                       # case_id -> True: score that patient with genomics masked
    cohort.prepared.lines()                   # renames, coverage, imputation: for the report

The file is harmonised and imputed as a table first (:func:`polymodal.data.external.prepare_cohort`),
then read by the same :func:`polymodal.data.sources.tcga.read_cohort` as a training file, so every
check of that reader (outcomes, slides of one patient agreeing, numeric values) still applies and
its errors name the original file and row. (The harmonised table is written to a temporary file
of the same name for that reader; a ``read_cohort`` that accepts a DataFrame would remove that step.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.data.coverage import DEFAULT_MIN_COVERAGE
from polymodal.data.external import PreparedCohort, prepare_cohort
from polymodal.data.harmonise import TCGA, AliasTable, NamingConvention
from polymodal.data.schema import Record
from polymodal.data.sources.tcga import read_cohort
from polymodal.data.splits import SkipReport
from polymodal.data.training_stats import Statistic, TrainingStats

__all__ = ["ExternalCohort", "read_external_cohort"]


@dataclass
class ExternalCohort:
    """An external cohort ready for a trained TCGA model.

    Attributes:
        records: one Record per patient (as :func:`read_cohort` makes them).
        genomics: (N, F) float32 by case_id, the model's columns in order, gaps imputed.
        rows_missing: (N,) bool by case_id: patients with no genomic value (mask the modality).
        prepared: the harmonisation, coverage and imputation report.
        skips: patients skipped by the reader, counted.
    """

    records: list[Record]
    genomics: pd.DataFrame
    rows_missing: pd.Series
    prepared: PreparedCohort
    skips: SkipReport

    def to_dict(self) -> dict[str, Any]:
        return {**self.prepared.to_dict(), "n_patients": len(self.records),
                "n_masked": int(self.rows_missing.sum()), "skips": self.skips.to_dict()}


def read_external_cohort(path: str | Path, metadata: Mapping[str, Mapping[str, Any]], stats: TrainingStats, *,
                         modality: str = "genomics", convention: NamingConvention = TCGA,
                         aliases: AliasTable | str | None = "auto",
                         min_coverage: float | Mapping[str, float] = DEFAULT_MIN_COVERAGE,
                         norms: Mapping[str, np.ndarray] | None = None, statistic: Statistic = "median",
                         skips: SkipReport | None = None) -> ExternalCohort:
    """Harmonise, coverage-check, impute and read one external cohort file.

    Args:
        path: the cohort CSV (any naming the convention knows).
        metadata: clinical metadata by case_id (UMPSNet's status file).
        stats: the model's training statistics; ``stats.modalities[modality]`` gives the columns.
        modality: the genomic modality's name in ``stats``.
        convention: the source's naming convention.
        aliases: an alias table, None, or ``"auto"`` (the offline table if installed).
        min_coverage: the refusal bound (feature share), for all or per modality.
        norms: modality -> (F,) first-layer input norms, for the weight share.
        statistic: the training statistic that fills gaps.
        skips: where skipped patients are counted.

    Raises:
        DataError: coverage below the bound (one line naming the modality and its coverage), a
            column conflict, or anything :func:`read_cohort` rejects (file, row and field named).
    """
    path = Path(path)
    raw = pd.read_csv(path, low_memory=False)
    raw = raw.loc[:, [c for c in raw.columns if not str(c).startswith("Unnamed")]]
    prepared = prepare_cohort(raw, stats, convention, aliases=aliases,  # type: ignore[arg-type]
                              min_coverage=min_coverage, norms=norms, statistic=statistic, file=path)
    table = prepared.tables[modality]
    full = pd.concat([prepared.passthrough, table], axis=1)
    skips = skips if skips is not None else SkipReport()
    with tempfile.TemporaryDirectory(prefix="polymodal-external-") as tmp:
        copy = Path(tmp) / path.name  # same name: the reader's errors and the records' meta name the user's file
        full.to_csv(copy, index=False, compression="gzip" if path.suffix == ".gz" else None)
        records, genomics = read_cohort(copy, metadata, skips)
    ids = raw["case_id"].astype(str) if "case_id" in raw.columns else pd.Series(range(len(raw))).astype(str)
    missing = pd.Series(prepared.rows_missing[modality], index=ids.to_numpy()).groupby(level=0).all()  # slides
    rows_missing = missing.reindex([r.id for r in records]).fillna(True).astype(bool)
    return ExternalCohort(records, genomics[list(stats.modalities[modality].features)], rows_missing, prepared, skips)
