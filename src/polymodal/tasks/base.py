"""The task contract: one class per task shape owns its statistics.

A run's per-sample outputs are one long table, ``predictions.csv``. Its common columns are
:data:`COMMON_COLUMNS`; each task adds its own (``Task.columns``). A task turns that table into
the metrics of ``metrics.json`` and nothing else does, so ``polymodal eval`` (which reads only the
table) reproduces a run's numbers exactly.

The common columns:

* ``model``: the row name in every table (``"mexa-ctp"``, ``"meiju [10%]"``, ``"tfidf-logistic"``);
* ``kind``: ``recipe``, ``baseline`` (learned), ``trivial``, ``ablation`` or ``control``;
* ``selection``: the selection split the model was early-stopped and thresholded on (``""`` if one);
* ``fold`` and ``seed``: integers (0 when the design has one fold);
* ``condition``: ``none``, or a test-time perturbation such as ``drop:criteria``;
* ``subset``: ``all``, or a reported part of the data (a cohort, a forecast cell, "with photo");
* ``split``: ``valid`` (the selection split: the only rows decisions are fitted on) or ``test``;
* ``id``: the sample's id (a trial, a patient, a window, a query, a user).

The base class groups the table by (selection, subset, condition) and hands each group to the
subclass's :meth:`Task.evaluate_models`; it assembles the headline (first selection, ``subset ==
"all"`` or the first subset, ``condition == "none"``), the other selections, the per-subset tables
and the robustness table (one row per condition of the headline model).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from polymodal.errors import DataError

__all__ = ["COMMON_COLUMNS", "KINDS", "Task", "check_columns", "flat_rows"]

COMMON_COLUMNS: tuple[str, ...] = ("model", "kind", "selection", "fold", "seed", "condition", "subset", "split", "id")
KINDS = ("recipe", "baseline", "trivial", "ablation", "control")
#: Text columns: read back as str so that an id like "007" or a selection "" survives the CSV round trip.
TEXT_COLUMNS = ("model", "kind", "selection", "condition", "subset", "split", "id")


class Task(ABC):
    """One task shape (binary, survival, multilabel, forecast, hierarchical, ranking, multi-task).

    Subclasses set the class attributes and implement :meth:`evaluate_models`. Constructor arguments
    are the task's parameters; :meth:`spec` returns them as JSON so that ``polymodal eval`` can rebuild
    the same task from ``config.json`` without running the recipe.

    Attributes:
        name: registry name of the shape (``"binary"``).
        columns: the task's own columns in predictions.csv.
        unit: what one bootstrap resample draws (``"trial"``, ``"patient"``, ``"window"`` ...).
        primary_metric: the metric tables lead with and selection uses.
    """

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    unit: ClassVar[str] = "sample"
    primary_metric: ClassVar[str]

    def __init__(self, *, headline: str, selections: Sequence[str] = ("",), n_boot: int = 1000, seed: int = 0,
                 **params: Any) -> None:
        if n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {n_boot}")
        self.headline = headline
        self.selections = tuple(selections)
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        self.params = dict(params)

    # ------------------------------------------------------------------ what subclasses implement

    @abstractmethod
    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Metrics of every model in one (selection, subset, condition) group.

        Args:
            frame: the predictions of that group (common + task columns, both splits).

        Returns:
            ``{model: {"kind": str, "splits": {"valid": {metric: summary}, "test": {metric: summary}},
            "n": {...}, ...}}`` where a summary is ``{"mean", "std", "ci_low", "ci_high", "per_seed"}``.
        """

    def report_sections(self, metrics: Mapping[str, Any]) -> list[str]:
        """Extra Markdown sections for the report (the generic ones are rendered by reports/)."""
        return []

    def extra_metrics(self, predictions: pd.DataFrame) -> dict[str, Any]:
        """Task-level results beyond the model tables (paired tests of a forecast cell, say)."""
        return {}

    def comparisons(self, frame: pd.DataFrame, models: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Paired comparisons on the headline group's test rows (see :mod:`polymodal.evaluation.paired`):
        the headline model against every model and every model against the best trivial and the
        best learned baseline, on the same resamples, p-values adjusted within each metric's family.
        A shape that supports them overrides this; the default has none."""
        return []

    # ------------------------------------------------------------------ the shared machinery

    def spec(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``type(self)(**task.spec())`` rebuilds the task."""
        return {"headline": self.headline, "selections": list(self.selections), "n_boot": self.n_boot,
                "seed": self.seed, **self.params}

    def check(self, predictions: pd.DataFrame, *, source: str = "predictions.csv") -> pd.DataFrame:
        """Validate the table's columns and values; returns it with normalised dtypes."""
        check_columns(predictions, (*COMMON_COLUMNS, *self.columns), source)
        frame = predictions.copy()
        for col in TEXT_COLUMNS:
            frame[col] = frame[col].fillna("").astype(str)
        for col in ("fold", "seed"):
            frame[col] = pd.to_numeric(frame[col], errors="raise").astype(int)
        bad_split = ~frame["split"].isin(("valid", "test"))
        if bad_split.any():
            row = int(np.flatnonzero(bad_split.to_numpy())[0]) + 1
            raise DataError(f"split must be 'valid' or 'test', got {frame['split'].iloc[row - 1]!r}",
                            file=source, row=row, field="split")
        bad_kind = ~frame["kind"].isin(KINDS)
        if bad_kind.any():
            row = int(np.flatnonzero(bad_kind.to_numpy())[0]) + 1
            raise DataError(f"kind must be one of {', '.join(KINDS)}, got {frame['kind'].iloc[row - 1]!r}",
                            file=source, row=row, field="kind")
        return frame

    def evaluate(self, predictions: pd.DataFrame) -> dict[str, Any]:
        """Every metric of metrics.json that comes from predictions (pure: same table, same numbers)."""
        frame = self.check(predictions)
        selections = [s for s in self.selections if s in set(frame["selection"])] or sorted(set(frame["selection"]))
        headline_sel = selections[0]
        subsets = list(dict.fromkeys(frame["subset"]))
        main_subset = "all" if "all" in subsets else subsets[0]
        out: dict[str, Any] = {"task": self.name, "task_spec": self.spec(), "primary_metric": self.primary_metric,
                               "bootstrap_unit": self.unit}
        by_selection: dict[str, Any] = {}
        for selection in selections:
            part = frame[(frame["selection"] == selection) & (frame["subset"] == main_subset)
                         & (frame["condition"] == "none")]
            # Models that have no selection split of their own (trivial baselines fitted once) appear
            # under every selection with selection "".
            shared = frame[(frame["selection"] == "") & (frame["subset"] == main_subset)
                           & (frame["condition"] == "none")] if selection != "" else frame.iloc[0:0]
            by_selection[selection] = self.evaluate_models(pd.concat([part, shared], ignore_index=True))
        out["models"] = by_selection[headline_sel]
        out["selection"] = {"name": headline_sel}
        headline_rows = frame[(frame["selection"].isin((headline_sel, ""))) & (frame["subset"] == main_subset)
                              & (frame["condition"] == "none")]
        if self.headline in out["models"]:
            out["comparisons"] = self.comparisons(headline_rows, out["models"])
        if len(selections) > 1:
            out["selections"] = by_selection
        if len(subsets) > 1:
            out["subsets"] = {}
            for subset in subsets:
                part = frame[(frame["selection"].isin((headline_sel, ""))) & (frame["subset"] == subset)
                             & (frame["condition"] == "none")]
                out["subsets"][subset] = self.evaluate_models(part)
        conditions = [c for c in dict.fromkeys(frame["condition"]) if c != "none"]
        if conditions and self.headline in out["models"]:
            robustness = {"none": out["models"][self.headline]["splits"]["test"]}
            for condition in conditions:
                part = frame[(frame["selection"] == headline_sel) & (frame["subset"] == main_subset)
                             & (frame["condition"] == condition) & (frame["model"] == self.headline)]
                if not part.empty:
                    robustness[condition] = self.evaluate_models(part)[self.headline]["splits"]["test"]
            out["robustness"] = robustness
        out.update(self.extra_metrics(frame))
        return out


def check_columns(frame: pd.DataFrame, required: Sequence[str], source: str) -> None:
    """Raise a DataError naming the file and the first missing column."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; present: {list(frame.columns)}", file=source,
                        field=missing[0])


def flat_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``--json`` rows: one per (model, split, metric) of the headline table, then one per
    (subset, model, split, metric), condition and paired comparison.

    Each row has ``model, split, metric, mean, std, ci_low, ci_high, seeds``, and (model, split,
    metric) is unique: a row of a subset is named ``"MODEL | SUBSET"`` and carries ``subset``, a row
    under a test-time condition ``"MODEL | CONDITION"`` with ``condition``; comparison rows are named
    ``"A vs B"`` and carry ``p_value`` and ``p_adjusted`` as well.
    """
    rows: list[dict[str, Any]] = []

    def add(models: Mapping[str, Any], suffix: str = "", **extra: Any) -> None:
        for name, result in models.items():
            for split, values in (result.get("splits") or {}).items():
                for metric, stats in (values or {}).items():
                    rows.append({"model": f"{name}{suffix}", "split": split, "metric": metric, **_stat_fields(stats),
                                 "seeds": result.get("seeds"), **extra})

    add(metrics.get("models") or {})
    for subset, models in (metrics.get("subsets") or {}).items():
        add(models, f" | {subset}", subset=subset)
    headline = (metrics.get("task_spec") or {}).get("headline")
    for condition, values in (metrics.get("robustness") or {}).items():
        if condition == "none":
            continue
        for metric, stats in values.items():
            rows.append({"model": f"{headline} | {condition}", "split": "test", "metric": metric,
                         **_stat_fields(stats), "condition": condition})
    for comp in metrics.get("comparisons") or []:
        rows.append({"split": "test", **{k: _finite(v) if isinstance(v, float) else v for k, v in comp.items()}})
    return rows


def _stat_fields(stats: Any) -> dict[str, Any]:
    if not isinstance(stats, Mapping):
        stats = {"mean": stats}
    return {k: _finite(stats.get(k)) for k in ("mean", "std", "ci_low", "ci_high")}


def _finite(x: Any) -> Any:
    if x is None:
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return x
    return value if math.isfinite(value) else None


def per_seed(rows: pd.DataFrame, split: str, value: str | Sequence[str], *, source: str = "predictions.csv",
             label: str | Sequence[str] | None = None) -> tuple[pd.Index, np.ndarray | None, list[np.ndarray]]:
    """One model's values of one split, one array per seed, all aligned to the first seed's id order.

    The first seed's order is the order the runner scored the samples in, so keeping it reproduces
    the run's bootstrap resamples exactly.

    Args:
        rows: one model's predictions (any number of seeds and folds; ids must be unique per seed).
        split: ``"valid"`` or ``"test"``.
        value: the column(s) holding the model's output (a list gives (N, C) arrays).
        label: the column(s) holding the truth, checked equal across seeds; ``None`` for none.

    Returns:
        ``(ids, labels or None, [values of seed 0, values of seed 1, ...])``.
    """
    part = rows[rows["split"] == split]
    model = rows["model"].iloc[0] if len(rows) else "?"
    if part.empty:
        raise DataError(f"model {model!r} has no {split!r} rows", file=source, field="split")
    seeds = sorted(part["seed"].unique())
    reference = part[part["seed"] == seeds[0]]
    order = pd.Index(reference["id"])
    if order.has_duplicates:
        raise DataError(f"model {model!r}, seed {seeds[0]}: id {order[order.duplicated()][0]!r} repeats in "
                        f"{split!r}", file=source, field="id")
    y = reference[label].to_numpy() if label is not None else None
    values = []
    for seed in seeds:
        these = part[part["seed"] == seed].set_index("id")
        if these.index.has_duplicates or len(these) != len(order) or not these.index.isin(order).all():
            raise DataError(f"model {model!r}, seed {seed}: its {split!r} ids differ from seed {seeds[0]}'s",
                            file=source, field="id")
        aligned = these.loc[order]
        if label is not None and not np.array_equal(aligned[label].to_numpy(), y):
            raise DataError(f"model {model!r}, seed {seed}: the truth differs from seed {seeds[0]}'s on {split!r}",
                            file=source, field=label if isinstance(label, str) else label[0])
        values.append(aligned[value].to_numpy(dtype=np.float64))
    return order, y, values
