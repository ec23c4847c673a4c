"""Training statistics stored as data, and imputation of missing features from them.

A model scoring an external cohort needs a value for every feature it was trained on. Features the
cohort lacks (a partly overlapping gene panel) are filled with a statistic of the *training*
patients (never of the cohort: its outcome-free distribution could be used, but then two cohorts
would see different fills for the same model). The statistics live in the run folder as JSON (no
pickle: readable, diffable, safe to load from an untrusted run folder):

    {"format": "polymodal.training_stats/1", "n_train": 412,
     "modalities": {"genomics": {"features": ["AAK1_rnaseq", ...], "mean": [...], "median": [...]}}}

``features`` is the model's feature order per modality. Values are raw (before any scaler the
featuriser fits), so the imputed table goes through the same featuriser as a complete one.

A modality missing *as a whole* (no column of it, or a patient with every value of it missing) is
not imputed: :func:`impute` flags those rows and the caller drops the modality for them (the model's
missing-modality mask, as in the robustness tables), because a patient made entirely of training
medians is not information.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from polymodal.errors import DataError, MissingDataError
from polymodal.io import write_json

__all__ = ["FORMAT", "ImputeReport", "ModalityStats", "TrainingStats", "impute"]

FORMAT = "polymodal.training_stats/1"
Statistic = Literal["median", "mean"]


@dataclass(frozen=True)
class ModalityStats:
    """Feature order and per-feature training mean and median of one modality.

    Attributes:
        features: (F,) feature names in the model's order.
        mean: (F,) float64 training means.
        median: (F,) float64 training medians.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    median: np.ndarray

    def __post_init__(self) -> None:
        f = len(self.features)
        if len(set(self.features)) != f:
            raise ValueError("feature names repeat")
        for name in ("mean", "median"):
            v = getattr(self, name)
            if np.shape(v) != (f,):
                raise ValueError(f"{name} has shape {np.shape(v)}, expected ({f},)")

    def value(self, statistic: Statistic) -> np.ndarray:
        """(F,) the chosen statistic."""
        if statistic not in ("median", "mean"):
            raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
        return self.median if statistic == "median" else self.mean


@dataclass(frozen=True)
class TrainingStats:
    """Per-modality training statistics of one fitted model (one fold)."""

    modalities: Mapping[str, ModalityStats]
    n_train: int

    @classmethod
    def fit(cls, tables: Mapping[str, pd.DataFrame]) -> TrainingStats:
        """Statistics of training tables: modality -> (N_train, F) raw feature table in model order.

        NaN cells are left out of each feature's statistic; a feature with no value is an error.
        """
        out: dict[str, ModalityStats] = {}
        n = 0
        for modality, table in tables.items():
            x = table.to_numpy(dtype=np.float64)  # (N, F)
            empty = [str(c) for c, ok in zip(table.columns, np.isfinite(x).any(0), strict=True) if not ok]
            if empty:
                raise DataError(f"no training value for {len(empty)} feature(s) of {modality!r}", field=empty[0])
            with np.errstate(all="ignore"):
                out[modality] = ModalityStats(tuple(map(str, table.columns)), np.nanmean(x, 0), np.nanmedian(x, 0))
            n = max(n, len(table))
        return cls(out, n)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "n_train": self.n_train,
                "modalities": {m: {"features": list(s.features), "mean": [float(v) for v in s.mean],
                                   "median": [float(v) for v in s.median]} for m, s in self.modalities.items()}}

    def save(self, path: str | Path) -> Path:
        """Write the JSON file atomically (polymodal.io.write_json); returns its path."""
        path = Path(path)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainingStats:
        """Read a file written by :meth:`save`; a malformed one is a DataError naming the field."""
        path = Path(path)
        if not path.exists():
            raise MissingDataError(f"{path} is missing: the run folder has no stored training statistics")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"not JSON ({err.msg})", file=path, row=err.lineno) from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"expected format {FORMAT!r}", file=path, field="format")
        mods = data.get("modalities")
        if not isinstance(mods, dict) or not mods:
            raise DataError("no modality", file=path, field="modalities")
        out = {}
        for m, entry in mods.items():
            try:
                feats = tuple(str(f) for f in entry["features"])
                mean = np.asarray(entry["mean"], dtype=np.float64)
                median = np.asarray(entry["median"], dtype=np.float64)
                out[str(m)] = ModalityStats(feats, mean, median)
            except (KeyError, TypeError, ValueError) as err:
                raise DataError(f"bad statistics of modality {m!r}: {err}", file=path, field=str(m)) from err
            if not (np.isfinite(mean).all() and np.isfinite(median).all()):
                raise DataError(f"non-finite statistic in modality {m!r}", file=path, field=str(m))
        return cls(out, int(data.get("n_train", 0)))


@dataclass(frozen=True)
class ImputeReport:
    """What :func:`impute` filled for one modality.

    Attributes:
        modality: the modality.
        statistic: ``"median"`` or ``"mean"``.
        n_features: the model's features F.
        imputed_columns: features absent from the table, filled for every row.
        imputed_cells: NaN cells of present features, filled.
        rows_missing: rows with no value of the modality at all (to be masked, not imputed).
    """

    modality: str
    statistic: str
    n_features: int
    imputed_columns: tuple[str, ...]
    imputed_cells: int
    rows_missing: int

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "statistic": self.statistic, "n_features": self.n_features,
                "n_imputed_columns": len(self.imputed_columns), "imputed_columns": list(self.imputed_columns),
                "imputed_cells": self.imputed_cells, "rows_missing": self.rows_missing}

    def line(self) -> str:
        return (f"{self.modality}: {len(self.imputed_columns)} of {self.n_features} features imputed with the training "
                f"{self.statistic}, plus {self.imputed_cells} missing cells; {self.rows_missing} patient(s) without "
                "any value of it go through the missing-modality mask")


def impute(table: pd.DataFrame, stats: ModalityStats, statistic: Statistic = "median", *,
           modality: str = "") -> tuple[pd.DataFrame, np.ndarray, ImputeReport]:
    """Fill a modality's missing features and cells from training statistics.

    Args:
        table: (N, C) the cohort's (harmonised) columns; columns outside ``stats.features`` are ignored.
        stats: the modality's training statistics.
        statistic: which statistic fills a gap.
        modality: the modality's name, for the report.

    Returns:
        ``(filled, rows_missing, report)``: ``filled`` is (N, F) float64 in the model's feature order
        with the table's index; ``rows_missing`` (N,) bool marks rows with no value of the modality
        (every row when no feature is present), which the caller must mask instead of scoring them
        on imputed values only.
    """
    values = stats.value(statistic)
    feats = list(stats.features)
    present = [f for f in feats if f in table.columns]
    x = table.reindex(columns=feats).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)  # (N, F)
    gaps = ~np.isfinite(x)
    is_present = np.isin(feats, present)
    rows_missing = gaps[:, is_present].all(1) if is_present.any() else np.ones(len(table), dtype=bool)
    cells = int(gaps[~rows_missing][:, is_present].sum())  # a fully missing row is masked, not imputed
    x = np.where(gaps, values[None, :], x)
    filled = pd.DataFrame(x, index=table.index, columns=feats)
    report = ImputeReport(modality, statistic, len(feats), tuple(f for f in feats if f not in set(present)), cells,
                          int(rows_missing.sum()))
    return filled, rows_missing, report

