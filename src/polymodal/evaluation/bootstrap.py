"""Percentile bootstrap confidence intervals over test samples, paired across seeds.

Each resample draws test-sample indices once and applies them to every seed's scores; the metric
is averaged over seeds within the resample. The interval therefore describes how the seed-mean
(the number the report headlines) moves when the test set is redrawn, and seed-to-seed variation
is reported separately (the std over seeds). Resampling is stratified by class, so every resample
keeps the test set's class counts and ranking metrics stay defined.

Speed: scikit-learn's metric functions cost about a millisecond per call in input checks, so
1000 resamples x 5 seeds x 8 metrics would take about a minute. For the metrics registered in
:data:`~polymodal.evaluation.metrics.BINARY_METRICS` this module evaluates all resamples of a seed
in one vectorised call: ROC-AUC through SciPy's Mann-Whitney U (AUC = U / (n_pos * n_neg)),
average precision and the confusion-count metrics in NumPy. These kernels re-express, never
redefine, the scikit-learn metric: ``tests/test_protocol.py`` checks every one against the
scikit-learn call on each resample. Any other callable is evaluated in a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import mannwhitneyu

from polymodal.evaluation.metrics import BINARY_METRICS, MetricSpec, check_binary_inputs

__all__ = ["batched_metric", "bootstrap_ci", "stratified_indices"]

Metric = Callable[[np.ndarray, np.ndarray], float]
Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Resamples are processed in chunks so that (chunk, N) index matrices stay around 16 MB.
_MAX_CHUNK_ELEMENTS = 2_000_000


def check_bootstrap_params(n_boot: int, alpha: float) -> None:
    """Reject a resample count below 1 or a miscoverage outside (0, 1); shared by every bootstrap."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def stratified_indices(rng: np.random.Generator, y: np.ndarray, n_boot: int) -> np.ndarray:
    """Bootstrap index draws that keep each class's count.

    Args:
        rng: the random generator (consumed).
        y: (N,) labels in {0, 1}.
        n_boot: number of resamples.

    Returns:
        (n_boot, N) int64 indices into ``y``: in every row the positives' draws come first, then
        the negatives', so all rows share one label layout.
    """
    parts = []
    for cls in (1, 0):
        members = np.flatnonzero(y == cls)
        if members.size:
            parts.append(members[rng.integers(0, members.size, size=(n_boot, members.size))])
    return np.concatenate(parts, axis=1)


# ---------------------------------------------------------------------------------------------
# Vectorised kernels: (B, N) labels and (B, N) scores or 0/1 predictions -> (B,) metric values.


def _rows_share_layout(y: np.ndarray) -> bool:
    return bool((y == y[:1]).all())


def _roc_auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    if not _rows_share_layout(y):
        return _loop_rows(BINARY_METRICS["roc_auc"], y, s)
    pos = y[0].astype(bool)
    if pos.all() or not pos.any():
        return np.full(y.shape[0], np.nan)
    # Mann-Whitney U counts ties as 1/2, which is exactly the trapezoidal ROC-AUC.
    u = mannwhitneyu(s[:, pos], s[:, ~pos], axis=1, method="asymptotic").statistic
    return u / (pos.sum() * (~pos).sum())


def _pr_auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    n = y.shape[1]
    order = np.argsort(-s, axis=1)  # order within ties is irrelevant: ties are grouped below
    s_sorted = np.take_along_axis(s, order, axis=1)
    y_sorted = np.take_along_axis(y, order, axis=1).astype(np.float64)
    precision = np.cumsum(y_sorted, axis=1) / np.arange(1, n + 1)  # precision at each cut
    # Tied scores share one threshold: each sample takes the precision at the end of its tie group.
    group_end = np.ones_like(s_sorted, dtype=bool)
    group_end[:, :-1] = s_sorted[:, :-1] != s_sorted[:, 1:]
    end_index = np.where(group_end, np.arange(n), n)
    end_index = np.minimum.accumulate(end_index[:, ::-1], axis=1)[:, ::-1]
    precision_at_threshold = np.take_along_axis(precision, end_index, axis=1)
    n_pos = y_sorted.sum(axis=1)
    # AP = sum over thresholds of (recall step) x precision = mean precision over the positives.
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (y_sorted * precision_at_threshold).sum(axis=1) / n_pos
    return np.where((n_pos > 0) & (n_pos < n), ap, np.nan)


def _confusion(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, ...]:
    yb, pb = y.astype(bool), pred.astype(bool)
    tp = (yb & pb).sum(axis=1)
    fp = (~yb & pb).sum(axis=1)
    fn = (yb & ~pb).sum(axis=1)
    tn = (~yb & ~pb).sum(axis=1)
    return tp, fp, fn, tn


def _ratio(num: np.ndarray, den: np.ndarray, empty: float = 0.0) -> np.ndarray:
    # zero_division=0 as in metrics.py
    num, den = num.astype(np.float64), den.astype(np.float64)
    return np.divide(num, den, out=np.full_like(num, empty), where=den > 0)


def _f1_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    tp, fp, fn, _ = _confusion(y, p)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _precision_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    tp, fp, _, _ = _confusion(y, p)
    return _ratio(tp, tp + fp)


def _recall_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    tp, _, fn, _ = _confusion(y, p)
    return _ratio(tp, tp + fn)


def _accuracy_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    tp, _, _, tn = _confusion(y, p)
    return (tp + tn) / y.shape[1]


def _balanced_accuracy_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    tp, fp, fn, tn = _confusion(y, p)
    # Mean recall over the classes present in y_true, as balanced_accuracy_score does.
    tpr = _ratio(tp, tp + fn, empty=np.nan)
    tnr = _ratio(tn, tn + fp, empty=np.nan)
    return np.nanmean(np.stack([tpr, tnr]), axis=0)


def _brier_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    return ((s - y) ** 2).mean(axis=1)


_KERNELS: dict[str, Kernel] = {
    "roc_auc": _roc_auc_rows,
    "pr_auc": _pr_auc_rows,
    "f1": _f1_rows,
    "precision": _precision_rows,
    "recall": _recall_rows,
    "accuracy": _accuracy_rows,
    "balanced_accuracy": _balanced_accuracy_rows,
    "brier": _brier_rows,
}


def _loop_rows(metric: Metric, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.array([metric(y_row, s_row) for y_row, s_row in zip(y, s, strict=True)], dtype=np.float64)


def batched_metric(metric: Metric) -> Kernel:
    """The row-wise form of ``metric``: ``(B, N) labels, (B, N) scores -> (B,)``.

    A registered :class:`MetricSpec` gets its vectorised kernel; any other callable a loop.
    """
    if isinstance(metric, MetricSpec) and BINARY_METRICS.get(metric.name) is metric:
        return _KERNELS[metric.name]
    return lambda y, s: _loop_rows(metric, y, s)


def bootstrap_ci(
    metric: Metric,
    y_true: object,
    scores_per_seed: Sequence[np.ndarray],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the seed-mean of ``metric`` over test-set resampling.

    Args:
        metric: ``(y_true, y) -> float``. For a metric with ``uses_threshold`` pass 0/1
            predictions (made with each seed's validation threshold) as the "scores".
        y_true: (N,) test labels in {0, 1}.
        scores_per_seed: K arrays of shape (N,), one per training seed (or a (K, N) array).
        n_boot: number of resamples.
        alpha: 1 - coverage; 0.05 gives a 95% interval.
        seed: seed of the resampling generator; the same seed gives the same resamples.

    Returns:
        ``(low, high)``; ``(nan, nan)`` if the metric is undefined on every resample.
    """
    if isinstance(scores_per_seed, np.ndarray) and scores_per_seed.ndim != 2:
        raise ValueError("scores_per_seed must be a sequence of (N,) arrays or a (K, N) array, "
                         f"got an array of shape {scores_per_seed.shape}")
    if len(scores_per_seed) == 0:
        raise ValueError("scores_per_seed is empty: need at least one seed")
    check_bootstrap_params(n_boot, alpha)
    checked = [check_binary_inputs(y_true, s) for s in scores_per_seed]
    y = checked[0][0]
    scores = np.stack([s for _, s in checked])  # (K, N)
    if isinstance(metric, MetricSpec) and metric.uses_threshold and not np.isin(scores, (0.0, 1.0)).all():
        raise ValueError(f"{metric.name} needs 0/1 predictions (scores >= validation threshold), "
                         "got continuous scores")

    kernel = batched_metric(metric)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _MAX_CHUNK_ELEMENTS // y.size))
    values = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = stratified_indices(rng, y, b)  # (b, N)
        y_b = y[idx]
        # Same indices for every seed (paired), then the seed-mean per resample.
        values[start:start + b] = np.mean([kernel(y_b, s[idx]) for s in scores], axis=0)
    if np.isnan(values).all():
        return float("nan"), float("nan")
    low, high = np.nanquantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
