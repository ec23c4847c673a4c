"""Decision thresholds, chosen on validation scores only.

:func:`choose_threshold` must only ever be called with the VALIDATION split's labels and scores.
Choosing a threshold on the test split (as several published systems do, often implicitly by
reporting the best F1 over thresholds) turns the test set into a tuning set and inflates F1; the
protocol in :func:`~polymodal.evaluation.evaluate_binary` therefore calls it with validation data
and applies the returned value, fixed, to the test scores.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from polymodal.evaluation.metrics import check_binary_inputs

__all__ = ["THRESHOLD_RULES", "ThresholdRule", "choose_threshold"]

ThresholdRule = Literal["max_f1", "youden"]
THRESHOLD_RULES: tuple[str, ...] = ("max_f1", "youden")


def choose_threshold(y_val: object, s_val: object, rule: ThresholdRule = "max_f1") -> float:
    """The decision threshold that optimises ``rule`` on validation scores.

    Candidates are the distinct validation scores; a sample is positive when ``score >= threshold``
    (the convention of :func:`~polymodal.evaluation.binary_metrics`). Among tied candidates the
    highest threshold wins (the most conservative rule with the same validation value).

    Args:
        y_val: (N,) VALIDATION labels in {0, 1}; both classes must be present.
        s_val: (N,) VALIDATION probabilities of the positive class.
        rule: ``"max_f1"`` maximises F1 (from ``precision_recall_curve``); ``"youden"`` maximises
            Youden's J = TPR - FPR (from ``roc_curve``).

    Returns:
        The threshold, one of the validation scores.

    Raises:
        ValueError: for an unknown rule or a validation split with one class only.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose one of {THRESHOLD_RULES}")
    y, s = check_binary_inputs(y_val, s_val)
    if y.min() == y.max():
        raise ValueError(f"cannot choose a threshold: the validation labels are all {int(y[0])}")
    if rule == "max_f1":
        precision, recall, thresholds = precision_recall_curve(y, s)
        # The last (precision=1, recall=0) point has no threshold.
        precision, recall = precision[:-1], recall[:-1]
        denom = precision + recall
        value = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    else:
        fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
        # The first point (threshold +inf, predict nothing) is not a usable decision rule.
        fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]
        value = tpr - fpr
    # isclose: equal F1s reached through different fractions can differ in the last ulp.
    best = np.flatnonzero(np.isclose(value, value.max(), rtol=0.0, atol=1e-12))
    return float(thresholds[best].max())
