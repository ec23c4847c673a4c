"""Per-modality coverage of an external cohort, and the bound below which it is refused.

Coverage of a modality = the share of the model's features of that modality the cohort has (after
harmonisation). Where the model's first layer on those inputs is a plain weight matrix, a second
number says how much of the model's input weight the present features carry:

    weight share = sum_{j present} ||W[:, j]||_2 / sum_j ||W[:, j]||_2,     W: (H, F) first-layer weights

(inputs are standardised before that layer, so column norms are comparable). A feature read by
several first layers (a gene in two families of MCAT's SNN) counts with the root of the summed squared
norms of its columns.

Decisions per modality:

* ``complete``: every feature present;
* ``impute``: some present, at least ``min_coverage``: missing features get training statistics;
* ``mask``: none present: the modality is missing as a whole and goes through the model's
  missing-modality mask (as in the robustness tables), never through imputation;
* below ``min_coverage`` (but above zero): :func:`check_coverage` refuses the cohort with one line
  naming the modality and its coverage (a :class:`polymodal.errors.DataError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import DataError

__all__ = [
    "DEFAULT_MIN_COVERAGE",
    "ModalityCoverage",
    "check_coverage",
    "column_norms",
    "group_input_norms",
    "modality_coverage",
    "norm_share",
    "weight_share",
]

# A default, not a law: benchmarks/umpsnet_coverage.md measures what lower coverage costs one model
# (umpsnet, BLCA -> LUAD, genes removed at random); a deployment should set its bound from such a curve.
DEFAULT_MIN_COVERAGE = 0.25


def column_norms(weight: np.ndarray) -> np.ndarray:
    """(F,) L2 norm of each input's column of a (H, F) first-layer weight matrix."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"weight must be (H, F), got shape {w.shape}")
    return np.linalg.norm(w, axis=0)


def norm_share(norms: np.ndarray, present: np.ndarray) -> float:
    """Share of the summed per-input norms (F,) carried by the present inputs (F,) bool."""
    n = np.asarray(norms, dtype=np.float64)
    p = np.asarray(present, dtype=bool)
    if n.shape != p.shape:
        raise ValueError(f"norms {n.shape} and present {p.shape} differ")
    total = n.sum()
    return float(n[p].sum() / total) if total > 0 else float(p.mean()) if p.size else 0.0


def weight_share(weight: np.ndarray, present: np.ndarray) -> float:
    """Share of a (H, F) first-layer weight matrix's input weight carried by the present inputs.

    Args:
        weight: (H, F) weights (``nn.Linear.weight``: out x in).
        present: (F,) bool, True where the cohort has the input.

    Returns:
        ``sum_{present} ||W[:, j]|| / sum_j ||W[:, j]||`` in [0, 1].
    """
    return norm_share(column_norms(weight), present)


def group_input_norms(weights: Iterable[np.ndarray], indices: Iterable[Sequence[int]], n_features: int
                      ) -> np.ndarray:
    """(F,) per-feature input norm over several first layers that each read a subset of the features.

    Args:
        weights: one (H_g, |g|) first-layer weight matrix per group (e.g. per gene family).
        indices: per group, the feature index of each of its columns.
        n_features: F.

    Returns:
        (F,) ``sqrt(sum_g ||W_g[:, pos_g(j)]||^2)``; 0 for a feature no group reads.
    """
    sq = np.zeros(n_features)
    for w, ix in zip(weights, indices, strict=True):
        np.add.at(sq, np.asarray(ix, dtype=int), column_norms(w) ** 2)
    return np.sqrt(sq)


@dataclass(frozen=True)
class ModalityCoverage:
    """How much of one modality an external cohort covers.

    Attributes:
        modality: the modality.
        n_features: the model's features F of it.
        n_present: features the cohort has.
        feature_share: n_present / n_features.
        weight_share: share of the first-layer input weight on present features (None: not measurable).
        action: ``complete``, ``impute`` or ``mask`` (see the module docstring).
    """

    modality: str
    n_features: int
    n_present: int
    feature_share: float
    weight_share: float | None
    action: str

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def line(self) -> str:
        w = f", {self.weight_share:.1%} of its input weight" if self.weight_share is not None else ""
        return (f"{self.modality}: {self.n_present} of {self.n_features} features ({self.feature_share:.1%}{w}): "
                f"{self.action}")


def modality_coverage(modality: str, features: Sequence[str], columns: Iterable[str],
                      norms: np.ndarray | None = None) -> ModalityCoverage:
    """Coverage of one modality.

    Args:
        modality: its name.
        features: (F,) the model's features of it, in order.
        columns: the cohort's (harmonised) columns.
        norms: (F,) per-feature input norms (:func:`column_norms`, :func:`group_input_norms`), or None.
    """
    have = set(columns)
    present = np.array([f in have for f in features], dtype=bool)
    k, f = int(present.sum()), len(features)
    share = k / f if f else 0.0
    action = "mask" if k == 0 else "complete" if k == f else "impute"
    ws = norm_share(norms, present) if norms is not None else None
    return ModalityCoverage(modality, f, k, share, ws, action)


def check_coverage(coverages: Sequence[ModalityCoverage], min_coverage: float | Mapping[str, float]
                   = DEFAULT_MIN_COVERAGE, *, file: str | Path | None = None) -> None:
    """Refuse a cohort whose coverage of a partly present modality is below the bound.

    A modality missing as a whole (coverage 0) is not refused: it is masked.

    Args:
        coverages: one per modality.
        min_coverage: the minimum feature share, one for all modalities or per modality (absent: 0).
        file: the cohort's file, named in the error.

    Raises:
        DataError: one line, e.g. ``cohort.csv, field 'genomics': modality 'genomics' covers 12.0% of
            the model's features (350 of 2965), below the minimum 25.0%; refusing to score``.
    """
    for c in coverages:
        bound = min_coverage.get(c.modality, 0.0) if isinstance(min_coverage, Mapping) else float(min_coverage)
        if c.n_present > 0 and c.feature_share < bound:
            w = f", {c.weight_share:.1%} of its input weight" if c.weight_share is not None else ""
            raise DataError(f"modality {c.modality!r} covers {c.feature_share:.1%} of the model's features "
                            f"({c.n_present} of {c.n_features}{w}), below the minimum {bound:.1%}; refusing to score",
                            file=file, field=c.modality)
