"""Binary metrics and threshold choice against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polymodal.evaluation import BINARY_METRICS, binary_metrics, choose_threshold

# Hand example. Sorted by score (desc): 0.9(+) 0.8(+) 0.4(-) 0.35(+) 0.2(-) 0.1(-).
# ROC-AUC: 9 (pos, neg) pairs; 0.9 and 0.8 beat all 3 negatives (6), 0.35 beats 0.2 and 0.1 (2)
#   -> 8/9.
# AP: precision at each positive's rank: 1/1, 2/2, 3/4 -> (1 + 1 + 0.75) / 3 = 11/12.
# At threshold 0.5: predicted positive = {0.9, 0.8}: TP=2, FP=0, FN=1, TN=3
#   precision 1, recall 2/3, F1 = 2*1*(2/3)/(1+2/3) = 0.8, accuracy 5/6,
#   balanced accuracy (2/3 + 3/3)/2 = 5/6.
# Brier: (0.1^2 + 0.4^2 + 0.65^2 + 0.2^2 + 0.2^2 + 0.1^2)/6 = 0.6825/6 = 0.11375.
Y = np.array([0, 0, 1, 0, 1, 1])
S = np.array([0.1, 0.4, 0.35, 0.2, 0.8, 0.9])


def test_hand_example() -> None:
    m = binary_metrics(Y, S, threshold=0.5)
    expected = {"roc_auc": 8 / 9, "pr_auc": 11 / 12, "f1": 0.8, "precision": 1.0, "recall": 2 / 3,
                "accuracy": 5 / 6, "balanced_accuracy": 5 / 6, "brier": 0.11375}
    assert list(m) == list(BINARY_METRICS)
    for name, value in expected.items():
        assert m[name] == pytest.approx(value, abs=1e-12), name
    assert all(isinstance(v, float) for v in m.values())


def test_threshold_is_inclusive() -> None:
    # score >= threshold is positive: at t = 0.35 the 0.35 positive counts, and so does the 0.4 negative.
    m = binary_metrics(Y, S, threshold=0.35)
    assert m["recall"] == 1.0
    assert m["precision"] == pytest.approx(3 / 4)


def test_one_class_gives_nan_aucs_without_crashing() -> None:
    for y in (np.zeros(4, int), np.ones(4, int)):
        m = binary_metrics(y, [0.1, 0.2, 0.7, 0.9], threshold=0.5)
        assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
        assert m["accuracy"] == 0.5 and not math.isnan(m["brier"])


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "3 samples but y_score has 2"),
        ([0, 1], [0.1, float("nan")], "NaN"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
        ([0, 2], [0.1, 0.2], "only 0 and 1"),
        ([0, 1], [0.1, 1.5], r"\[0, 1\]"),
        ([], [], "empty"),
    ],
)
def test_bad_input_raises_clear_error(y: list, s: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_metrics(y, s, threshold=0.5)


def test_registry_directions() -> None:
    assert BINARY_METRICS["brier"].higher_is_better is False
    assert all(spec.higher_is_better for name, spec in BINARY_METRICS.items() if name != "brier")
    assert {n for n, s in BINARY_METRICS.items() if s.uses_threshold} == {
        "f1", "precision", "recall", "accuracy", "balanced_accuracy"}


def test_max_f1_threshold_hand_example() -> None:
    # F1 at each candidate threshold (score >= t is positive):
    #   t=0.9: P=1,   R=1/3 -> 0.5       t=0.8: P=1,   R=2/3 -> 0.8
    #   t=0.4: P=2/3, R=2/3 -> 2/3       t=0.35: P=3/4, R=1  -> 6/7 (best)
    #   t=0.2: P=3/5, R=1   -> 0.75      t=0.1: P=1/2, R=1   -> 2/3
    assert choose_threshold(Y, S) == 0.35
    assert binary_metrics(Y, S, 0.35)["f1"] == pytest.approx(6 / 7)


def test_youden_threshold_and_tie_break() -> None:
    # J = TPR - FPR: 0.9: 1/3, 0.8: 2/3, 0.4: 1/3, 0.35: 2/3, 0.2: 1/3, 0.1: 0.
    # 0.8 and 0.35 tie; the documented tie-break takes the higher threshold.
    assert choose_threshold(Y, S, rule="youden") == 0.8
    # Perfectly separated: J = 1 only at the lowest positive score.
    assert choose_threshold(Y, [0.1, 0.3, 0.35, 0.2, 0.8, 0.9], rule="youden") == 0.35


def test_threshold_errors() -> None:
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold(Y, S, rule="best_on_test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="all 0"):
        choose_threshold([0, 0, 0], [0.1, 0.2, 0.3])
