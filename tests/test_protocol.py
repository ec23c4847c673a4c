"""The protocol: bootstrap CIs, multi-seed aggregation, validation-only thresholds, temporal splits."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from polymodal.data.schema import Record
from polymodal.errors import DataError
from polymodal.evaluation import (
    BINARY_METRICS,
    batched_metric,
    binary_metrics,
    bootstrap_ci,
    choose_threshold,
    drift_summary,
    evaluate_binary,
    format_cell,
    metrics_table,
    stratified_indices,
    summarise,
    temporal_holdout,
)


def _scores(rng: np.random.Generator, y: np.ndarray, signal: float = 0.3, decimals: int = 3) -> np.ndarray:
    # Rounded so that ties occur, which the vectorised kernels must handle like sklearn.
    return np.round(np.clip(signal * y + rng.random(y.size) * (1 - signal), 0, 1), decimals)


def _data(n: int, seed: int = 0, k: int = 1, rate: float = 0.3) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    return y, [_scores(rng, y) for _ in range(k)]


# ----------------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("decimals", [1, 3])
def test_vectorised_kernels_match_sklearn_on_every_resample(decimals: int) -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(120) < 0.35).astype(int)
    s = _scores(rng, y, decimals=decimals)
    idx = stratified_indices(np.random.default_rng(0), y, 25)
    for name, spec in BINARY_METRICS.items():
        x = (s >= 0.5).astype(float) if spec.uses_threshold else s
        fast = batched_metric(spec)(y[idx], x[idx])
        reference = np.array([spec(y[i], x[i]) for i in idx])
        np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-12, err_msg=name)


def test_stratified_resamples_keep_class_counts() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0])
    idx = stratified_indices(np.random.default_rng(0), y, 50)
    assert idx.shape == (50, 7)
    assert (y[idx].sum(axis=1) == 2).all()


def test_ci_contains_point_estimate_and_is_deterministic() -> None:
    y, seeds = _data(300, k=3)
    spec = BINARY_METRICS["roc_auc"]
    point = np.mean([roc_auc_score(y, s) for s in seeds])
    low, high = bootstrap_ci(spec, y, seeds, n_boot=500, seed=7)
    assert low < point < high
    assert bootstrap_ci(spec, y, seeds, n_boot=500, seed=7) == (low, high)
    assert bootstrap_ci(spec, y, seeds, n_boot=500, seed=8) != (low, high)


def test_ci_narrows_as_n_grows() -> None:
    spec = BINARY_METRICS["roc_auc"]
    widths = []
    for n in (100, 2000):
        y, seeds = _data(n, seed=1)
        low, high = bootstrap_ci(spec, y, seeds, n_boot=400)
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # width ~ 1/sqrt(n): expect about 1/4.5


def test_ci_is_paired_over_seeds() -> None:
    # Identical seeds: the seed-mean equals each seed, so the CI must equal the one-seed CI.
    y, (s,) = _data(200)
    spec = BINARY_METRICS["pr_auc"]
    np.testing.assert_allclose(bootstrap_ci(spec, y, [s, s, s], n_boot=200),
                               bootstrap_ci(spec, y, [s], n_boot=200), rtol=1e-12)


def test_generic_callable_matches_registered_kernel() -> None:
    y, seeds = _data(80, k=2)
    fast = bootstrap_ci(BINARY_METRICS["roc_auc"], y, seeds, n_boot=50)
    slow = bootstrap_ci(lambda a, b: roc_auc_score(a, b), y, seeds, n_boot=50)
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_bootstrap_errors_and_degenerate_input() -> None:
    y, (s,) = _data(50)
    with pytest.raises(ValueError, match="0/1 predictions"):
        bootstrap_ci(BINARY_METRICS["f1"], y, [s], n_boot=10)
    with pytest.raises(ValueError, match="sequence of"):
        bootstrap_ci(BINARY_METRICS["roc_auc"], y, s, n_boot=10)
    low, high = bootstrap_ci(BINARY_METRICS["roc_auc"], np.zeros(50, int), [s], n_boot=10)
    assert math.isnan(low) and math.isnan(high)


def test_bootstrap_is_fast_enough() -> None:
    # The budget from the brief: 1000 resamples x ~600 samples x 5 seeds x 8 metrics.
    y, seeds = _data(600, k=5)
    preds = [(s >= 0.5).astype(float) for s in seeds]
    # CPU time of this process, so a busy shared machine does not make the test flaky (~0.7 s idle).
    start = time.process_time()
    for spec in BINARY_METRICS.values():
        bootstrap_ci(spec, y, preds if spec.uses_threshold else seeds, n_boot=1000)
    assert time.process_time() - start < 3.0


# --------------------------------------------------------------------------------- aggregation


def test_summarise() -> None:
    assert summarise([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "per_seed": [1.0, 2.0, 3.0]}
    assert summarise([0.7]) == {"mean": 0.7, "std": 0.0, "per_seed": [0.7]}


# Validation: the F1-optimal threshold is 0.35 (worked out in test_metrics.py).
Y_VAL = np.array([0, 0, 1, 0, 1, 1])
S_VAL = np.array([0.1, 0.4, 0.35, 0.2, 0.8, 0.9])
# Test: at 0.35 only 0.9 (+) and 0.5 (-) are positive: TP=1, FP=1, FN=2 -> F1 = 2/(2+1+2) = 0.4.
# The test-optimal threshold would be 0.25 (TP=3, FP=1 -> F1 = 6/7); the protocol must not find it.
Y_TEST = np.array([1, 1, 0, 0, 1, 0, 0, 0])
S_TEST = np.array([0.3, 0.25, 0.2, 0.1, 0.9, 0.5, 0.05, 0.15])


def test_evaluate_binary_thresholds_come_from_validation_only() -> None:
    s_val_2 = S_VAL.copy()
    s_val_2[2] = 0.45  # seed 2 ranks its positive above the 0.4 negative: threshold 0.45
    s_test_2 = S_TEST * 0.9
    result = evaluate_binary(Y_VAL, [S_VAL, s_val_2], Y_TEST, [S_TEST, s_test_2], n_boot=200)

    assert result["threshold"]["per_seed"] == [0.35, 0.45]
    assert choose_threshold(Y_TEST, S_TEST) == 0.25  # what a test-tuned threshold would have been
    f1 = result["splits"]["test"]["f1"]["per_seed"]
    assert f1[0] == pytest.approx(0.4)
    assert f1[1] == pytest.approx(f1_score(Y_TEST, s_test_2 >= 0.45))
    assert f1[0] < binary_metrics(Y_TEST, S_TEST, 0.25)["f1"]
    # Threshold-free metrics do not depend on the threshold at all.
    assert result["splits"]["test"]["roc_auc"]["per_seed"][0] == pytest.approx(roc_auc_score(Y_TEST, S_TEST))


def test_evaluate_binary_schema() -> None:
    y_val, val = _data(200, seed=1, k=3)
    y_test, test = _data(300, seed=2, k=3)
    result = evaluate_binary(y_val, val, y_test, test, n_boot=200)
    assert result["seeds"] == 3 and result["n"] == {"valid": 200, "test": 300}
    assert len(result["threshold"]["per_seed"]) == 3
    assert set(result["splits"]) == {"valid", "test"}
    for name in BINARY_METRICS:
        v, t = result["splits"]["valid"][name], result["splits"]["test"][name]
        assert set(v) == {"mean", "std", "per_seed"}
        assert set(t) == {"mean", "std", "ci_low", "ci_high", "per_seed"}
        assert t["ci_low"] <= t["ci_high"]
        assert t["mean"] == pytest.approx(np.mean(t["per_seed"]))
    auc = result["splits"]["test"]["roc_auc"]
    assert auc["ci_low"] < auc["mean"] < auc["ci_high"]


def test_evaluate_binary_rejects_mismatched_seeds() -> None:
    with pytest.raises(ValueError, match="one of each per seed"):
        evaluate_binary(Y_VAL, [S_VAL, S_VAL], Y_TEST, [S_TEST], n_boot=10)
    with pytest.raises(ValueError, match="wrap a single run"):
        evaluate_binary(Y_VAL, S_VAL, Y_TEST, [S_TEST], n_boot=10)


def test_format_cell_and_table() -> None:
    assert format_cell({"mean": 0.6543, "std": 0.0121, "ci_low": 0.611, "ci_high": 0.7}) == \
        "0.654 ± 0.012 [0.61, 0.70]"
    assert format_cell({"mean": float("nan"), "std": 0.0}) == "n/a ± 0.000"
    result = evaluate_binary(Y_VAL, [S_VAL], Y_TEST, [S_TEST], n_boot=50)
    table = metrics_table({"model": result, "copy": result})
    assert list(table.index) == ["model", "copy"]
    assert list(table.columns) == list(BINARY_METRICS)
    assert table.loc["model", "f1"].startswith("0.400 ± 0.000 [")
    assert "[" not in metrics_table({"model": result}, split="valid").loc["model", "f1"]


# ------------------------------------------------------------------------------------ temporal


def _record(i: int, nct: str | None, target: float = 0.0) -> Record:
    meta = {} if nct is None else {"nct_number": nct}
    return Record(id=f"r{i}", inputs={"text": "x"}, target=target, meta=meta)


def test_temporal_holdout_orders_and_splits() -> None:
    numbers = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]
    records = [_record(i, f"NCT{n:08d}", float(n > 5)) for i, n in enumerate(numbers)]
    early, late = temporal_holdout(records, fraction=0.2)
    assert [r.meta["nct_number"] for r in late] == ["NCT00000009", "NCT00000010"]
    assert [r.meta["nct_number"] for r in early] == [f"NCT{n:08d}" for n in range(1, 9)]
    assert max(r.meta["nct_number"] for r in early) < min(r.meta["nct_number"] for r in late)


def test_temporal_holdout_keeps_ties_on_one_side() -> None:
    records = [_record(i, k) for i, k in enumerate(["a", "b", "c", "c", "c"])]
    early, late = temporal_holdout(records, fraction=0.2)
    assert [r.meta["nct_number"] for r in early] == ["a", "b"]
    assert len(late) == 3


def test_temporal_holdout_errors() -> None:
    with pytest.raises(DataError, match="record 'r1' has no meta"):
        temporal_holdout([_record(0, "NCT1"), _record(1, None)])
    with pytest.raises(ValueError, match="fraction"):
        temporal_holdout([_record(0, "a"), _record(1, "b")], fraction=1.0)


def test_drift_summary() -> None:
    train = [_record(i, f"NCT{i:08d}", float(i % 2)) for i in range(1, 8)]
    test = [_record(i, f"NCT{i:08d}", 1.0) for i in range(20, 23)]
    summary = drift_summary({"train": train, "test": test, "valid": []}, order_key="nct_number")
    assert summary["train"] == {"n": 7, "min": "NCT00000001", "median": "NCT00000004",
                                "max": "NCT00000007", "positive_rate": pytest.approx(4 / 7)}
    assert summary["test"]["min"] == "NCT00000020" and summary["test"]["positive_rate"] == 1.0
    assert summary["valid"]["n"] == 0
