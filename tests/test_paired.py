"""Paired bootstrap of differences: hand-computed values, shared draws, antisymmetry, families."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from polymodal.evaluation.bootstrap import bootstrap_ci
from polymodal.evaluation.metrics import BINARY_METRICS
from polymodal.evaluation.multiple_testing import bootstrap_p_floor
from polymodal.evaluation.paired import (
    compare,
    compare_family,
    draw_resamples,
    family_pairs,
    model_ci,
    replicate_metric,
    replicate_unit_means,
)

ROC = BINARY_METRICS["roc_auc"]


def _binary(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a strong model's scores and a weak model's scores (3 seeds each)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    strong = np.stack([np.clip(0.5 * y + 0.5 * rng.random(n), 0, 1) for _ in range(3)])
    weak = np.stack([rng.random(n) for _ in range(3)])
    return y, strong, weak


def test_identical_models_differ_by_exactly_zero() -> None:
    y, strong, _ = _binary()
    reps = replicate_metric(ROC, y, {"a": strong, "b": strong.copy()}, n_boot=200, strata=y)
    row = compare(reps, "a", "b")
    assert row["mean"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0
    assert row["half_width"] == 0.0
    assert row["p_value"] == 1.0  # every resampled difference is 0: both tail counts are B
    assert row["verdict"] == "no detectable difference"
    assert row["model"] == "a vs b" and row["metric"] == "roc_auc_diff"


def test_constant_unit_difference_hand_computed() -> None:
    """Per-unit values 1 vs 0: every resample's difference is exactly 1."""
    reps = replicate_unit_means({"a": np.ones(10), "b": np.zeros(10)}, n_boot=99, higher_is_better=True, name="rr")
    row = compare(reps, "a", "b")
    assert (row["mean"], row["ci_low"], row["ci_high"], row["half_width"]) == (1.0, 1.0, 1.0, 0.0)
    assert row["p_value"] == pytest.approx(2 / 100)  # (1 + 0) / (1 + 99), doubled for two sides
    assert row["verdict"] == "better" and row["metric"] == "rr_diff"
    # For a loss the same difference means a is worse.
    loss = replicate_unit_means({"a": np.ones(10), "b": np.zeros(10)}, n_boot=99, higher_is_better=False)
    assert compare(loss, "a", "b")["verdict"] == "worse"
    assert compare(loss, "b", "a")["verdict"] == "better"


def test_planted_difference_is_better_with_ci_excluding_zero() -> None:
    y, strong, weak = _binary()
    reps = replicate_metric(ROC, y, {"strong": strong, "weak": weak}, n_boot=500, strata=y)
    row = compare(reps, "strong", "weak")
    expected = np.mean([roc_auc_score(y, s) for s in strong]) - np.mean([roc_auc_score(y, s) for s in weak])
    assert row["mean"] == pytest.approx(expected)
    assert row["ci_low"] > 0.2 and row["verdict"] == "better"
    assert row["p_value"] == pytest.approx(bootstrap_p_floor(500))  # no resample at or below 0
    assert row["half_width"] == pytest.approx((row["ci_high"] - row["ci_low"]) / 2)
    brier = replicate_metric(BINARY_METRICS["brier"], y, {"strong": strong, "weak": weak}, n_boot=200, strata=y)
    assert compare(brier, "strong", "weak")["verdict"] == "better"  # lower Brier is better


def test_antisymmetry_with_the_same_draws() -> None:
    y, strong, _ = _binary(n=60)
    noisy = np.clip(strong + np.random.default_rng(1).normal(0, 0.3, strong.shape), 0, 1)
    reps = replicate_metric(ROC, y, {"a": strong, "b": noisy}, n_boot=300, strata=y)
    ab, ba = compare(reps, "a", "b"), compare(reps, "b", "a")
    assert ab["mean"] == pytest.approx(-ba["mean"])
    assert ab["ci_low"] == pytest.approx(-ba["ci_high"]) and ab["ci_high"] == pytest.approx(-ba["ci_low"])
    assert ab["p_value"] == pytest.approx(ba["p_value"])
    assert {ab["verdict"], ba["verdict"]} in ({"better", "worse"}, {"no detectable difference"})


def test_p_value_never_below_its_floor() -> None:
    rng = np.random.default_rng(3)
    for n_boot in (1, 9, 99):
        reps = replicate_unit_means({"a": rng.random(30) + 5, "b": rng.random(30)}, n_boot=n_boot)
        p = compare(reps, "a", "b")["p_value"]
        assert p >= 1 / (n_boot + 1) and p == pytest.approx(bootstrap_p_floor(n_boot))


def test_seeds_are_averaged_inside_each_resample_on_shared_draws() -> None:
    y, strong, weak = _binary(n=50)
    reps = replicate_metric(ROC, y, {"s0": strong[0], "s1": strong[1], "both": strong[:2], "w": weak},
                            n_boot=100, strata=y)
    np.testing.assert_allclose(reps.values["both"], (reps.values["s0"] + reps.values["s1"]) / 2)
    assert reps.point["both"] == pytest.approx((roc_auc_score(y, strong[0]) + roc_auc_score(y, strong[1])) / 2)


def test_vectorised_kernel_matches_generic_callable_on_the_same_draws() -> None:
    y, strong, weak = _binary(n=40)
    scores = {"strong": strong, "weak": weak}
    fast = replicate_metric(ROC, y, scores, n_boot=20, seed=7, strata=y)
    slow = replicate_metric(lambda t, s: float(roc_auc_score(t, s)), y, scores, n_boot=20, seed=7, strata=y,
                            higher_is_better=True, name="roc_auc")
    for m in scores:
        np.testing.assert_allclose(fast.values[m], slow.values[m])


def test_strata_keep_counts_and_clusters_move_together() -> None:
    rng = np.random.default_rng(0)
    strata = np.array([0] * 6 + [1] * 4)
    draws = draw_resamples(rng, 10, 20, strata=strata)
    assert isinstance(draws, np.ndarray) and draws.shape == (20, 10)
    assert ((strata[draws] == 0).sum(axis=1) == 6).all()
    clusters = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 4])  # patients with 3, 2, 1, 2, 2 visits
    for idx in draw_resamples(rng, 10, 20, clusters=clusters):
        counts = np.bincount(idx, minlength=10)
        for c in np.unique(clusters):
            assert len(set(counts[clusters == c])) == 1  # every visit of a patient drawn equally often
    with pytest.raises(ValueError, match="spans more than one stratum"):
        draw_resamples(rng, 10, 5, strata=strata, clusters=np.arange(10) // 4)


def test_cluster_ratio_estimator_equals_the_mean_of_drawn_units() -> None:
    rng = np.random.default_rng(2)
    values = {"a": rng.random(12), "b": rng.random(12)}
    clusters = np.repeat(np.arange(5), [1, 2, 3, 4, 2])
    fast = replicate_unit_means(values, n_boot=40, seed=3, clusters=clusters)
    slow = replicate_metric(lambda t, s: float(np.mean(s)), np.zeros(12), values, n_boot=40, seed=3,
                            clusters=clusters, higher_is_better=False)
    for m in values:
        np.testing.assert_allclose(fast.values[m], slow.values[m])


def test_family_rows_pairs_and_adjustment() -> None:
    rng = np.random.default_rng(5)
    base = rng.random(80)
    losses = {"recipe": base - 0.3, "learned_a": base - 0.1, "learned_b": base, "prior": base + 0.2,
              "last": base + 0.5}
    reps = replicate_unit_means(losses, n_boot=200, higher_is_better=False, name="mse")
    rows = compare_family(reps, "recipe", trivial=["prior", "last"], learned=["learned_a", "learned_b"])
    pairs = [(r["a"], r["b"]) for r in rows]
    # headline vs all four, then every remaining model vs the best trivial (prior) and best learned (learned_a)
    assert pairs == [("recipe", "learned_a"), ("recipe", "learned_b"), ("recipe", "prior"), ("recipe", "last"),
                     ("learned_a", "prior"), ("learned_b", "prior"), ("last", "prior"), ("learned_b", "learned_a"),
                     ("last", "learned_a")]
    assert set(rows[0]) >= {"model", "metric", "mean", "ci_low", "ci_high", "p_value", "p_adjusted", "verdict",
                            "half_width"}
    assert all(r["p_adjusted"] >= r["p_value"] for r in rows)
    assert rows[0]["verdict"] == "better" and rows[0]["mean"] == pytest.approx(-0.2)
    assert family_pairs(["h", "x"], "h", ["x", None]) == [("h", "x")]


def test_undefined_metric_gives_an_undefined_verdict() -> None:
    y = np.array([1, 1, 1, 1])
    s = np.array([0.1, 0.4, 0.3, 0.9])
    reps = replicate_metric(ROC, y, {"a": s, "b": s[::-1].copy()}, n_boot=20)
    row = compare(reps, "a", "b")
    assert row["verdict"] == "undefined" and np.isnan(row["p_value"])


def test_threshold_metric_needs_predictions() -> None:
    y, strong, weak = _binary(n=30)
    with pytest.raises(ValueError, match="needs 0/1 predictions"):
        replicate_metric(BINARY_METRICS["f1"], y, {"a": strong, "b": weak}, n_boot=10, strata=y)
    preds = {"a": (strong >= 0.5).astype(float), "b": (weak >= 0.5).astype(float)}
    row = compare(replicate_metric(BINARY_METRICS["f1"], y, preds, n_boot=100, strata=y), "a", "b")
    assert row["metric"] == "f1_diff" and row["verdict"] == "better"


def test_generic_metric_on_survival_targets_stratified_by_cohort() -> None:
    """(N, 2) (time, event) targets through a lifelines callable, drawn within two cohorts."""
    from lifelines.utils import concordance_index

    rng = np.random.default_rng(8)
    n = 60
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))  # higher risk, earlier event: a planted signal
    y = np.c_[time, rng.random(n) < 0.8]
    cohort = np.repeat([0, 1], n // 2) + 2  # labels outside {0, 1}: the general stratified draw

    def c_index(t: np.ndarray, s: np.ndarray) -> float:
        return float(concordance_index(t[:, 0], -s, t[:, 1]))

    reps = replicate_metric(c_index, y, {"model": risk, "noise": rng.normal(size=n)}, n_boot=60, strata=cohort,
                            higher_is_better=True, name="c_index")
    row = compare(reps, "model", "noise")
    assert row["metric"] == "c_index_diff" and row["verdict"] == "better"
    assert reps.point["model"] == pytest.approx(c_index(y, risk)) and row["ci_low"] > 0


def test_model_ci_is_bootstrap_ci_on_the_same_draws() -> None:
    y, strong, weak = _binary(n=80)
    reps = replicate_metric(ROC, y, {"strong": strong, "weak": weak}, n_boot=200, seed=4, strata=y)
    assert model_ci(reps, "strong") == pytest.approx(bootstrap_ci(ROC, y, strong, n_boot=200, seed=4))
