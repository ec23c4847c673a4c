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

import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sksurv.exceptions import NoComparablePairException
from sksurv.metrics import concordance_index_censored

from polymodal.errors import DataError
from polymodal.evaluation.aggregate import summarise
from polymodal.evaluation.bootstrap import check_bootstrap_params, stratified_indices
from polymodal.tasks.base import Task

__all__ = [
    "SURVIVAL_METRICS",
    "SurvivalTask",
    "assign_time_bins",
    "bootstrap_survival_ci",
    "centre_on_validation",
    "check_survival_inputs",
    "evaluate_survival",
    "quantile_time_bins",
    "strict_json",
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


# --------------------------------------------------------------------------- the task on predictions.csv


def strict_json(value: Any) -> Any:
    """``value`` as metrics.json holds it (NaN -> None, arrays -> lists), so that the metrics a run returns
    and the ones ``polymodal eval`` recomputes from the file compare equal."""
    from polymodal.io import _finite

    return _finite(value)


def centre_on_validation(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``centred``: each (model, fold, seed, subset)'s risk minus its validation median, over its std.

    The statistics come from that model's own ``valid`` rows under no perturbation (``condition ==
    "none"``), so a risk-group threshold of 0 is the validation median and the seeds of a fold average
    on a common scale; a constant risk (std 0) keeps scale 1, and rows with no validation rows (a
    zero-shot cohort) keep their raw risk.
    """
    keys = ["model", "fold", "seed", "subset"]
    valid = frame[(frame["split"] == "valid") & (frame["condition"] == "none")]
    stats = valid.groupby(keys)["risk"].agg(valid_median="median", valid_scale="std").reset_index()
    merged = frame.merge(stats, on=keys, how="left")
    scale = merged["valid_scale"].where(merged["valid_scale"] > 0, 1.0).fillna(1.0)
    centred = (merged["risk"] - merged["valid_median"].fillna(0.0)) / scale
    return frame.assign(centred=centred.to_numpy())


def _risk_groups(frame: pd.DataFrame) -> dict[str, Any]:
    """Log-rank test (lifelines) of high vs low risk: ``centred`` above 0 (the validation median)."""
    from lifelines.statistics import logrank_test

    high = frame["centred"] > 0
    if high.all() or (~high).all():
        return {"n_high": int(high.sum()), "n_low": int((~high).sum()), "logrank_p": None}
    res = logrank_test(frame.loc[high, "time"], frame.loc[~high, "time"], frame.loc[high, "event"],
                       frame.loc[~high, "event"])
    return {"n_high": int(high.sum()), "n_low": int((~high).sum()), "logrank_p": float(res.p_value)}


class SurvivalTask(Task):
    """Time to event: one risk score per patient (higher = earlier event), scored by Harrell's C-index.

    predictions.csv columns beyond the common ones: ``time`` (observed, >= 0), ``event`` (1 = event,
    0 = censored) and ``risk``. ``fold`` is the cross-validation fold (a test patient appears in exactly
    one fold) and ``subset`` the cohort: with named cohorts the headline table has
    ``c_index_<cohort>`` per cohort and their mean ``c_index_mean`` (UMPSNet's headline), and with
    several each cohort also gets its own table (``subsets``, metric ``c_index``); a table whose only
    subset is ``all`` has ``c_index``.

    The bootstrap resamples patients within each (cohort, fold), stratified by event, and is paired:
    the draws depend only on (task seed, cohort, fold) and are applied to every model, seed and
    test-time condition scored on those patients, so differences between models (``comparisons``)
    are paired differences.

    Args:
        ensemble: how seeds combine. False: each seed is scored alone, mean ± std over seeds (of the
            mean over folds), CI of the seed mean. True (the MCAT / UMPSNet protocol): a fold's model is
            the mean of its seeds' risks, each standardised on its own validation rows
            (:func:`centre_on_validation`), mean ± std over folds, CI of the fold mean; the risk groups
            (log-rank, high = above the validation median) are reported too.
        alpha: 1 - CI coverage.
    """

    name: ClassVar[str] = "survival"
    columns: ClassVar[tuple[str, ...]] = ("time", "event", "risk")
    unit: ClassVar[str] = "patient"
    primary_metric: ClassVar[str] = "c_index"

    def __init__(self, *, ensemble: bool = False, alpha: float = 0.05, **kwargs: Any) -> None:
        super().__init__(ensemble=ensemble, alpha=alpha, **kwargs)
        check_bootstrap_params(self.n_boot, alpha)
        self.ensemble = bool(ensemble)
        self.alpha = float(alpha)
        self._truth: dict[tuple[str, int, str], tuple[pd.Index, np.ndarray, np.ndarray]] = {}
        self._draws: dict[tuple[str, int], np.ndarray] = {}
        self._boots_all: dict[tuple[str, str], np.ndarray | None] = {}

    # ------------------------------------------------------------------ evaluate

    def check(self, predictions: pd.DataFrame, *, source: str = "predictions.csv") -> pd.DataFrame:
        frame = super().check(predictions, source=source)
        for col in ("time", "event", "risk"):
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values) | ((values < 0) if col == "time" else False) | (
                ~np.isin(values, (0.0, 1.0)) if col == "event" else False)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                what = {"time": "a finite time >= 0", "event": "0 or 1", "risk": "a finite number"}[col]
                raise DataError(f"{col} must be {what}, got {frame[col].iloc[row]!r}", file=source, row=row + 1,
                                field=col)
            frame[col] = values
        frame["event"] = frame["event"].astype(int)
        return frame

    def evaluate(self, predictions: pd.DataFrame) -> dict[str, Any]:
        """metrics.json's model tables, per-cohort tables, robustness and paired comparisons."""
        frame = self.check(predictions)
        present = set(frame["selection"])
        selection = next((s for s in self.selections if s in present), sorted(present - {""}) or [""])
        selection = selection if isinstance(selection, str) else selection[0]
        frame = frame[frame["selection"].isin((selection, ""))].reset_index(drop=True)
        frame = centre_on_validation(frame) if self.ensemble else frame.assign(centred=frame["risk"])
        self._index_truth(frame)
        subsets = list(dict.fromkeys(frame["subset"]))
        combined = subsets != ["all"]  # named cohorts: c_index_<cohort> and their mean, even for one cohort
        primary = "c_index_mean" if combined else "c_index"
        out: dict[str, Any] = {"task": self.name, "task_spec": self.spec(), "primary_metric": primary,
                               "bootstrap_unit": self.unit, "selection": {"name": selection},
                               "bootstrap": {"n_boot": self.n_boot, "alpha": self.alpha, "seed": self.seed,
                                             "method": "percentile; patients resampled within each (cohort, fold), "
                                                       "stratified by event; the same draws for every model"}}
        none = frame[frame["condition"] == "none"]
        per_subset = {(str(m), s): self._scores(rows[rows["subset"] == s], s)
                      for m, rows in none.groupby("model", sort=False) for s in subsets
                      if (rows["subset"] == s).any()}
        self._boots_all = {key: sc["test"]["boots"] for key, sc in per_subset.items() if "test" in sc}
        out["models"] = self._table(none, subsets, per_subset, combined=combined)
        if len(subsets) > 1:
            out["subsets"] = {s: self._table(none[none["subset"] == s], [s], per_subset, combined=False)
                              for s in subsets}
        conditions = [c for c in dict.fromkeys(frame["condition"]) if c != "none"]
        if conditions and self.headline in out["models"]:
            robustness = {"none": out["models"][self.headline]["splits"]["test"]}
            for condition in conditions:
                part = frame[(frame["condition"] == condition) & (frame["model"] == self.headline)]
                if part.empty:
                    continue
                scores = {(self.headline, s): self._scores(part[part["subset"] == s], s) for s in subsets
                          if (part["subset"] == s).any()}
                robustness[condition] = self._table(part, subsets, scores, combined=combined)[
                    self.headline]["splits"]["test"]
            out["robustness"] = robustness
        out["comparisons"] = self._comparisons(out["models"], primary)
        return strict_json(out)

    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """One table for a frame of checked predictions (every subset in it combined)."""
        frame = frame.reset_index(drop=True)
        if "centred" not in frame.columns:
            frame = centre_on_validation(frame) if self.ensemble else frame.assign(centred=frame["risk"])
        self._index_truth(frame)
        subsets = list(dict.fromkeys(frame["subset"]))
        scores = {(str(m), s): self._scores(rows[rows["subset"] == s], s)
                  for m, rows in frame.groupby("model", sort=False) for s in subsets if (rows["subset"] == s).any()}
        return self._table(frame, subsets, scores, combined=subsets != ["all"])

    # ------------------------------------------------------------------ pieces

    def _index_truth(self, frame: pd.DataFrame) -> None:
        """The reference patient order of each (subset, fold, split): first appearance in the table.

        Every model's rows are aligned to it, so a bootstrap draw picks the same patients for all.
        """
        self._truth = {}
        self._draws = {}
        first = frame.drop_duplicates(["subset", "fold", "split", "id"])
        for (subset, fold, split), rows in first.groupby(["subset", "fold", "split"], sort=False):
            self._truth[(str(subset), int(fold), str(split))] = (
                pd.Index(rows["id"]), rows["time"].to_numpy(dtype=np.float64), rows["event"].to_numpy().astype(bool))

    def _draw(self, subset: str, fold: int) -> np.ndarray:
        """(n_boot, N) test-patient draws of one (subset, fold), stratified by event (events first).

        A design with one group (subset "all", fold 0) draws from ``default_rng(seed)``, which is what
        :func:`bootstrap_survival_ci` draws; other groups get their own stream of the same seed.
        """
        key = (subset, fold)
        if key not in self._draws:
            seed: Any = self.seed if key == ("all", 0) else [self.seed, fold, zlib.crc32(subset.encode())]
            _, _, event = self._truth[(subset, fold, "test")]
            self._draws[key] = stratified_indices(np.random.default_rng(seed), event.astype(np.int64), self.n_boot)
        return self._draws[key]

    def _aligned(self, rows: pd.DataFrame, subset: str, fold: int, split: str) -> tuple[np.ndarray, np.ndarray,
                                                                                       list[np.ndarray]]:
        """(time, event, [risk of each seed]) of one model's rows, in the reference patient order."""
        order, time, event = self._truth[(subset, fold, split)]
        model = str(rows["model"].iloc[0])
        risks = []
        for seed, part in rows.groupby("seed", sort=True):
            these = part.set_index("id")
            if these.index.has_duplicates or len(these) != len(order) or not these.index.isin(order).all():
                raise DataError(f"model {model!r}, seed {seed}: its {split!r} patients of {subset!r} fold {fold} "
                                "differ from the other models' (paired evaluation needs the same patients)",
                                file="predictions.csv", field="id")
            aligned = these.loc[order]
            if not np.array_equal(aligned["event"].to_numpy().astype(bool), event):
                raise DataError(f"model {model!r}, seed {seed}: events differ from the other models' on {split!r}",
                                file="predictions.csv", field="event")
            risks.append(aligned["centred"].to_numpy(dtype=np.float64))
        return time, event, risks

    def _scores(self, rows: pd.DataFrame, subset: str) -> dict[str, Any]:
        """One model on one subset: per split, the per-fold (ensemble) or per-seed values and test boots."""
        out: dict[str, Any] = {"kind": str(rows["kind"].iloc[0]), "seeds": int(rows["seed"].nunique())}
        for split in ("valid", "test"):
            part = rows[rows["split"] == split]
            if part.empty:
                continue
            per_fold, boots = [], []
            for fold, fold_rows in part.groupby("fold", sort=True):
                time, event, risks = self._aligned(fold_rows, subset, int(fold), split)
                if self.ensemble:
                    risks = [np.mean(risks, axis=0)]
                per_fold.append([_c_index(time, event, r) for r in risks])
                if split == "test":
                    draws = self._draw(subset, int(fold))
                    boots.append(np.array([np.mean([_c_index(time[d], event[d], r[d]) for r in risks])
                                           for d in draws]))
            out[split] = {"values": per_fold, "boots": np.mean(boots, axis=0) if boots else None,
                          "n": int(part["id"].nunique()),
                          "events": int(part.drop_duplicates(["fold", "id"])["event"].sum())}
            if split == "test" and self.ensemble:
                patients = part.groupby(["id", "fold"]).agg(time=("time", "first"), event=("event", "first"),
                                                            centred=("centred", "mean"))
                out["risk_groups"] = _risk_groups(patients)
        return out

    def _summary(self, values: list[list[float]], boots: np.ndarray | None) -> dict[str, Any]:
        """values: per fold, a list (one per seed, or one ensemble) of C-indices."""
        if self.ensemble:
            v = np.array([fold[0] for fold in values], dtype=np.float64)
            result: dict[str, Any] = {"mean": float(np.nanmean(v)),
                                      "std": float(np.nanstd(v, ddof=1)) if v.size > 1 else 0.0,
                                      "per_fold": [float(x) for x in v]}
        else:
            result = summarise(np.mean(np.array(values, dtype=np.float64), axis=0))  # per seed: mean over folds
        if boots is not None:
            finite = boots[np.isfinite(boots)]
            low, high = (np.quantile(finite, [self.alpha / 2, 1 - self.alpha / 2]) if finite.size
                         else (np.nan, np.nan))
            result = {"mean": result["mean"], "std": result["std"], "ci_low": float(low), "ci_high": float(high),
                      **{k: v for k, v in result.items() if k not in ("mean", "std")}}
        elif self.ensemble:
            result.update(ci_low=None, ci_high=None)
        return result

    def _table(self, frame: pd.DataFrame, subsets: Sequence[str], scores: dict[tuple[str, str], dict[str, Any]],
               *, combined: bool) -> dict[str, dict[str, Any]]:
        models: dict[str, dict[str, Any]] = {}
        for model in dict.fromkeys(frame["model"]):
            mine = [(s, scores[(str(model), s)]) for s in subsets if (str(model), s) in scores]
            if not mine:
                continue
            splits: dict[str, dict[str, Any]] = {}
            for split in ("valid", "test"):
                parts = [(s, sc[split]) for s, sc in mine if split in sc]
                if not parts:
                    continue
                if not combined:
                    splits[split] = {"c_index": self._summary(parts[0][1]["values"], parts[0][1]["boots"])}
                    continue
                entry = {f"c_index_{s.lower()}": self._summary(p["values"], p["boots"]) for s, p in parts}
                if len(parts) == len(subsets):  # the cohort mean, fold by fold (or seed by seed)
                    values = np.mean([np.array(p["values"], dtype=np.float64) for _, p in parts], axis=0)
                    boots = (np.mean([p["boots"] for _, p in parts], axis=0)
                             if all(p["boots"] is not None for _, p in parts) else None)
                    entry["c_index_mean"] = self._summary(values.tolist(), boots)
                splits[split] = entry
            first = mine[0][1]
            result: dict[str, Any] = {"kind": first["kind"], "splits": splits, "seeds": first["seeds"],
                                      "n": {sp: sum(sc[sp]["n"] for _, sc in mine if sp in sc) for sp in splits},
                                      "events": {sp: sum(sc[sp]["events"] for _, sc in mine if sp in sc)
                                                 for sp in splits}}
            if self.ensemble:
                result["risk_groups"] = {s: sc["risk_groups"] for s, sc in mine if "risk_groups" in sc}
            models[str(model)] = result
        return models

    def _comparisons(self, models: dict[str, dict[str, Any]], metric: str) -> list[dict[str, Any]]:
        """The headline minus every other model on the primary metric, with a paired bootstrap CI and p.

        p is two-sided (twice the smaller tail of the paired differences around 0), Holm-adjusted over
        the comparisons of the table.
        """
        if self.headline not in models:
            return []
        rows: list[dict[str, Any]] = []
        ours = self._combined_boots(self.headline)
        for other in models:
            if other == self.headline:
                continue
            theirs = self._combined_boots(other)
            a = models[self.headline]["splits"].get("test", {}).get(metric)
            b = models[other]["splits"].get("test", {}).get(metric)
            if ours is None or theirs is None or a is None or b is None:
                continue
            diff = ours - theirs
            diff = diff[np.isfinite(diff)]
            if not diff.size:
                continue
            low, high = np.quantile(diff, [self.alpha / 2, 1 - self.alpha / 2])
            p = min(1.0, 2 * min(float(np.mean(diff <= 0)), float(np.mean(diff >= 0))))
            rows.append({"model": f"{self.headline} vs {other}", "a": self.headline, "b": other, "metric": metric,
                         "mean": float(a["mean"] - b["mean"]), "ci_low": float(low), "ci_high": float(high),
                         "p_value": p})
        if rows:
            from statsmodels.stats.multitest import multipletests

            adjusted = multipletests([r["p_value"] for r in rows], method="holm")[1]
            for row, p_adj in zip(rows, adjusted, strict=True):
                row["p_adjusted"] = float(p_adj)
        return rows

    def _combined_boots(self, model: str) -> np.ndarray | None:
        """The model's test boots of the primary metric: one subset's, or the mean over subsets."""
        found = [b for (m, _), b in self._boots_all.items() if m == model]
        if not found or any(b is None for b in found):
            return None
        return np.mean(found, axis=0)
