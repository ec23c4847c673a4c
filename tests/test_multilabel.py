"""Multi-label metrics (hand-computed), thresholds, patient bootstrap, DDI losses and the simple baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.baselines.medication import MostFrequentSet, NearestVisits, PerLabelLogistic
from polymodal.objectives.ddi import ControlledDdiLoss, MedicationObjective, batch_ddi_rate, expected_ddi
from polymodal.tasks.multilabel import (
    choose_set_threshold,
    ddi_pair_counts,
    multilabel_metrics,
    per_visit_metrics,
    summarise_runs,
)

Y = np.array([[1, 1, 0, 0], [0, 0, 1, 0]])
S = np.array([[0.9, 0.2, 0.6, 0.1], [0.1, 0.2, 0.8, 0.7]])
DDI = np.zeros((4, 4))
DDI[0, 2] = DDI[2, 0] = 1


def test_metrics_match_hand_computation() -> None:
    m = multilabel_metrics(Y, S, 0.5, DDI)
    # predicted sets {0, 2} and {2, 3}
    assert m["jaccard"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert m["f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["pr_auc"] == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
    assert m["avg_meds"] == pytest.approx(2.0)
    assert m["ddi_rate"] == pytest.approx(0.5)  # one of the two predicted pairs interacts


def test_empty_prediction_scores_zero_and_no_pairs() -> None:
    pv = per_visit_metrics(Y, S, 0.99, DDI)
    assert pv["jaccard"].tolist() == [0.0, 0.0] and pv["all_pairs"].tolist() == [0, 0]
    assert multilabel_metrics(Y, S, 0.99, DDI)["ddi_rate"] == 0.0


def test_pair_counts_triangle() -> None:
    pred = np.array([[1, 1, 1, 0]])
    dd, allp = ddi_pair_counts(pred, DDI)
    assert dd.tolist() == [1] and allp.tolist() == [3]


def test_bad_shapes_and_empty_truth_rejected() -> None:
    with pytest.raises(ValueError, match="both be"):
        multilabel_metrics(Y, S[:, :3], 0.5, DDI)
    with pytest.raises(ValueError, match="at least one true medication"):
        multilabel_metrics(np.zeros((1, 4), int), S[:1], 0.5, DDI)


def test_threshold_chosen_on_validation_maximises_jaccard() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0]])
    s = np.array([[0.4, 0.2, 0.1], [0.1, 0.3, 0.2]])
    t = choose_set_threshold(y, s, grid=[0.1, 0.25, 0.3, 0.5])
    assert t == 0.25  # 0.25 and 0.3 keep exactly the true medications; ties go to the lowest
    assert multilabel_metrics(y, s, t, np.zeros((3, 3)))["jaccard"] == 1.0


def test_patient_bootstrap_ci_brackets_the_mean() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((40, 6)) < 0.4).astype(int)
    y[:, 0] = 1
    s = np.clip(y * 0.6 + rng.random((40, 6)) * 0.5, 0, 1)
    groups = np.repeat(np.arange(20), 2)
    runs = [per_visit_metrics(y, s, 0.5, np.zeros((6, 6))), per_visit_metrics(y, s * 0.9, 0.5, np.zeros((6, 6)))]
    out = summarise_runs(runs, groups, n_boot=200)
    for metric in ("jaccard", "pr_auc", "f1"):
        assert out[metric]["ci_low"] <= out[metric]["mean"] <= out[metric]["ci_high"]
        assert len(out[metric]["per_seed"]) == 2


def test_ddi_losses() -> None:
    ddi = torch.tensor(DDI, dtype=torch.float32)
    probs = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert expected_ddi(probs, ddi).item() == pytest.approx(2.0)  # ordered pairs (0,2) and (2,0)
    assert batch_ddi_rate(probs, ddi) == pytest.approx(1.0)
    logits = torch.tensor([[5.0, -5.0, 5.0, -5.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    parts = ControlledDdiLoss(ddi, target=0.06)(logits, targets)
    assert parts["ddi_rate"].item() == pytest.approx(1.0)
    # far above the target: beta = 0, only the DDI term remains
    assert parts["controlled"].item() == pytest.approx(0.0005 * parts["ddi"].item())
    total = MedicationObjective(ddi, align_weight=0.1)(logits, targets, {"similarity": logits})
    total["loss"].backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert {"bce", "margin", "align", "ddi", "loss"} <= set(total)


def test_simple_baselines_find_planted_signal() -> None:
    rng = np.random.default_rng(1)
    x = (rng.random((120, 8)) < 0.3).astype(np.float32)
    y = np.c_[x[:, 0], x[:, 1], np.ones(120)].astype(int)  # med 0 <- code 0, med 1 <- code 1, med 2 always
    tr, te = slice(0, 80), slice(80, 120)
    freq = MostFrequentSet().fit(x[tr], y[tr]).predict_proba(x[te])
    assert np.allclose(freq, y[tr].mean(axis=0))
    base = multilabel_metrics(y[te], freq, 0.5, np.zeros((3, 3)))
    logistic = PerLabelLogistic(C=10.0).fit(x[tr], y[tr]).predict_proba(x[te])
    assert logistic.shape == (40, 3)
    assert multilabel_metrics(y[te], logistic, 0.5, np.zeros((3, 3)))["jaccard"] > 0.9
    knn = NearestVisits(k=5).fit(x[tr], y[tr]).predict_proba(x[te])
    knn_m = multilabel_metrics(y[te], knn, 0.5, np.zeros((3, 3)))
    assert knn_m["jaccard"] > base["jaccard"] + 0.1 and knn_m["pr_auc"] >= base["pr_auc"]
