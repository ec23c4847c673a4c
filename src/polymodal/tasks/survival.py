"""The survival task's protocol: C-index (scikit-survival), bootstrap CIs over patients, seed summaries,
and quantile time bins for discrete-time models.

Every metric comes from scikit-survival; nothing here re-implements a concordance count.

Model-result schema (the same shape as :func:`polymodal.evaluation.evaluate_binary`, no threshold)::

    {
      "splits": {
        "valid": {"c_index": {"mean", "std", "per_seed"}},
        "test":  {"c_index": {"mean", "std", "ci_low", "ci_high", "per_seed"}}
      },
      "n": {"valid": int, "test": int},
      "events": {"valid": int, "test": int},
      "seeds": int,
      "bootstrap": {"n_boot", "alpha", "seed", "method"}
    }
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sksurv.exceptions import NoComparablePairException
from sksurv.metrics import concordance_index_censored

from polymodal.evaluation.aggregate import summarise
from polymodal.evaluation.bootstrap import check_bootstrap_params, stratified_indices

__all__ = [
    "SURVIVAL_METRICS",
    "assign_time_bins",
    "bootstrap_survival_ci",
    "check_survival_inputs",
    "evaluate_survival",
    "quantile_time_bins",
    "survival_metrics",
]

SURVIVAL_METRICS = ("c_index",)


def check_survival_inputs(
    time: object, event: object, risk: object | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and convert survival arrays.

    Args:
        time: (N,) non-negative observed times.
        event: (N,) event indicators (bool or 0/1).
        risk: (N,) finite risk scores (higher = earlier event), or None.

    Returns:
        ``(time float64, event bool, risk float64 or None)``.
    """
    t = np.asarray(time, dtype=np.float64)
    e_raw = np.asarray(event)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"time must be a non-empty 1-D array, got shape {t.shape}")
    if e_raw.shape != t.shape:
        raise ValueError(f"event has shape {e_raw.shape} but time has {t.shape}")
    if not np.isin(e_raw, (0, 1)).all():
        raise ValueError(f"event must contain only 0/1 or booleans, found {np.unique(e_raw)[:5].tolist()}")
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("time must be finite and non-negative")
    r = None
    if risk is not None:
        r = np.asarray(risk, dtype=np.float64)
        if r.shape != t.shape:
            raise ValueError(f"risk has shape {r.shape} but time has {t.shape}")
        if not np.isfinite(r).all():
            raise ValueError("risk contains NaN or inf")
    return t, e_raw.astype(bool), r


def _c_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C via scikit-survival (tied risks count 1/2); NaN when no pair is comparable."""
    if not event.any():  # sksurv raises: every sample censored, nothing to order
        return float("nan")
    try:
        return float(concordance_index_censored(event, time, risk)[0])
    except NoComparablePairException:  # events exist but no pair is comparable (say, one event, last)
        return float("nan")


def survival_metrics(time: object, event: object, risk: object) -> dict[str, float]:
    """Ranking metrics of one set of risk scores.

    Args:
        time: (N,) observed times.
        event: (N,) event indicators.
        risk: (N,) risk scores; higher means an earlier expected event.

    Returns:
        ``{"c_index": float}``: Harrell's concordance index from
        ``sksurv.metrics.concordance_index_censored``; 0.5 for a constant risk, NaN if undefined.
    """
    t, e, r = check_survival_inputs(time, event, risk)
    assert r is not None
    return {"c_index": _c_index(t, e, r)}


def _seed_list(name: str, risks_per_seed: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    if isinstance(risks_per_seed, np.ndarray) and risks_per_seed.ndim == 1:
        raise ValueError(f"{name} must be a sequence of per-seed (N,) arrays; wrap a single run as [risk]")
    seeds = [np.asarray(r, dtype=np.float64) for r in risks_per_seed]
    if not seeds:
        raise ValueError(f"{name} is empty: need at least one seed")
    for k, r in enumerate(seeds):
        if r.shape != (n,):
            raise ValueError(f"{name}[{k}] has shape {r.shape}, expected ({n},)")
        if not np.isfinite(r).all():
            raise ValueError(f"{name}[{k}] contains NaN or inf")
    return seeds


def bootstrap_survival_ci(
    time: object,
    event: object,
    risks_per_seed: Sequence[np.ndarray],
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the seed-mean C-index over resampled test patients.

    Each resample draws patients with replacement, stratified by event status (so every resample
    keeps the test set's number of events and the C-index stays defined), applies the same draw to
    every seed's risks and averages the C-index over seeds, as
    :func:`polymodal.evaluation.bootstrap_ci` does for binary metrics.

    Args:
        time: (N,) test times.
        event: (N,) test event indicators.
        risks_per_seed: K arrays (N,), one per training seed.
        n_boot: number of resamples.
        alpha: 1 - coverage.
        seed: seed of the resampling generator.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when the C-index is undefined on every resample.
    """
    t, e, _ = check_survival_inputs(time, event)
    seeds = _seed_list("risks_per_seed", risks_per_seed, t.size)
    check_bootstrap_params(n_boot, alpha)
    rng = np.random.default_rng(seed)
    draws = stratified_indices(rng, e.astype(np.int64), n_boot)  # events first, as for binary labels
    values = np.array([np.mean([_c_index(t[idx], e[idx], r[idx]) for r in seeds]) for idx in draws])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def evaluate_survival(
    valid_time: object,
    valid_event: object,
    valid_risks_per_seed: Sequence[np.ndarray],
    test_time: object,
    test_event: object,
    test_risks_per_seed: Sequence[np.ndarray],
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the protocol on K seeds' validation and test risks of one model.

    Validation numbers are reported to show the selection gap; test numbers carry a bootstrap CI
    (see :func:`bootstrap_survival_ci`) beside the mean and std over seeds.

    Args:
        valid_time: (N_val,) validation times.
        valid_event: (N_val,) validation event indicators.
        valid_risks_per_seed: K arrays (N_val,).
        test_time: (N_test,) test times.
        test_event: (N_test,) test event indicators.
        test_risks_per_seed: K arrays (N_test,), in the same seed order.
        n_boot: bootstrap resamples for the test CI.
        alpha: 1 - CI coverage.
        seed: seed of the bootstrap generator.

    Returns:
        The model-result dict described in the module docstring.
    """
    tv, ev, _ = check_survival_inputs(valid_time, valid_event)
    tt, et, _ = check_survival_inputs(test_time, test_event)
    val_seeds = _seed_list("valid_risks_per_seed", valid_risks_per_seed, tv.size)
    test_seeds = _seed_list("test_risks_per_seed", test_risks_per_seed, tt.size)
    if len(val_seeds) != len(test_seeds):
        raise ValueError(f"{len(val_seeds)} validation runs but {len(test_seeds)} test runs: need one of each per seed")
    val_rows = [survival_metrics(tv, ev, r) for r in val_seeds]
    test_rows = [survival_metrics(tt, et, r) for r in test_seeds]
    valid: dict[str, Any] = {}
    test: dict[str, Any] = {}
    for name in SURVIVAL_METRICS:
        valid[name] = summarise([row[name] for row in val_rows])
        stats = summarise([row[name] for row in test_rows])
        low, high = bootstrap_survival_ci(tt, et, test_seeds, n_boot=n_boot, alpha=alpha, seed=seed)
        test[name] = {
            "mean": stats["mean"],
            "std": stats["std"],
            "ci_low": low,
            "ci_high": high,
            "per_seed": stats["per_seed"],
        }
    return {
        "splits": {"valid": valid, "test": test},
        "n": {"valid": int(tv.size), "test": int(tt.size)},
        "events": {"valid": int(ev.sum()), "test": int(et.sum())},
        "seeds": len(val_seeds),
        "bootstrap": {
            "n_boot": n_boot,
            "alpha": alpha,
            "seed": seed,
            "method": "percentile, stratified by event, paired over seeds",
        },
    }


def quantile_time_bins(time: object, event: object, n_bins: int) -> np.ndarray:
    """Bin edges for discrete-time survival: quantiles of the *uncensored* times (MCAT's rule).

    Args:
        time: (N,) training times.
        event: (N,) training event indicators (at least one event).
        n_bins: number of bins K.

    Returns:
        (K + 1,) increasing edges; the outer edges are 0 and +inf so every time falls in a bin.
    """
    t, e, _ = check_survival_inputs(time, event)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not e.any():
        raise ValueError("quantile_time_bins needs at least one event")
    inner = np.quantile(t[e], np.linspace(0, 1, n_bins + 1)[1:-1])
    edges = np.concatenate([[0.0], inner, [np.inf]])
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"{n_bins} bins give repeated edges {edges.tolist()}: too few distinct event times")
    return edges


def assign_time_bins(time: object, edges: np.ndarray) -> np.ndarray:
    """(N,) int64 bin index of each time: bin k holds ``edges[k] <= t < edges[k+1]``."""
    t = np.asarray(time, dtype=np.float64)
    return (np.searchsorted(np.asarray(edges), t, side="right") - 1).clip(0, len(edges) - 2).astype(np.int64)
