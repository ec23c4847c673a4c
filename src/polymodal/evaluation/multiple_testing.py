"""Multiple-testing control within a declared family, and honest formatting of p-values.

A family is the set of tests behind one claim: the comparisons of one results table (every model
against the headline model and the reference baselines), one ablation table (drop each
modality), the per-cohort table, or text-forecast's grid of cells x comparisons. Holm's step-down
procedure (family-wise error rate, the default) or Benjamini-Hochberg (false discovery rate) is
applied within the family through :func:`statsmodels.stats.multitest.multipletests`; "significant"
is then counted on the adjusted p-values.

A p-value is never quoted below what its test can resolve: a bootstrap p-value cannot be smaller
than ``2 / (B + 1)`` (see :mod:`polymodal.evaluation.paired`), and an analytic tail probability
(a t or normal tail) below :data:`ANALYTIC_P_FLOOR` says more about the tails of the reference
distribution than about the data, so it is written ``< 0.0001``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from statsmodels.stats.multitest import multipletests

__all__ = ["ANALYTIC_P_FLOOR", "AdjustMethod", "adjust_pvalues", "bootstrap_p_floor", "format_p"]

AdjustMethod = Literal["holm", "bh"]

ANALYTIC_P_FLOOR = 1e-4
"""Smallest analytic p-value quoted as a number; below it reports say ``< 0.0001``."""

_STATSMODELS_METHOD = {"holm": "holm", "bh": "fdr_bh"}


def adjust_pvalues(p_values: Sequence[float] | np.ndarray, method: AdjustMethod = "holm") -> np.ndarray:
    """Adjusted p-values of one family.

    Args:
        p_values: (M,) raw p-values of the family's tests. NaN (a test that could not be run) is
            left out of the family and stays NaN.
        method: ``"holm"`` (Holm 1979 step-down, controls the family-wise error rate) or ``"bh"``
            (Benjamini-Hochberg 1995, controls the false discovery rate).

    Returns:
        (M,) adjusted p-values in the input order, each >= its raw value and <= 1.
    """
    if method not in _STATSMODELS_METHOD:
        raise ValueError(f"unknown adjustment {method!r}; use one of {sorted(_STATSMODELS_METHOD)}")
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got range [{np.nanmin(p):.4g}, {np.nanmax(p):.4g}]")
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=_STATSMODELS_METHOD[method])[1]
    return out


def bootstrap_p_floor(n_boot: int) -> float:
    """Smallest two-sided bootstrap p-value with B resamples: ``2 / (B + 1)``."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    return 2.0 / (n_boot + 1)


def format_p(p: float | None, floor: float = ANALYTIC_P_FLOOR, digits: int = 2) -> str:
    """A p-value for a report, never below what the test supports.

    Args:
        p: the p-value (None or NaN gives ``"n/a"``).
        floor: the smallest value the test can resolve: :func:`bootstrap_p_floor` for a bootstrap
            p-value, :data:`ANALYTIC_P_FLOOR` for an analytic one.
        digits: significant digits.

    Returns:
        ``"0.031"``-style text, or ``"< 0.0001"`` / ``"≤ 0.002"`` at the floor: ``≤`` when ``p``
        equals the floor (the bootstrap count was 0), ``<`` when it is below it.
    """
    if p is None or math.isnan(p):
        return "n/a"
    if p < floor:
        return f"< {floor:.{digits}g}"
    if p == floor:
        return f"≤ {floor:.{digits}g}"
    return f"{p:.{digits}g}"
