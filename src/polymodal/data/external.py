"""Prepare an external cohort's table for a trained model: harmonise, check coverage, impute.

One call for ``eval RUN --cohort`` and ``predict``:

    stats = TrainingStats.load(run / "fold_0" / "training_stats.json")
    prepared = prepare_cohort(raw_frame, stats, TCGA, min_coverage=0.25, file=path)
    prepared.tables["genomics"]        # (N, F) in the model's order, gaps filled from training statistics
    prepared.rows_missing["genomics"]  # (N,) bool: give these patients the missing-modality mask
    prepared.lines()                   # what was renamed, imputed and covered, for the report

Order of the steps: column names are harmonised first (:mod:`polymodal.data.harmonise`), then the
coverage of every modality is measured and checked against the bound (:mod:`polymodal.data.coverage`;
below it the cohort is refused with one line), then missing features and cells are imputed from the
training statistics (:mod:`polymodal.data.training_stats`). A modality with no column at all is not
imputed: every row is flagged for the mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from polymodal.data.coverage import DEFAULT_MIN_COVERAGE, ModalityCoverage, check_coverage, modality_coverage
from polymodal.data.harmonise import AliasTable, HarmoniseReport, NamingConvention, harmonise_columns, load_alias_table
from polymodal.data.training_stats import ImputeReport, Statistic, TrainingStats, impute

__all__ = ["PreparedCohort", "prepare_cohort"]


@dataclass
class PreparedCohort:
    """An external table made ready for a model, and the report of how.

    Attributes:
        tables: modality -> (N, F) float64 features in the model's order (gaps filled).
        rows_missing: modality -> (N,) bool, rows to score with that modality masked.
        passthrough: (N, P) the convention's non-feature columns (ids, outcomes, clinical).
        harmonise: column renames, missing and ignored columns.
        coverage: one per modality.
        imputed: one per modality that was imputed or masked.
    """

    tables: dict[str, pd.DataFrame]
    rows_missing: dict[str, np.ndarray]
    passthrough: pd.DataFrame
    harmonise: HarmoniseReport
    coverage: list[ModalityCoverage]
    imputed: list[ImputeReport]

    def to_dict(self) -> dict[str, Any]:
        return {"harmonise": self.harmonise.to_dict(), "coverage": [c.to_dict() for c in self.coverage],
                "imputed": [r.to_dict() for r in self.imputed]}

    def lines(self) -> list[str]:
        return [*self.harmonise.lines(), *(c.line() for c in self.coverage), *(r.line() for r in self.imputed)]


def prepare_cohort(frame: pd.DataFrame, stats: TrainingStats, convention: NamingConvention, *,
                   aliases: AliasTable | Literal["auto"] | None = "auto",
                   min_coverage: float | Mapping[str, float] = DEFAULT_MIN_COVERAGE,
                   norms: Mapping[str, np.ndarray] | None = None, statistic: Statistic = "median",
                   file: str | Path | None = None) -> PreparedCohort:
    """Harmonise, check coverage and impute one external table.

    Args:
        frame: (N, C) the raw external table.
        stats: the model's training statistics (feature order per modality).
        convention: the source's naming convention.
        aliases: an alias table, None for none, or ``"auto"`` (the offline table if installed).
        min_coverage: the refusal bound on the feature share, for all modalities or per modality.
        norms: modality -> (F,) per-feature first-layer input norms, for the weight share (optional).
        statistic: ``"median"`` (default, robust to outliers) or ``"mean"``.
        file: the table's file, named in errors.

    Raises:
        DataError: a modality partly present below ``min_coverage`` (one line), or conflicting columns.
    """
    table = load_alias_table() if aliases == "auto" else aliases
    features = [f for s in stats.modalities.values() for f in s.features]
    harmonised, report = harmonise_columns(frame, features, convention, aliases=table, file=file)
    feature_set = set(features)
    passthrough = harmonised.loc[:, [c for c in harmonised.columns if c not in feature_set]]
    coverage = [modality_coverage(m, s.features, harmonised.columns, (norms or {}).get(m))
                for m, s in stats.modalities.items()]
    check_coverage(coverage, min_coverage, file=file)
    tables, rows_missing, imputed = {}, {}, []
    for (m, s), cov in zip(stats.modalities.items(), coverage, strict=True):
        filled, missing, rep = impute(harmonised, s, statistic, modality=m)
        tables[m], rows_missing[m] = filled, missing
        if cov.action != "complete" or rep.imputed_cells or rep.rows_missing:
            imputed.append(rep)
    return PreparedCohort(tables, rows_missing, passthrough, report, coverage, imputed)
