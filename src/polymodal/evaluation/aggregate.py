"""The evaluation protocol for binary tasks: per-seed validation thresholds, multi-seed summaries,
bootstrap CIs on test, and the comparison table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from polymodal.evaluation.bootstrap import bootstrap_ci
from polymodal.evaluation.metrics import BINARY_METRICS, binary_metrics, check_binary_inputs
from polymodal.evaluation.thresholds import ThresholdRule, choose_threshold

__all__ = ["evaluate_binary", "format_cell", "metrics_table", "summarise"]


def summarise(values_per_seed: Sequence[float]) -> dict[str, Any]:
    """Mean and spread of one metric over seeds.

    Args:
        values_per_seed: K values, one per training seed.

    Returns:
        ``{"mean", "std", "per_seed"}``; ``std`` uses ddof=1 for K >= 2 and is 0.0 for K = 1.
        NaN values (an undefined metric) propagate to mean and std.
    """
    values = [float(v) for v in values_per_seed]
    if not values:
        raise ValueError("values_per_seed is empty")
    arr = np.asarray(values)
    std = float(arr.std(ddof=1)) if arr.size >= 2 else 0.0
    return {"mean": float(arr.mean()), "std": std, "per_seed": values}


def _as_seed_list(name: str, scores_per_seed: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(scores_per_seed, np.ndarray) and scores_per_seed.ndim == 1:
        raise ValueError(f"{name} must be a sequence of per-seed (N,) arrays, got one 1-D array; "
                         "wrap a single run as [scores]")
    seeds = [np.asarray(s) for s in scores_per_seed]
    if not seeds:
        raise ValueError(f"{name} is empty: need at least one seed")
    return seeds


def evaluate_binary(
    y_val: object,
    val_scores_per_seed: Sequence[np.ndarray],
    y_test: object,
    test_scores_per_seed: Sequence[np.ndarray],
    *,
    threshold_rule: ThresholdRule = "max_f1",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the protocol on K seeds' validation and test scores of one model.

    For seed k the threshold is chosen on ``val_scores_per_seed[k]`` only and then applied,
    unchanged, to ``test_scores_per_seed[k]``. Validation metrics use the same threshold (so the
    validation F1 is optimistic by construction; it is reported to show the gap, not to claim it).
    Test metrics get a paired, stratified percentile bootstrap CI of the seed-mean, in which the
    threshold metrics keep each seed's validation threshold.

    Args:
        y_val: (N_val,) validation labels in {0, 1}.
        val_scores_per_seed: K arrays (N_val,), positive-class probabilities per seed.
        y_test: (N_test,) test labels in {0, 1}.
        test_scores_per_seed: K arrays (N_test,), in the same seed order.
        threshold_rule: ``"max_f1"`` or ``"youden"`` (see :func:`choose_threshold`).
        n_boot: bootstrap resamples for the test CIs.
        alpha: 1 - CI coverage.
        seed: seed of the bootstrap generator.

    Returns:
        The model-result dict documented in :mod:`polymodal.evaluation`.
    """
    val_seeds = _as_seed_list("val_scores_per_seed", val_scores_per_seed)
    test_seeds = _as_seed_list("test_scores_per_seed", test_scores_per_seed)
    if len(val_seeds) != len(test_seeds):
        raise ValueError(f"{len(val_seeds)} validation runs but {len(test_seeds)} test runs: "
                         "need one of each per seed")
    y_v = check_binary_inputs(y_val, val_seeds[0])[0]
    y_t = check_binary_inputs(y_test, test_seeds[0])[0]

    thresholds = [choose_threshold(y_v, s, threshold_rule) for s in val_seeds]
    val_rows = [binary_metrics(y_v, s, t) for s, t in zip(val_seeds, thresholds, strict=True)]
    test_rows = [binary_metrics(y_t, s, t) for s, t in zip(test_seeds, thresholds, strict=True)]
    test_preds = [(np.asarray(s, dtype=np.float64) >= t).astype(np.float64)
                  for s, t in zip(test_seeds, thresholds, strict=True)]

    valid: dict[str, dict[str, Any]] = {}
    test: dict[str, dict[str, Any]] = {}
    for name, spec in BINARY_METRICS.items():
        valid[name] = summarise([row[name] for row in val_rows])
        stats = summarise([row[name] for row in test_rows])
        boot_input = test_preds if spec.uses_threshold else test_seeds
        low, high = bootstrap_ci(spec, y_t, boot_input, n_boot=n_boot, alpha=alpha, seed=seed)
        test[name] = {"mean": stats["mean"], "std": stats["std"], "ci_low": low, "ci_high": high,
                      "per_seed": stats["per_seed"]}

    return {
        "threshold": {"rule": threshold_rule, "per_seed": thresholds},
        "splits": {"valid": valid, "test": test},
        "n": {"valid": int(y_v.size), "test": int(y_t.size)},
        "seeds": len(val_seeds),
        "bootstrap": {"n_boot": n_boot, "alpha": alpha, "seed": seed,
                      "method": "percentile, stratified by class, paired over seeds"},
    }


def _fmt(x: float, digits: int) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def format_cell(stats: Mapping[str, Any], digits: int = 3, ci_digits: int = 2) -> str:
    """One table cell: ``"0.654 ± 0.012 [0.61, 0.70]"`` (the CI only when ``stats`` has one).

    Args:
        stats: a metric entry of the model-result dict (``mean``, ``std``, optional ``ci_low``/``ci_high``).
        digits: decimals of mean and std.
        ci_digits: decimals of the CI bounds.
    """
    cell = f"{_fmt(stats['mean'], digits)} ± {_fmt(stats['std'], digits)}"
    if "ci_low" in stats and "ci_high" in stats:
        cell += f" [{_fmt(stats['ci_low'], ci_digits)}, {_fmt(stats['ci_high'], ci_digits)}]"
    return cell


def metrics_table(results: Mapping[str, Mapping[str, Any]], split: str = "test",
                  digits: int = 3) -> pd.DataFrame:
    """Models side by side.

    Args:
        results: model name -> model-result dict from :func:`evaluate_binary`.
        split: ``"test"`` or ``"valid"``.
        digits: decimals of mean and std.

    Returns:
        A DataFrame of strings: rows = model names (in ``results`` order), columns = metrics in
        registry order (metrics absent from every model are omitted).
    """
    rows: dict[str, dict[str, str]] = {}
    for model, result in results.items():
        try:
            per_metric = result["splits"][split]
        except KeyError as err:
            raise KeyError(f"results[{model!r}] has no split {split!r}") from err
        rows[model] = {name: format_cell(per_metric[name], digits) for name in per_metric}
    columns = [m for m in BINARY_METRICS if any(m in r for r in rows.values())]
    columns += sorted({m for r in rows.values() for m in r} - set(columns))
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).fillna("")
