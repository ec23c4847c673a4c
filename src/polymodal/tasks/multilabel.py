"""Multi-label set prediction (medication recommendation): per-visit metrics, DDI rate, threshold, CIs.

Conventions follow SafeDrug/GAMENet's ``multi_label_metric`` and ``ddi_rate_score``: Jaccard, F1
and PR-AUC (average precision of the visit's scores over all labels) are computed per visit and
averaged over visits; the DDI rate is the share of predicted medication pairs (i < j, pooled over
visits) that are a known interacting pair; "avg meds" is the mean size of the predicted set.
The per-visit values come from scikit-learn: transposing (visits x labels) makes each visit one
"label" column, so ``jaccard_score(y.T, p.T, average=None)`` returns one Jaccard per visit.

Confidence intervals resample **patients** (a patient's visits move together), so visits of one
patient never count as independent evidence.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, jaccard_score

from polymodal.errors import DataError
from polymodal.tasks.base import Task

__all__ = [
    "MULTILABEL_METRICS",
    "MultilabelTask",
    "choose_set_threshold",
    "cluster_bootstrap_ci",
    "ddi_pair_counts",
    "join_scores",
    "multilabel_metrics",
    "per_visit_metrics",
]

#: Reported metric names, in table order; ``ddi_rate`` and ``avg_meds`` are descriptive, not "higher is better".
MULTILABEL_METRICS = ("jaccard", "pr_auc", "f1", "ddi_rate", "avg_meds")


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"y_true and scores must both be (N, L); got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must be 0/1")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    return y.astype(int), s


def ddi_pair_counts(pred: np.ndarray, ddi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per visit: (number of predicted pairs i < j that interact, number of predicted pairs i < j).

    Args:
        pred: (N, L) 0/1 predicted sets.
        ddi: (L, L) symmetric 0/1 DDI adjacency.

    Returns:
        Two (N,) integer arrays.
    """
    p = pred.astype(np.float64)
    interacting = np.einsum("nl,lm,nm->n", p, np.triu(ddi, k=1), p)  # pairs i<j with A_ij = 1
    k = p.sum(axis=1)
    return interacting.round().astype(int), (k * (k - 1) / 2).astype(int)


def per_visit_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float,
                      ddi: np.ndarray) -> dict[str, np.ndarray]:
    """Per-visit values of every metric (the DDI rate as its two pair counts).

    Args:
        y_true: (N, L) true medication sets, every row with at least one medication.
        scores: (N, L) continuous scores (probabilities or any monotone score).
        threshold: a medication is predicted when its score is >= threshold.
        ddi: (L, L) DDI adjacency.

    Returns:
        ``{"jaccard", "f1", "pr_auc", "avg_meds", "ddi_pairs", "all_pairs"}``, each (N,).
    """
    y, s = _check(y_true, scores)
    if (y.sum(axis=1) == 0).any():
        raise ValueError("every visit needs at least one true medication (PR-AUC is undefined otherwise)")
    pred = (s >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty predicted set is a 0 Jaccard/F1, not a warning
        jac = jaccard_score(y.T, pred.T, average=None, zero_division=0.0)
        f1 = f1_score(y.T, pred.T, average=None, zero_division=0.0)
    ap = average_precision_score(y.T, s.T, average=None)
    dd, allp = ddi_pair_counts(pred, ddi)
    return {"jaccard": np.asarray(jac, float), "f1": np.asarray(f1, float), "pr_auc": np.asarray(ap, float),
            "avg_meds": pred.sum(axis=1).astype(float), "ddi_pairs": dd, "all_pairs": allp}


def _aggregate(values: dict[str, np.ndarray], idx: np.ndarray | slice = slice(None)) -> dict[str, float]:
    allp = values["all_pairs"][idx].sum()
    out = {m: float(np.mean(values[m][idx])) for m in ("jaccard", "pr_auc", "f1", "avg_meds")}
    out["ddi_rate"] = float(values["ddi_pairs"][idx].sum() / allp) if allp else 0.0
    return {m: out[m] for m in MULTILABEL_METRICS}


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float, ddi: np.ndarray) -> dict[str, float]:
    """Visit-averaged Jaccard, PR-AUC, F1, the pooled DDI rate and the mean predicted-set size."""
    return _aggregate(per_visit_metrics(y_true, scores, threshold, ddi))


def choose_set_threshold(y_val: np.ndarray, s_val: np.ndarray, grid: Sequence[float] | None = None) -> float:
    """The score threshold that maximises mean Jaccard on the validation visits (ties: the lowest).

    Args:
        y_val: (N, L) validation sets. s_val: (N, L) validation scores.
        grid: candidate thresholds; default 50 quantiles of all validation scores, evenly spaced from
            the 50% to the 99% quantile (most labels are absent from a visit, so the useful cut lies in
            the upper half of the scores), plus 0.5.
    """
    y, s = _check(y_val, s_val)
    if grid is None:
        grid = np.unique(np.r_[np.quantile(s, np.linspace(0.5, 0.99, 50)), 0.5])
    best_t, best = float(grid[0]), -1.0
    for t in grid:
        pred = (s >= t).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jac = float(np.mean(jaccard_score(y.T, pred.T, average=None, zero_division=0.0)))
        if jac > best + 1e-12:
            best_t, best = float(t), jac
    return best_t


def cluster_bootstrap_ci(per_run: Sequence[dict[str, np.ndarray]], groups: np.ndarray, n_boot: int = 1000,
                         alpha: float = 0.05, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile CIs of the run-mean of every metric, resampling groups (patients) with replacement.

    Args:
        per_run: one :func:`per_visit_metrics` dict per run (seed x repeat), all over the same N
            visits in the same order; each resample is applied to every run (paired).
        groups: (N,) group id (patient) of each visit.
        n_boot: resamples. alpha: 1 - coverage.

    Returns:
        ``{metric: (low, high)}``.
    """
    rng = np.random.default_rng(seed)
    uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    draws: dict[str, list[float]] = {m: [] for m in MULTILABEL_METRICS}
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        runs = [_aggregate(v, idx) for v in per_run]
        for m in MULTILABEL_METRICS:
            draws[m].append(float(np.mean([r[m] for r in runs])))
    return {m: (float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2))) for m, v in draws.items()}


def summarise_runs(per_run: Sequence[dict[str, np.ndarray]], groups: np.ndarray, n_boot: int = 1000,
                   seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per metric: mean and std over runs, per-run values and the patient-bootstrap 95% CI."""
    values = [_aggregate(v) for v in per_run]
    ci = cluster_bootstrap_ci(per_run, groups, n_boot=n_boot, seed=seed) if n_boot > 0 else {}
    out = {}
    for m in MULTILABEL_METRICS:
        arr = np.array([v[m] for v in values])
        out[m] = {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                  "per_seed": arr.tolist()}
        if m in ci:
            out[m]["ci_low"], out[m]["ci_high"] = ci[m]
    return out


# ------------------------------------------------------------------------------------------------ the task


SCORE_DECIMALS = 9  # enough for every tie-breaker the baselines use (>= 1e-8), short enough for the CSV
#: compared pairwise: per-visit means, so the patient bootstrap of their difference is exact and fast
COMPARED = ("jaccard", "pr_auc", "f1")


def join_scores(scores: np.ndarray) -> str:
    """One visit's scores as predictions.csv stores them (``;``-joined, rounded to SCORE_DECIMALS)."""
    return ";".join(repr(float(v)) for v in np.round(np.asarray(scores, dtype=np.float64), SCORE_DECIMALS))


class MultilabelTask(Task):
    """Set prediction (medications of a visit, ATC3) with SafeDrug's per-visit metrics.

    predictions.csv columns beyond the common ones (one row per model, seed, fold, condition,
    cohort and test visit; ``id`` is the visit, ``subset`` the cohort):

    * ``patient``: the patient (bootstrap cluster: all visits of a patient are drawn together);
    * ``threshold``: the set threshold chosen on that fold's validation visits (never on test);
    * ``labels``: the fold's label vocabulary (``;``-joined; fitted on its training patients);
    * ``true_set``: every medication of the visit (``;``-joined), also those outside ``labels``,
      which count as missed (score below any threshold);
    * ``predicted_set``: the labels whose score is >= ``threshold`` (for reading; recomputed);
    * ``scores``: one score per label, in ``labels`` order, rounded to 9 decimals before any metric.

    A run is one ``seed`` (repeats of the cross-validation are folded into it: seed = 1000 *
    repeat + seed); it must cover every visit of the cohort once across its folds. Metrics are the
    run-mean of the visit-averaged metrics with a patient-bootstrap CI paired across runs
    (:func:`summarise_runs`), and the paired comparisons resample patients with the same draws for
    every model (:func:`polymodal.evaluation.paired.replicate_unit_means`), Holm within each metric.

    Args:
        ddi: cohort -> interacting label pairs (``"A|B"``), the reference data of the DDI rate.
    """

    name: ClassVar[str] = "multilabel"
    columns: ClassVar[tuple[str, ...]] = ("patient", "threshold", "labels", "true_set", "predicted_set", "scores")
    unit: ClassVar[str] = "patient"
    primary_metric: ClassVar[str] = "jaccard"

    def __init__(self, *, ddi: Mapping[str, Sequence[str]] | None = None, **kwargs: Any) -> None:
        ddi = {str(k): sorted(str(p) for p in v) for k, v in (ddi or {}).items()}
        super().__init__(ddi=ddi, **kwargs)
        self.ddi = {k: {frozenset(p.split("|")) for p in v} for k, v in ddi.items()}
        self._memo: dict[tuple[Any, ...], tuple[dict[str, np.ndarray], float]] = {}

    def check(self, predictions: pd.DataFrame, *, source: str = "predictions.csv") -> pd.DataFrame:
        """The base checks, plus ``_row``: each row's 1-based data row in the file, for error messages."""
        frame = super().check(predictions, source=source)
        if "_row" not in frame.columns:
            frame["_row"] = np.arange(1, len(frame) + 1)
        return frame

    # ------------------------------------------------------------------ per-visit values

    def _ddi_matrix(self, subset: str, labels: Sequence[str]) -> np.ndarray:
        pairs = self.ddi.get(subset, set())
        return np.array([[float(frozenset((a, b)) in pairs) for b in labels] for a in labels])

    def per_visit(self, frame: pd.DataFrame, source: str = "predictions.csv") -> dict[str, Any]:
        """Every model's per-visit metric values, one dict per run, aligned to one visit order.

        Returns:
            ``{"order": visit ids, "groups": (N,) patients, "models": {model: {"kind", "runs":
            [per_visit_metrics dict per seed], "thresholds": [mean fold threshold per seed]}}}``.
        """
        frame = frame[frame["split"] == "test"]
        visits = frame[["id", "patient"]].drop_duplicates()
        if visits["id"].duplicated().any():
            raise DataError(f"visit {visits.loc[visits['id'].duplicated(), 'id'].iloc[0]} has two patients",
                            file=source, field="patient")
        key = visits["id"].map(lambda i: (0, int(i), "") if str(i).isdigit() else (1, 0, str(i)))
        visits = visits.assign(_key=key).sort_values("_key")
        order = pd.Index(visits["id"])
        out: dict[str, Any] = {"order": order, "groups": visits["patient"].astype(str).to_numpy(), "models": {}}
        for model, rows in frame.groupby("model", sort=False):
            runs, thresholds = [], []
            for seed, run in rows.groupby("seed", sort=True):
                where = order.get_indexer(run["id"])
                if len(run) != len(order) or sorted(where) != list(range(len(order))):
                    raise DataError(f"model {model!r}, seed {seed}: {len(run)} rows, but every one of the "
                                    f"{len(order)} visits must be tested exactly once", file=source, field="id")
                values: dict[str, np.ndarray] = {}
                fold_thresholds = []
                for (_, subset), part in run.groupby(["fold", "subset"], sort=True):
                    # the same rows are evaluated for the tables and again for the comparisons: parse once
                    key = (str(subset), str(model), str(part["condition"].iloc[0]), int(seed), tuple(part["_row"]))
                    if key not in self._memo:
                        self._memo[key] = self._fold_values(part, str(subset), source)
                    pv, thr = self._memo[key]
                    fold_thresholds.append(thr)
                    at = order.get_indexer(part["id"])
                    for name, v in pv.items():
                        values.setdefault(name, np.zeros(len(order), dtype=v.dtype))[at] = v
                runs.append(values)
                thresholds.append(float(np.mean(fold_thresholds)))
            out["models"][str(model)] = {"kind": str(rows["kind"].iloc[0]), "runs": runs, "thresholds": thresholds}
        return out

    def _fold_values(self, part: pd.DataFrame, subset: str, source: str) -> tuple[dict[str, np.ndarray], float]:
        """One (model, seed, fold)'s per-visit values: its scores over its labels, plus a score of -1 for
        every true medication outside them (so it is missed and ranks last)."""
        label_lists = part["labels"].unique()
        thresholds = part["threshold"].astype(float).unique()
        if len(label_lists) != 1 or len(thresholds) != 1:
            raise DataError("one fold has several label lists or thresholds", file=source,
                            field="labels" if len(label_lists) != 1 else "threshold")
        labels = [x for x in str(label_lists[0]).split(";") if x]
        truth = [[x for x in str(t).split(";") if x] for t in part["true_set"]]
        extra = sorted({m for t in truth for m in t} - set(labels))
        full = [*labels, *extra]
        index = {m: j for j, m in enumerate(full)}
        y = np.zeros((len(part), len(full)))
        s = np.full((len(part), len(full)), -1.0)
        for i, (row, medications, text) in enumerate(zip(part["_row"], truth, part["scores"], strict=True)):
            y[i, [index[m] for m in medications]] = 1.0
            values = str(text).split(";")
            if len(values) != len(labels):
                raise DataError(f"{len(values)} scores for {len(labels)} labels", file=source, row=int(row),
                                field="scores")
            try:
                s[i, : len(labels)] = [float(v) for v in values]
            except ValueError:
                raise DataError(f"not a number in {str(text)[:60]!r}", file=source, row=int(row),
                                field="scores") from None
            if not np.isfinite(s[i]).all():
                raise DataError("a score is NaN or inf", file=source, row=int(row), field="scores")
        return per_visit_metrics(y, s, float(thresholds[0]), self._ddi_matrix(subset, full)), float(thresholds[0])

    # ------------------------------------------------------------------ the contract

    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        values = self.per_visit(frame)
        n = len(values["order"])
        models: dict[str, dict[str, Any]] = {}
        for model, entry in values["models"].items():
            summary = summarise_runs(entry["runs"], values["groups"], n_boot=self.n_boot, seed=self.seed)
            models[model] = {"kind": entry["kind"], "splits": {"test": summary}, "n": {"test": n},
                             "seeds": len(entry["runs"]), "threshold": {"per_seed": entry["thresholds"]}}
        return models

    def comparisons(self, frame: pd.DataFrame, models: Mapping[str, Any]) -> list[dict[str, Any]]:
        from polymodal.evaluation.paired import compare_family, replicate_unit_means

        values = self.per_visit(frame)
        runs = {m: e["runs"] for m, e in values["models"].items()}
        kinds = {m: e["kind"] for m, e in values["models"].items()}
        rows: list[dict[str, Any]] = []
        for metric in COMPARED:
            reps = replicate_unit_means({m: [r[metric] for r in rs] for m, rs in runs.items()}, n_boot=self.n_boot,
                                        seed=self.seed, clusters=values["groups"], higher_is_better=True,
                                        name=metric)
            rows += compare_family(reps, self.headline, trivial=[m for m in runs if kinds[m] == "trivial"],
                                   learned=[m for m in runs if kinds[m] == "baseline"])
        return rows

    def evaluate(self, predictions: pd.DataFrame) -> dict[str, Any]:
        """The base tables (the first cohort is the headline table, every cohort under ``subsets``), plus
        each further cohort's paired comparisons (rows named ``"A vs B | COHORT"``, appended to
        ``comparisons``) and missing-modality table (``subset_robustness``)."""
        self._memo = {}
        out = super().evaluate(predictions)
        frame = self.check(predictions)
        subsets = list(dict.fromkeys(frame["subset"]))
        main = "all" if "all" in subsets else subsets[0]
        selection = out["selection"]["name"]
        robustness: dict[str, Any] = {}
        for subset in subsets:
            part = frame[frame["selection"].isin((selection, "")) & (frame["subset"] == subset)]
            none = part[part["condition"] == "none"]
            if subset != main and self.headline in set(none["model"]):
                models = out["subsets"][subset]
                for row in self.comparisons(none, models):
                    out.setdefault("comparisons", []).append({**row, "model": f"{row['model']} | {subset}",
                                                              "subset": subset})
            conditions = [c for c in dict.fromkeys(part["condition"]) if c != "none"]
            if conditions and self.headline in set(none["model"]):
                table = {"none": out["subsets"][subset][self.headline]["splits"]["test"] if "subsets" in out
                         else out["models"][self.headline]["splits"]["test"]}
                for condition in conditions:
                    rows = part[(part["condition"] == condition) & (part["model"] == self.headline)]
                    table[condition] = self.evaluate_models(rows)[self.headline]["splits"]["test"]
                robustness[subset] = table
        if robustness:
            out["subset_robustness"] = robustness
        self._memo = {}
        return out

    def report_sections(self, metrics: Mapping[str, Any]) -> list[str]:
        """One section per cohort after the headline one: its table, comparisons and robustness."""
        from polymodal.reports.markdown import render_markdown

        sections = []
        subsets = list(metrics.get("subsets") or {})
        for subset in subsets[1:]:
            part = {"recipe": metrics.get("recipe"), "task_spec": metrics.get("task_spec"),
                    "primary_metric": self.primary_metric, "models": metrics["subsets"][subset],
                    "comparisons": [{**r, "model": r["model"].removesuffix(f" | {subset}")}
                                    for r in metrics.get("comparisons") or [] if r.get("subset") == subset],
                    "robustness": (metrics.get("subset_robustness") or {}).get(subset)}
            body = render_markdown({k: v for k, v in part.items() if v}).split("\n", 1)[1]  # drop its title
            sections.append(f"## Cohort `{subset}`\n" + body.replace("\n## ", f"\n### [{subset}] "))
        return sections
