"""``polymodal eval RUN``: recompute a finished run's metrics from its saved scores.

A run folder keeps every model's per-seed scores in ``predictions.csv`` (columns ``id, split,
model, seed, y_true, score, selection``). For each selection and model this module rebuilds the
per-seed arrays and calls :func:`evaluate_binary` again, exactly as the runner did: the
``"valid"`` rows are the selection split's scores and the only place thresholds come from; the
``"test"`` rows are scored with those thresholds. The protocol's knobs (threshold rule, bootstrap
size, alpha and seed) are read back from each model's entry in metrics.json, so an unchanged
evaluation code reproduces the run's numbers bit for bit, and a changed one updates them.

Everything else in metrics.json (dataset, timing, drift, published numbers) is kept. The
missing-modality table is kept too, except its ``"none"`` row, which is the recipe's test metrics
and is refreshed with them (the dropped-modality scores live in ``seed_K/scores.npz``, not in
predictions.csv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.errors import DataError, MissingDataError
from polymodal.evaluation.aggregate import evaluate_binary
from polymodal.io import read_run_json, write_json
from polymodal.reports import write_report

__all__ = ["PREDICTION_COLUMNS", "reevaluate"]

PREDICTION_COLUMNS = ("id", "split", "model", "seed", "y_true", "score")
SCORE_SPLITS = ("valid", "test")  # "valid" = the selection split of that row's selection


def reevaluate(run_dir: str | Path) -> dict[str, Any]:
    """Recompute every model's metrics per selection, rewrite metrics.json and report.md.

    Args:
        run_dir: a run folder written by ``polymodal run``.

    Returns:
        The updated metrics dict (the new content of metrics.json).

    Raises:
        MissingDataError: metrics.json or predictions.csv is absent (the message names it).
        DataError: either file is malformed (file, row and field where there is one).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MissingDataError(f"run folder {run_dir} does not exist")
    metrics_path, predictions_path = run_dir / "metrics.json", run_dir / "predictions.csv"
    metrics = read_run_json(metrics_path)
    predictions = _read_predictions(predictions_path)
    headline = _headline(metrics, predictions, metrics_path)

    old_selections: dict[str, Any] = metrics.get("selections") or {headline: metrics.get("models") or {}}
    selections: dict[str, dict[str, Any]] = {}
    for selection, frame in predictions.groupby("selection", sort=False):
        old = old_selections.get(str(selection)) or {}
        selections[str(selection)] = _evaluate_selection(frame, old, metrics, predictions_path)
    for selection, models in old_selections.items():  # a selection without predictions stays as it was
        selections.setdefault(selection, models)
    if headline not in selections:
        raise DataError(f"headline selection {headline!r} has no rows", file=predictions_path, field="selection")

    metrics["selections"] = selections
    metrics["models"] = selections[headline]
    _refresh_robustness(metrics)
    write_json(metrics_path, metrics)
    write_report(run_dir, metrics, predictions[predictions["selection"] == headline])
    return metrics


def _read_predictions(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise MissingDataError(f"{path} not found: the run folder is incomplete (an interrupted "
                               "`polymodal run` resumes when rerun with the same options)")
    try:
        # ids stay text (a numeric-looking id must not become 1.0); scores are parsed back exactly
        # (pandas writes repr() floats; its default fast parser can be one ulp off).
        frame = pd.read_csv(path, dtype={"id": str, "split": str, "model": str, "selection": str},
                            float_precision="round_trip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"malformed CSV: {err}", file=path) from None
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"header lacks column(s) {missing}; it has {list(frame.columns)}", file=path, field=missing[0])
    for column in ("seed", "y_true", "score"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise DataError(f"not a number: {frame[column].iloc[bad[0]]!r}", file=path, row=int(bad[0]) + 1,
                            field=column)
        frame[column] = values
    frame["seed"] = frame["seed"].astype(int)
    return frame


def _headline(metrics: dict[str, Any], predictions: pd.DataFrame, path: Path) -> str:
    """The selection whose models are ``metrics["models"]``: as recorded, else the only one there is.

    Predictions without a ``selection`` column (a run with one selection) get the headline's name.
    """
    name = (metrics.get("selection") or {}).get("name")
    if "selection" not in predictions.columns:
        predictions["selection"] = str(name or "valid")
    if name:
        return str(name)
    present = list(dict.fromkeys(predictions["selection"].astype(str)))
    if len(present) != 1:
        raise DataError(f"no selection.name and predictions hold several selections {present}", file=path,
                        field="selection")
    return present[0]


def _evaluate_selection(frame: pd.DataFrame, old_models: dict[str, Any], metrics: dict[str, Any],
                        path: Path) -> dict[str, Any]:
    """Every model of one selection, in the order the run wrote them."""
    models: dict[str, Any] = {}
    for model, rows in frame.groupby("model", sort=False):
        old = old_models.get(str(model)) or {}
        y_val, val = _per_seed(rows, "valid", path)
        y_test, test = _per_seed(rows, "test", path)
        if len(val) != len(test):
            raise DataError(f"model {model!r}: {len(val)} seeds have valid rows but {len(test)} have test rows",
                            file=path, field="seed")
        result = evaluate_binary(y_val, val, y_test, test, **_protocol_of(old))
        result["kind"] = old.get("kind") or ("recipe" if model == metrics.get("recipe") else "baseline")
        models[str(model)] = {**old, **result}  # keys the evaluation does not produce are kept
    return models


def _per_seed(rows: pd.DataFrame, split: str, path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels and per-seed scores of one split, every seed aligned to the first seed's row order.

    The first seed's order is the order the runner scored the records in, so keeping it reproduces
    the run's bootstrap resamples exactly.
    """
    part = rows[rows["split"] == split]
    model = rows["model"].iloc[0]
    if part.empty:
        raise DataError(f"model {model!r} has no {split!r} rows", file=path, field="split")
    seeds = sorted(part["seed"].unique())
    reference = part[part["seed"] == seeds[0]]
    order = pd.Index(reference["id"])
    if order.has_duplicates:
        raise DataError(f"model {model!r}, seed {seeds[0]}: id {order[order.duplicated()][0]!r} repeats in {split!r}",
                        file=path, field="id")
    y = reference["y_true"].to_numpy(dtype=np.float64)
    scores = []
    for seed in seeds:
        these = part[part["seed"] == seed].set_index("id")
        if these.index.has_duplicates or set(these.index) != set(order):
            raise DataError(f"model {model!r}, seed {seed}: its {split!r} ids differ from seed {seeds[0]}'s",
                            file=path, field="id")
        aligned = these.loc[order]
        if not np.array_equal(aligned["y_true"].to_numpy(dtype=np.float64), y):
            raise DataError(f"model {model!r}, seed {seed}: y_true differs from seed {seeds[0]}'s on {split!r}",
                            file=path, field="y_true")
        scores.append(aligned["score"].to_numpy(dtype=np.float64))
    return y, scores


def _protocol_of(old: dict[str, Any]) -> dict[str, Any]:
    """evaluate_binary's knobs as the run used them (its defaults for a model metrics.json lacks)."""
    threshold = old.get("threshold") or {}
    boot = old.get("bootstrap") or {}
    out: dict[str, Any] = {}
    if "rule" in threshold:
        out["threshold_rule"] = threshold["rule"]
    for key in ("n_boot", "alpha", "seed"):
        if boot.get(key) is not None:
            out[key] = boot[key]
    return out


def _refresh_robustness(metrics: dict[str, Any]) -> None:
    robustness = metrics.get("robustness")
    recipe = metrics["models"].get(metrics.get("recipe") or "")
    if isinstance(robustness, dict) and "none" in robustness and recipe is not None:
        robustness["none"] = recipe["splits"]["test"]
