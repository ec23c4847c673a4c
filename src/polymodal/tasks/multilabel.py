"""Multi-label set prediction (medication recommendation): per-visit metrics, DDI rate, threshold, CIs.

Conventions follow SafeDrug/GAMENet's ``multi_label_metric`` and ``ddi_rate_score``: Jaccard, F1
and PR-AUC (average precision of the visit's scores over all labels) are computed per visit and
averaged over visits; the DDI rate is the share of predicted medication pairs (i < j, pooled over
visits) that are a known interacting pair; "avg meds" is the mean size of the predicted set.
The per-visit values come from scikit-learn: transposing (visits x labels) makes each visit one
"label" column, so ``jaccard_score(y.T, p.T, average=None)`` returns one Jaccard per visit.

Confidence intervals resample **patients** (a patient's visits move together), so visits of one
patient never count as independent evidence.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, jaccard_score

__all__ = [
    "MULTILABEL_METRICS",
    "choose_set_threshold",
    "cluster_bootstrap_ci",
    "ddi_pair_counts",
    "multilabel_metrics",
    "per_visit_metrics",
]

#: Reported metric names, in table order; ``ddi_rate`` and ``avg_meds`` are descriptive, not "higher is better".
MULTILABEL_METRICS = ("jaccard", "pr_auc", "f1", "ddi_rate", "avg_meds")


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"y_true and scores must both be (N, L); got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must be 0/1")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    return y.astype(int), s


def ddi_pair_counts(pred: np.ndarray, ddi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per visit: (number of predicted pairs i < j that interact, number of predicted pairs i < j).

    Args:
        pred: (N, L) 0/1 predicted sets.
        ddi: (L, L) symmetric 0/1 DDI adjacency.

    Returns:
        Two (N,) integer arrays.
    """
    p = pred.astype(np.float64)
    interacting = np.einsum("nl,lm,nm->n", p, np.triu(ddi, k=1), p)  # pairs i<j with A_ij = 1
    k = p.sum(axis=1)
    return interacting.round().astype(int), (k * (k - 1) / 2).astype(int)


def per_visit_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float,
                      ddi: np.ndarray) -> dict[str, np.ndarray]:
    """Per-visit values of every metric (the DDI rate as its two pair counts).

    Args:
        y_true: (N, L) true medication sets, every row with at least one medication.
        scores: (N, L) continuous scores (probabilities or any monotone score).
        threshold: a medication is predicted when its score is >= threshold.
        ddi: (L, L) DDI adjacency.

    Returns:
        ``{"jaccard", "f1", "pr_auc", "avg_meds", "ddi_pairs", "all_pairs"}``, each (N,).
    """
    y, s = _check(y_true, scores)
    if (y.sum(axis=1) == 0).any():
        raise ValueError("every visit needs at least one true medication (PR-AUC is undefined otherwise)")
    pred = (s >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty predicted set is a 0 Jaccard/F1, not a warning
        jac = jaccard_score(y.T, pred.T, average=None, zero_division=0.0)
        f1 = f1_score(y.T, pred.T, average=None, zero_division=0.0)
    ap = average_precision_score(y.T, s.T, average=None)
    dd, allp = ddi_pair_counts(pred, ddi)
    return {"jaccard": np.asarray(jac, float), "f1": np.asarray(f1, float), "pr_auc": np.asarray(ap, float),
            "avg_meds": pred.sum(axis=1).astype(float), "ddi_pairs": dd, "all_pairs": allp}


def _aggregate(values: dict[str, np.ndarray], idx: np.ndarray | slice = slice(None)) -> dict[str, float]:
    allp = values["all_pairs"][idx].sum()
    out = {m: float(np.mean(values[m][idx])) for m in ("jaccard", "pr_auc", "f1", "avg_meds")}
    out["ddi_rate"] = float(values["ddi_pairs"][idx].sum() / allp) if allp else 0.0
    return {m: out[m] for m in MULTILABEL_METRICS}


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float, ddi: np.ndarray) -> dict[str, float]:
    """Visit-averaged Jaccard, PR-AUC, F1, the pooled DDI rate and the mean predicted-set size."""
    return _aggregate(per_visit_metrics(y_true, scores, threshold, ddi))


def choose_set_threshold(y_val: np.ndarray, s_val: np.ndarray, grid: Sequence[float] | None = None) -> float:
    """The score threshold that maximises mean Jaccard on the validation visits (ties: the lowest).

    Args:
        y_val: (N, L) validation sets. s_val: (N, L) validation scores.
        grid: candidate thresholds; default 50 quantiles of all validation scores, evenly spaced from
            the 50% to the 99% quantile, plus 0.5.
    """
    y, s = _check(y_val, s_val)
    if grid is None:
        grid = np.unique(np.r_[np.quantile(s, np.linspace(0.5, 0.99, 50)), 0.5])
    best_t, best = float(grid[0]), -1.0
    for t in grid:
        pred = (s >= t).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jac = float(np.mean(jaccard_score(y.T, pred.T, average=None, zero_division=0.0)))
        if jac > best + 1e-12:
            best_t, best = float(t), jac
    return best_t


def cluster_bootstrap_ci(per_run: Sequence[dict[str, np.ndarray]], groups: np.ndarray, n_boot: int = 1000,
                         alpha: float = 0.05, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile CIs of the run-mean of every metric, resampling groups (patients) with replacement.

    Args:
        per_run: one :func:`per_visit_metrics` dict per run (seed x repeat), all over the same N
            visits in the same order; each resample is applied to every run (paired).
        groups: (N,) group id (patient) of each visit.
        n_boot: resamples. alpha: 1 - coverage.

    Returns:
        ``{metric: (low, high)}``.
    """
    rng = np.random.default_rng(seed)
    uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    draws: dict[str, list[float]] = {m: [] for m in MULTILABEL_METRICS}
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        runs = [_aggregate(v, idx) for v in per_run]
        for m in MULTILABEL_METRICS:
            draws[m].append(float(np.mean([r[m] for r in runs])))
    return {m: (float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2))) for m, v in draws.items()}


def summarise_runs(per_run: Sequence[dict[str, np.ndarray]], groups: np.ndarray, n_boot: int = 1000,
                   seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per metric: mean and std over runs, per-run values and the patient-bootstrap 95% CI."""
    values = [_aggregate(v) for v in per_run]
    ci = cluster_bootstrap_ci(per_run, groups, n_boot=n_boot, seed=seed) if n_boot > 0 else {}
    out = {}
    for m in MULTILABEL_METRICS:
        arr = np.array([v[m] for v in values])
        out[m] = {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                  "per_seed": arr.tolist()}
        if m in ci:
            out[m]["ci_low"], out[m]["ci_high"] = ci[m]
    return out
