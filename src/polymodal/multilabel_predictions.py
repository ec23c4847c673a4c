"""The multilabel run folder's ``predictions.csv``: written by the runner, read back by ``polymodal eval``.

One row per (cohort, model, test-time condition, repeat, seed, fold, test visit):

``cohort, model, condition, repeat, seed, fold, subject_id, hadm_id, threshold, true_set, predicted_set, scores``

* ``condition`` is ``none`` or ``drop:MODALITY`` (the missing-modality rows of the recipe);
* ``threshold`` is the set threshold chosen on that fold's validation visits (never on test);
* ``true_set`` / ``predicted_set`` are ATC3 codes joined by ``;`` (``predicted_set`` = scores >= threshold);
* ``scores`` are the per-medication scores joined by ``;`` in the cohort's label order, which
  ``metrics.json["cohorts"][COHORT]["labels"]`` lists (the cohorts have different label sets).

Scores are rounded to 9 decimals *before* any metric is computed, and the runner computes its
metrics from this very table with :func:`summarise_predictions`, so ``polymodal eval RUN``
(:func:`reevaluate`) reproduces a run's numbers exactly without retraining, and updates them
when the evaluation code changes. Only test rows are stored: the thresholds were already chosen
on validation folds during the run, and PR-AUC needs no threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.errors import DataError, MissingDataError
from polymodal.io import read_run_json, write_json, write_text
from polymodal.tasks.multilabel import per_visit_metrics, summarise_runs

__all__ = ["PREDICTION_COLUMNS", "PredictionLog", "reevaluate", "summarise_predictions"]

PREDICTION_COLUMNS = ("cohort", "model", "condition", "repeat", "seed", "fold", "subject_id", "hadm_id",
                      "threshold", "true_set", "predicted_set", "scores")
SCORE_DECIMALS = 9  # enough for every tie-breaker the baselines use (>= 1e-8), short enough for the CSV


def _join(values: np.ndarray) -> str:
    return ";".join(repr(float(v)) for v in values)


class PredictionLog:
    """Collects test-visit predictions fold by fold; ``frame()`` gives the predictions.csv table."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []

    def add(self, *, cohort: str, model: str, condition: str, repeat: int, seed: int, fold: int,
            subjects: Sequence[int], hadm_ids: Sequence[int], labels: Sequence[str], y_true: np.ndarray,
            scores: np.ndarray, threshold: float) -> None:
        """Log one fold's test visits. ``scores``: (n, L) in ``labels`` order; ``y_true``: (n, L) 0/1."""
        rounded = np.round(np.asarray(scores, dtype=np.float64), SCORE_DECIMALS)
        names = np.asarray(labels)
        for i, (subject, hadm) in enumerate(zip(subjects, hadm_ids, strict=True)):
            self._rows.append({
                "cohort": cohort, "model": model, "condition": condition, "repeat": repeat, "seed": seed,
                "fold": fold, "subject_id": int(subject), "hadm_id": int(hadm), "threshold": float(threshold),
                "true_set": ";".join(names[y_true[i] > 0]), "predicted_set": ";".join(names[rounded[i] >= threshold]),
                "scores": _join(rounded[i])})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=list(PREDICTION_COLUMNS))


def _true_sets(frame: pd.DataFrame, labels: Sequence[str], path: Path) -> np.ndarray:
    index = {label: j for j, label in enumerate(labels)}
    y = np.zeros((len(frame), len(labels)))
    for i, (row, text) in enumerate(zip(frame["_row"], frame["true_set"], strict=True)):
        for code in str(text).split(";") if isinstance(text, str) and text else []:
            if code not in index:
                raise DataError(f"medication {code!r} is not one of the cohort's labels", file=path, row=int(row),
                                field="true_set")
            y[i, index[code]] = 1.0
    return y


def _scores(frame: pd.DataFrame, labels: Sequence[str], path: Path) -> np.ndarray:
    out = np.zeros((len(frame), len(labels)))
    for i, (row, text) in enumerate(zip(frame["_row"], frame["scores"], strict=True)):
        parts = str(text).split(";")
        if len(parts) != len(labels):
            raise DataError(f"{len(parts)} scores for {len(labels)} labels", file=path, row=int(row), field="scores")
        try:
            out[i] = [float(p) for p in parts]
        except ValueError:
            raise DataError(f"not a number in {str(text)[:60]!r}", file=path, row=int(row), field="scores") from None
    if not np.isfinite(out).all():
        bad = int(frame["_row"].iloc[int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])])
        raise DataError("a score is NaN or inf", file=path, row=bad, field="scores")
    return out


def summarise_predictions(frame: pd.DataFrame, labels: Sequence[str], ddi: np.ndarray, kinds: Mapping[str, str], *,
                          n_boot: int, path: Path = Path("predictions.csv")) -> tuple[dict[str, Any], dict[str, Any]]:
    """One cohort's model table and missing-modality table from its prediction rows.

    Every (repeat, seed) of a (model, condition) is one run that must cover every visit once; the
    metrics are the run-mean of the visit-averaged metrics with a patient-bootstrap CI paired
    across runs (:func:`~polymodal.tasks.multilabel.summarise_runs`).

    Args:
        frame: the cohort's rows of predictions.csv (a ``_row`` column, 1-based CSV row, is optional).
        labels: the cohort's label order. ddi: (L, L) adjacency. kinds: model -> recipe/baseline/trivial.
        n_boot: bootstrap resamples. path: named in errors.

    Returns:
        ``(models, robustness)`` shaped as in metrics.json.
    """
    if "_row" not in frame.columns:
        frame = frame.assign(_row=np.arange(1, len(frame) + 1))
    visits = frame[["hadm_id", "subject_id"]].drop_duplicates().sort_values("hadm_id")
    if visits["hadm_id"].duplicated().any():
        hadm = visits.loc[visits["hadm_id"].duplicated(), "hadm_id"].iloc[0]
        raise DataError(f"visit {hadm} appears under two subject ids", file=path, field="subject_id")
    order = pd.Index(visits["hadm_id"])
    groups = visits["subject_id"].to_numpy()
    summaries: dict[tuple[str, str], dict[str, Any]] = {}
    thresholds: dict[tuple[str, str], list[float]] = {}
    y_all = _true_sets(frame, labels, path)
    scores_all = _scores(frame, labels, path)
    position = {key: i for i, key in enumerate(frame.index)}
    for (model, condition), rows in frame.groupby(["model", "condition"], sort=False):
        runs, run_thresholds = [], []
        for (repeat, seed), run in rows.groupby(["repeat", "seed"], sort=True):
            where = order.get_indexer(run["hadm_id"])
            if len(run) != len(order) or sorted(where) != list(range(len(order))):
                raise DataError(f"model {model!r} ({condition}), repeat {repeat}, seed {seed}: {len(run)} rows, "
                                f"but every one of the {len(order)} visits must be tested exactly once",
                                file=path, row=int(run["_row"].iloc[0]), field="hadm_id")
            values: dict[str, np.ndarray] = {}
            for _, part in run.groupby("fold", sort=True):
                thr = part["threshold"].unique()
                if len(thr) != 1:
                    raise DataError("one fold has several thresholds", file=path, row=int(part["_row"].iloc[0]),
                                    field="threshold")
                rows_at = [position[k] for k in part.index]
                pv = per_visit_metrics(y_all[rows_at], scores_all[rows_at], float(thr[0]), ddi)
                for key, v in pv.items():
                    values.setdefault(key, np.zeros(len(order)))[order.get_indexer(part["hadm_id"])] = v
            runs.append(values)
            run_thresholds.append(float(run.groupby("fold")["threshold"].first().mean()))
        summaries[(str(model), str(condition))] = summarise_runs(runs, groups, n_boot=n_boot)
        thresholds[(str(model), str(condition))] = run_thresholds
    models = {}
    rank = {name: i for i, name in enumerate(kinds)}  # the runner's order: recipe, literature, simple baselines
    for (model, condition), summary in sorted(summaries.items(), key=lambda kv: rank.get(kv[0][0], len(rank))):
        if condition != "none":
            continue
        n_runs = len(thresholds[(model, condition)])
        models[model] = {"kind": kinds.get(model, "baseline"), "splits": {"test": summary},
                         "n": {"test": len(order)}, "seeds": n_runs,
                         "threshold": {"per_seed": thresholds[(model, condition)]}}
    robustness: dict[str, Any] = {}
    conditions = {c: s for (m, c), s in summaries.items() if c != "none"}
    recipe = next((m for m, k in kinds.items() if k == "recipe"), None)
    if conditions and recipe in models:
        robustness["none"] = models[recipe]["splits"]["test"]
        robustness.update(conditions)
    return models, robustness


def read_predictions(path: Path) -> pd.DataFrame:
    """predictions.csv with its columns checked; a ``_row`` column holds each row's 1-based CSV row."""
    if not path.is_file():
        raise MissingDataError(f"{path} not found: the run folder is incomplete (rerun `polymodal run`)")
    try:
        # every column as text: ids stay exact, and thresholds are parsed with float() below (pandas'
        # fast float parser can be one ulp off the repr() the runner wrote)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"malformed CSV: {err}", file=path) from None
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"header lacks column(s) {missing}; it has {list(frame.columns)}", file=path, field=missing[0])
    for column in ("repeat", "seed", "fold", "subject_id", "hadm_id", "threshold"):
        parse = float if column == "threshold" else int
        values = []
        for i, text in enumerate(frame[column]):
            try:
                values.append(parse(text))
            except ValueError:
                raise DataError(f"not a number: {text!r}", file=path, row=i + 1, field=column) from None
        frame[column] = values
    frame["_row"] = np.arange(1, len(frame) + 1)
    return frame


def reevaluate(run_dir: str | Path, render: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """``polymodal eval RUN`` for a multilabel run: recompute every cohort's tables from predictions.csv.

    Labels, the DDI matrix, model kinds and the bootstrap size come from the run folder
    (metrics.json, ``COHORT/medications.npz``, config.json); everything else in metrics.json is kept.

    Args:
        run_dir: the run folder. render: metrics -> report.md text (the recipe's renderer).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MissingDataError(f"run folder {run_dir} does not exist")
    metrics_path, path = run_dir / "metrics.json", run_dir / "predictions.csv"
    metrics = read_run_json(metrics_path)
    n_boot = int((read_run_json(run_dir / "config.json").get("protocol") or {}).get("n_boot", 1000))
    frame = read_predictions(path)
    cohorts = metrics.get("cohorts") or {}
    for name, rows in frame.groupby("cohort", sort=False):
        if name not in cohorts:
            raise DataError(f"cohort {name!r} is not in metrics.json", file=path, row=int(rows["_row"].iloc[0]),
                            field="cohort")
        cohort = cohorts[name]
        npz = run_dir / name / "medications.npz"
        if not npz.is_file():
            raise MissingDataError(f"{npz} not found: the run folder is incomplete")
        with np.load(npz) as saved:
            ddi = saved["ddi"]
        kinds = {m: v.get("kind", "baseline") for m, v in (cohort.get("models") or {}).items()}
        models, robustness = summarise_predictions(rows, cohort["labels"], ddi, kinds, n_boot=n_boot, path=path)
        for model, entry in models.items():  # keys the evaluation does not produce are kept
            cohort["models"][model] = {**cohort["models"].get(model, {}), **entry}
        if robustness:
            cohort["robustness"] = robustness
    metrics["models"] = {f"{m} [{c}]": v for c, cm in cohorts.items() for m, v in cm["models"].items()}
    write_json(metrics_path, metrics)
    write_text(run_dir / "report.md", render(metrics))
    return metrics
