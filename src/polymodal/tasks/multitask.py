"""Multi-task classification: several label sets per sample, some missing (MEIJU-style emotion + intent).

predictions.csv columns beyond the common ones: ``dialogue`` (the bootstrap cluster; empty: the
row's own id), ``task`` (which label set the row is about), ``y_true`` (the class name, ``""`` when
the sample has no label for that task), ``y_pred`` (the predicted class name) and optionally
``probabilities`` (JSON object class -> probability; not used by the metrics). A sample appears once
per task it is predicted for.

Metrics per model and split, over seeds (mean, std, per seed) with a 95% bootstrap CI of the
seed-mean: ``weighted_f1_<task>`` (the MEIJU metric), ``macro_f1_<task>``, ``accuracy_<task>`` and
``meiju_score``, the challenge's joint score (harmonic mean of the tasks' weighted F1; see
:mod:`polymodal.evaluation.multitask`). Each metric of a task uses only rows with a label for it.

Bootstrap unit: the dialogue. Utterances of one dialogue share speakers, topic and, through the
context input, features, and their labels are correlated (emotions persist across turns), so
resampling utterances independently would understate the variance; the resample draws whole
dialogues (an utterance without a dialogue is its own cluster), the same draws for every model and
seed (paired). Comparisons: within each label budget (the ``[k%]`` suffix of the model name), the
budget's headline model against every other model of that budget, plus the task's ``pairs`` (an
ablation against its own reference), on ``meiju_score`` (test), with a bootstrap CI of the
difference and a two-sided bootstrap p-value, Holm-adjusted over the family.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from polymodal.errors import DataError
from polymodal.evaluation.aggregate import summarise
from polymodal.evaluation.multitask import cluster_weights, harmonic_score, task_metrics, weighted_task_metrics
from polymodal.tasks.base import Task

__all__ = ["MultiTaskClassification", "budget_of"]

_BUDGET = re.compile(r"\[([^\]]+)\]\s*$")
METRICS_PER_TASK = ("weighted_f1", "macro_f1", "accuracy")


def budget_of(model: str) -> str:
    """The ``[k%]`` suffix of a row name (``"meiju [10%]"`` -> ``"10%"``), ``""`` if none."""
    found = _BUDGET.search(model)
    return found.group(1) if found else ""


class MultiTaskClassification(Task):
    """Several classification tasks per sample, labels possibly missing.

    Args:
        headline: the recipe's row name prefix (``"meiju"``): in each budget, ``"<headline> [k%]"`` is
            compared with the other models of that budget.
        classes: task -> class names (the tasks, in report order).
        pairs: further comparisons ``(a, b)`` by row-name prefix, made within each budget (e.g.
            ``("meiju no PL", "meiju no PL, no cross-task")``: the cross-task ablation).
        selections, n_boot, seed: see :class:`Task`.
    """

    name: ClassVar[str] = "multitask"
    columns: ClassVar[tuple[str, ...]] = ("dialogue", "task", "y_true", "y_pred")
    unit: ClassVar[str] = "dialogue"
    primary_metric: ClassVar[str] = "meiju_score"

    def __init__(self, *, classes: Mapping[str, Sequence[str]], pairs: Sequence[Sequence[str]] = (),
                 **kwargs: Any) -> None:
        classes = {str(t): [str(c) for c in cs] for t, cs in classes.items()}
        pairs = [[str(a), str(b)] for a, b in pairs]
        super().__init__(classes=classes, pairs=pairs, **kwargs)
        self.classes = classes
        self.tasks = tuple(classes)
        self.pairs = pairs

    def check(self, predictions: pd.DataFrame, *, source: str = "predictions.csv") -> pd.DataFrame:
        frame = super().check(predictions, source=source)
        # A CSV round trip turns an empty y_true (no label) or dialogue into NaN: read them back as "".
        for col in ("dialogue", "task", "y_true", "y_pred"):
            frame[col] = frame[col].fillna("").astype(str)
        return frame

    # ------------------------------------------------------------------ arrays per (model, split)

    def _arrays(self, rows: pd.DataFrame, split: str, order: dict[str, pd.Index] | None
                ) -> tuple[dict[str, pd.Index], dict[str, np.ndarray], dict[str, list[np.ndarray]], list[int]]:
        """Per task: ids (labelled rows, first seed's order), true class indices, per-seed predictions."""
        part = rows[rows["split"] == split]
        model = str(rows["model"].iloc[0])
        seeds = sorted(part["seed"].unique())
        ids: dict[str, pd.Index] = {}
        truth: dict[str, np.ndarray] = {}
        preds: dict[str, list[np.ndarray]] = {}
        for task in self.tasks:
            lookup = {c: i for i, c in enumerate(self.classes[task])}
            these = part[(part["task"] == task) & (part["y_true"] != "")]
            preds[task] = []
            for seed in seeds:
                s = these[these["seed"] == seed].set_index("id")
                if s.index.has_duplicates:
                    raise DataError(f"model {model!r}, seed {seed}, task {task!r}: an id repeats in {split!r}",
                                    field="id")
                if task not in ids:
                    ids[task] = order[task] if order and task in order else pd.Index(s.index)
                    truth[task] = s.loc[ids[task], "y_true"].map(lookup).to_numpy()
                if len(s) != len(ids[task]) or not s.index.isin(ids[task]).all():
                    raise DataError(f"model {model!r}, seed {seed}, task {task!r}: its {split!r} ids differ",
                                    field="id")
                pred = s.loc[ids[task], "y_pred"].map(lookup)
                if pred.isna().any() or pd.isna(truth[task]).any():
                    raise DataError(f"model {model!r}, task {task!r}: a class outside {self.classes[task]}",
                                    field="y_pred")
                preds[task].append(pred.to_numpy(dtype=np.int64))
        return ids, truth, preds, seeds

    def _clusters(self, frame: pd.DataFrame, split: str, ids: dict[str, pd.Index]) -> dict[str, np.ndarray]:
        first = frame[frame["split"] == split].drop_duplicates("id").set_index("id")
        dialogue = first["dialogue"].fillna("").astype(str)
        out = {}
        for task, idx in ids.items():
            d = dialogue.loc[idx].to_numpy()
            out[task] = np.where(d == "", np.asarray(idx, dtype=str), d)
        return out

    # ------------------------------------------------------------------ the contract

    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        boots: dict[str, dict[str, np.ndarray]] = {}
        models: dict[str, dict[str, Any]] = {}
        orders: dict[str, dict[str, pd.Index]] = {}
        weights: dict[tuple[str, str], np.ndarray] = {}
        for model, rows in frame.groupby("model", sort=False):
            result: dict[str, Any] = {"kind": str(rows["kind"].iloc[0]), "splits": {}, "n": {}}
            for split in ("valid", "test"):
                if not (rows["split"] == split).any():
                    continue
                ids, truth, preds, seeds = self._arrays(rows, split, orders.get(split))
                orders.setdefault(split, ids)
                result["seeds"] = len(seeds)
                values: dict[str, list[float]] = {}
                boot: dict[str, np.ndarray] = {}
                for task in self.tasks:
                    if task not in ids:
                        continue
                    key = (split, task)
                    if key not in weights:
                        rng = np.random.default_rng(self.seed + (0 if split == "test" else 1) + 7 * len(weights))
                        weights[key] = cluster_weights(rng, self._clusters(frame, split, ids)[task], self.n_boot)
                    per = [task_metrics(truth[task], p, len(self.classes[task])) for p in preds[task]]
                    kernels = [weighted_task_metrics(truth[task], p, len(self.classes[task]), weights[key])
                               for p in preds[task]]
                    for name in METRICS_PER_TASK:
                        values[f"{name}_{task}"] = [m[name] for m in per]
                        boot[f"{name}_{task}"] = np.mean([k[name] for k in kernels], axis=0)  # (B,) seed-mean
                    result["n"][f"{split}_{task}"] = len(ids[task])
                present = [t for t in self.tasks if t in ids]
                if present:
                    values["meiju_score"] = [harmonic_score([values[f"weighted_f1_{t}"][k] for t in present])
                                             for k in range(len(seeds))]
                    per_seed_boot = []
                    for k in range(len(seeds)):
                        stack = np.stack([weighted_task_metrics(truth[t], preds[t][k], len(self.classes[t]),
                                                                weights[(split, t)])["weighted_f1"] for t in present])
                        per_seed_boot.append(len(present) / np.sum(1.0 / np.maximum(stack, 1e-12), axis=0))
                    boot["meiju_score"] = np.mean(per_seed_boot, axis=0)
                summary = {}
                for metric, vals in values.items():
                    s = summarise(vals)
                    low, high = np.nanquantile(boot[metric], [0.025, 0.975]) if metric in boot else (np.nan, np.nan)
                    summary[metric] = {**s, "ci_low": float(low), "ci_high": float(high)}
                result["splits"][split] = summary
                if split == "test":
                    boots[str(model)] = boot
            models[str(model)] = result
        if getattr(self, "_headline_boot", None) is None:  # the first group evaluate() hands over is the headline
            self._headline_boot = (models, boots)
        return models

    def evaluate(self, predictions: pd.DataFrame) -> dict[str, Any]:
        self._headline_boot: tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]] | None = None
        out = super().evaluate(predictions)
        if self._headline_boot is not None:
            out["comparisons"] = self.comparisons(*self._headline_boot)
        self._headline_boot = None
        return out

    def comparisons(self, models: Mapping[str, Any], boots: Mapping[str, Mapping[str, np.ndarray]]
                    ) -> list[dict[str, Any]]:
        """Paired comparisons on test ``meiju_score``: each budget's headline vs the budget's other models."""
        wanted: list[tuple[str, str, str]] = []
        for model in models:
            budget = budget_of(model)
            head = f"{self.headline} [{budget}]" if budget else self.headline
            wanted.append((head, model, budget))
            for a, b in self.pairs:
                if model == (f"{b} [{budget}]" if budget else b):
                    wanted.append((f"{a} [{budget}]" if budget else a, model, budget))
        comps = []
        for head, model, budget in wanted:
            if model == head or head not in boots or model not in boots:
                continue
            diff = boots[head]["meiju_score"] - boots[model]["meiju_score"]  # (B,) paired resamples
            point = (models[head]["splits"]["test"]["meiju_score"]["mean"]
                     - models[model]["splits"]["test"]["meiju_score"]["mean"])
            p = float(min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0))))
            low, high = np.nanquantile(diff, [0.025, 0.975])
            comps.append({"model": f"{head} vs {model}", "metric": "meiju_score", "mean": float(point),
                          "ci_low": float(low), "ci_high": float(high), "p_value": p, "budget": budget})
        if comps:
            adjusted = multipletests([c["p_value"] for c in comps], method="holm")[1]
            for c, a in zip(comps, adjusted, strict=True):
                c["p_adjusted"] = float(a)
                c["verdict"] = "better" if c["ci_low"] > 0 else "worse" if c["ci_high"] < 0 else "no difference"
        return comps

    def report_sections(self, metrics: Mapping[str, Any]) -> list[str]:
        """A label-budget table of the test meiju_score and weighted F1 per task."""
        models = metrics.get("models") or {}
        lines = ["## Test scores by label budget", "",
                 "| model | " + " | ".join(["meiju_score", *[f"weighted_f1_{t}" for t in self.tasks]]) + " |",
                 "|---|" + "---|" * (1 + len(self.tasks))]
        for name, result in models.items():
            test = (result.get("splits") or {}).get("test") or {}
            cells = []
            for metric in ["meiju_score", *[f"weighted_f1_{t}" for t in self.tasks]]:
                s = test.get(metric)
                cells.append(f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s else "")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return ["\n".join(lines)]
