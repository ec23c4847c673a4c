"""Binary classification metrics: thin, validated wrappers over scikit-learn.

Ranking metrics (``roc_auc``, ``pr_auc``) and ``brier`` use the continuous scores; the four
decision metrics (``f1``, ``precision``, ``recall``, ``accuracy``, ``balanced_accuracy``) use hard
predictions ``y_score >= threshold``, where the threshold was chosen on the validation split
(see :mod:`polymodal.evaluation.thresholds`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

__all__ = ["BINARY_METRICS", "MetricSpec", "binary_metrics", "check_binary_inputs"]


def check_binary_inputs(y_true: object, y_score: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert one split's labels and scores.

    Args:
        y_true: (N,) labels in {0, 1} (bool, int or float).
        y_score: (N,) finite probabilities of the positive class, in [0, 1].

    Returns:
        ``(y, s)``: (N,) int64 labels and (N,) float64 scores.

    Raises:
        ValueError: on empty, non-1-D or mismatched inputs, labels outside {0, 1}, NaN/inf scores
            or scores outside [0, 1] (the Brier score needs probabilities).
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"y_true and y_score must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.shape[0]} samples but y_score has {s.shape[0]}")
    if y.size == 0:
        raise ValueError("y_true and y_score are empty")
    if not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise ValueError(f"y_true must contain only 0 and 1, found {bad.tolist()}")
    if not np.isfinite(s).all():
        n_bad = int((~np.isfinite(s)).sum())
        raise ValueError(f"y_score has {n_bad} NaN or infinite values (first at index "
                         f"{int(np.flatnonzero(~np.isfinite(s))[0])})")
    if s.min() < 0.0 or s.max() > 1.0:
        raise ValueError(f"y_score must be probabilities in [0, 1], got range [{s.min():.4g}, {s.max():.4g}]")
    return y.astype(np.int64), s


def _one_class(y: np.ndarray) -> bool:
    return y.min() == y.max()


def _roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    # Undefined with one class; NaN keeps a report honest instead of crashing a whole run.
    return float("nan") if _one_class(y) else float(skm.roc_auc_score(y, s))


def _pr_auc(y: np.ndarray, s: np.ndarray) -> float:
    # Average precision (step-wise, no interpolation). With no positives sklearn returns a
    # meaningless number with a warning; with only positives it is trivially 1. Both are NaN here.
    return float("nan") if _one_class(y) else float(skm.average_precision_score(y, s))


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.f1_score(y, p, zero_division=0.0))


def _precision(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.precision_score(y, p, zero_division=0.0))


def _recall(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.recall_score(y, p, zero_division=0.0))


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.accuracy_score(y, p))


def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    with warnings.catch_warnings():
        # One class in y_true: sklearn averages recall over the classes present and warns; fine.
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y, p))


def _brier(y: np.ndarray, s: np.ndarray) -> float:
    return float(skm.brier_score_loss(y, s, pos_label=1))


@dataclass(frozen=True)
class MetricSpec:
    """One registered binary metric.

    Calling it evaluates the metric: ``spec(y_true, y)`` where ``y`` is the (N,) continuous score
    for ranking/probability metrics, or the (N,) 0/1 prediction when ``uses_threshold``.

    Attributes:
        name: the key used in every result dict.
        higher_is_better: direction, for tables and model selection.
        uses_threshold: True if the metric needs hard predictions (the validation threshold).
        fn: ``(y_true, scores_or_predictions) -> float``, a scikit-learn call.
    """

    name: str
    higher_is_better: bool
    uses_threshold: bool
    fn: Callable[[np.ndarray, np.ndarray], float]

    def __call__(self, y_true: np.ndarray, y: np.ndarray) -> float:
        return self.fn(np.asarray(y_true), np.asarray(y))


BINARY_METRICS: Mapping[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("roc_auc", True, False, _roc_auc),
        MetricSpec("pr_auc", True, False, _pr_auc),
        MetricSpec("f1", True, True, _f1),
        MetricSpec("precision", True, True, _precision),
        MetricSpec("recall", True, True, _recall),
        MetricSpec("accuracy", True, True, _accuracy),
        MetricSpec("balanced_accuracy", True, True, _balanced_accuracy),
        MetricSpec("brier", False, False, _brier),
    )
}
"""Name -> :class:`MetricSpec`, in the column order reports use."""


def binary_metrics(y_true: object, y_score: object, threshold: float) -> dict[str, float]:
    """Every metric in :data:`BINARY_METRICS` for one split and one model run.

    Args:
        y_true: (N,) labels in {0, 1}.
        y_score: (N,) probabilities of the positive class.
        threshold: decision threshold; a sample is predicted positive when ``score >= threshold``.
            It must come from the validation split (:func:`~polymodal.evaluation.choose_threshold`).

    Returns:
        ``{name: value}`` in registry order. AUCs are NaN when ``y_true`` has one class only.
    """
    y, s = check_binary_inputs(y_true, y_score)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    pred = (s >= threshold).astype(np.int64)
    return {name: spec(y, pred if spec.uses_threshold else s) for name, spec in BINARY_METRICS.items()}
