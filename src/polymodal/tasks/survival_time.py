"""Time-dependent survival metrics from a run's saved tables: cumulative/dynamic AUC and the
integrated Brier score (both scikit-survival), per model, cohort and fold.

Both need the inner-training outcomes of each fold (for the censoring weights) and the IBS needs
survival curves, neither of which fits the one-row-per-patient predictions table. A survival job
therefore also returns two tables (:class:`polymodal.runs.JobResult.tables`):

* ``train_targets``: ``fold, subset, id, time, event`` of each fold's inner training patients;
* ``survival_curves``: ``model, fold, seed, subset, split, id, at, survival``: a model's survival
  probability of each test patient at the evaluation times ``at`` of its (fold, subset), which are
  :func:`ibs_grid` of that fold's test and training times (so a curve is stored only where the IBS
  reads it).

A recipe's ``evaluate_tables`` calls :func:`time_dependent_metrics`, so ``polymodal eval`` recomputes
these from the saved tables exactly as the run did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score
from sksurv.util import Surv

__all__ = ["ibs_grid", "integrated_brier", "step_values", "td_auc", "time_dependent_metrics"]


def ibs_grid(test_time: np.ndarray, train_time: np.ndarray) -> np.ndarray:
    """Evaluation times of the IBS: 15 quantiles (10-80%) of the test times, strictly inside the test
    range and before the last training time (where the censoring weights are defined)."""
    t = np.asarray(test_time, dtype=np.float64)
    times = np.unique(np.quantile(t, np.linspace(0.1, 0.8, 15)))
    return times[(times > t.min()) & (times < t.max()) & (times < np.max(train_time))]


def step_values(knots: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Right-continuous step curves read at ``times``.

    Args:
        knots: (J,) increasing times at which the curves change.
        values: (N, J) curve values from each knot on (1 before the first knot).
        times: (T,) where to read them.

    Returns:
        (N, T) values.
    """
    j = np.searchsorted(knots, times, side="right") - 1  # (T,)
    padded = np.concatenate([np.ones((len(values), 1)), values], axis=1)  # (N, 1 + J)
    return padded[:, j + 1]


def td_auc(train: np.ndarray, test: np.ndarray, risk: np.ndarray) -> float:
    """Mean cumulative/dynamic AUC (sksurv) at the 25/50/75% quantiles of test event times; NaN if undefined.

    Args:
        train: (N_train, 2) ``[time, event]`` (censoring weights).
        test: (N, 2) ``[time, event]``.
        risk: (N,) risk scores.
    """
    ev = test[:, 0][(test[:, 1] > 0) & (test[:, 0] < train[:, 0].max()) & (test[:, 0] >= test[:, 0].min())]
    if ev.size < 3:
        return float("nan")
    times = np.unique(np.quantile(ev, [0.25, 0.5, 0.75]))
    times = times[(times > test[:, 0].min()) & (times < test[:, 0].max())]
    try:
        _, mean_auc = cumulative_dynamic_auc(Surv.from_arrays(train[:, 1] > 0, train[:, 0]),
                                             Surv.from_arrays(test[:, 1] > 0, test[:, 0]), risk, times)
    except ValueError:
        return float("nan")
    return float(mean_auc)


def integrated_brier(train: np.ndarray, test: np.ndarray, survival: np.ndarray, times: np.ndarray) -> float:
    """Integrated Brier score (sksurv, IPCW) of (N, T) survival probabilities at ``times``; NaN if undefined."""
    if times.size < 2 or survival.size == 0:
        return float("nan")
    try:
        return float(integrated_brier_score(Surv.from_arrays(train[:, 1] > 0, train[:, 0]),
                                            Surv.from_arrays(test[:, 1] > 0, test[:, 0]), survival, times))
    except ValueError:
        return float("nan")


def _spread(values: list[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"),
            "std": float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else 0.0, "per_fold": [float(x) for x in v]}


def time_dependent_metrics(predictions: pd.DataFrame, tables: Mapping[str, pd.DataFrame], *, headline_selection: str
                           ) -> dict[str, Any]:
    """``{"time_dependent": {model: {"td_auc_<cohort>": ..., "ibs_<cohort>": ...}}}`` on the test folds.

    A fold's model is the ensemble of its seeds, as in :class:`polymodal.tasks.survival.SurvivalTask`
    with ``ensemble=True``: the mean validation-standardised risk (td-AUC) and the mean survival curve
    (IBS); summaries are mean ± std over folds. A model without curves (a Cox-loss network) has no IBS.
    """
    from polymodal.tasks.survival import SurvivalTask, centre_on_validation, strict_json

    task = SurvivalTask(headline="", ensemble=True)
    frame = task.check(predictions)
    frame = frame[frame["selection"].isin((headline_selection, "")) & (frame["condition"] == "none")]
    frame = centre_on_validation(frame.reset_index(drop=True))
    train = tables.get("train_targets")
    curves = tables.get("survival_curves")
    if train is None:
        return {}
    train = train.assign(subset=train["subset"].astype(str), fold=train["fold"].astype(int))
    targets = {(s, int(k)): g[["time", "event"]].to_numpy(dtype=np.float64)
               for (s, k), g in train.groupby(["subset", "fold"])}
    if curves is not None:
        curves = curves.assign(model=curves["model"].astype(str), subset=curves["subset"].astype(str),
                               id=curves["id"].astype(str))
    out: dict[str, Any] = {}
    test = frame[frame["split"] == "test"]
    for model, rows in test.groupby("model", sort=False):
        entry: dict[str, Any] = {}
        for subset, sub in rows.groupby("subset", sort=False):
            aucs, ibs = [], []
            for fold, g in sub.groupby("fold", sort=True):
                ens = g.pivot_table(index="id", columns="seed", values="centred").mean(1)  # (N,) by sorted id
                first = g.drop_duplicates("id").set_index("id").loc[ens.index]
                y = np.stack([first["time"].to_numpy(), first["event"].to_numpy()], 1)
                tr = targets.get((str(subset), int(fold)))
                if tr is None:
                    continue
                aucs.append(td_auc(tr, y, ens.to_numpy()))
                ibs.append(_fold_ibs(curves, str(model), str(subset), int(fold), list(ens.index), tr, y))
            if not aucs:
                continue
            entry[f"td_auc_{str(subset).lower()}"] = _spread(aucs)
            if np.isfinite(ibs).any():
                entry[f"ibs_{str(subset).lower()}"] = _spread(ibs)
        out[str(model)] = entry
    return {"time_dependent": strict_json(out)}


def _fold_ibs(curves: pd.DataFrame | None, model: str, subset: str, fold: int, ids: list[str], train: np.ndarray,
              test: np.ndarray) -> float:
    if curves is None:
        return float("nan")
    part = curves[(curves["model"] == model) & (curves["subset"] == subset) & (curves["fold"] == fold)]
    if part.empty:
        return float("nan")
    # (N, T): the mean over seeds of each patient's survival at each evaluation time
    mean = part.pivot_table(index="id", columns="at", values="survival", aggfunc="mean").loc[ids]
    return integrated_brier(train, test, mean.to_numpy(dtype=np.float64), mean.columns.to_numpy(dtype=np.float64))
