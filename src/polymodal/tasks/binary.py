"""Binary classification: a probability per sample; thresholds fitted on the selection split only.

predictions.csv columns beyond the common ones: ``y_true`` (0/1) and ``score`` (the positive-class
probability, continuous, so ROC-AUC and PR-AUC rank on it). For each model and seed the decision
threshold is chosen on that seed's ``valid`` rows (its selection split) and applied unchanged to its
``test`` rows; the test CI is a stratified bootstrap over samples, paired across seeds
(:func:`polymodal.evaluation.evaluate_binary`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from polymodal.evaluation.aggregate import evaluate_binary
from polymodal.evaluation.metrics import BINARY_METRICS
from polymodal.tasks.base import Task, per_seed

__all__ = ["BinaryTask"]


class BinaryTask(Task):
    """Binary outcome (trial success, lesion malignancy).

    Args:
        headline: the recipe's model name (robustness rows and comparisons are about it).
        selections: selection splits in report order; the first is the headline.
        threshold_rule: ``"max_f1"`` or ``"youden"``, applied to validation scores only.
        unit: what one bootstrap draw resamples (``"trial"``, ``"image"``); for the report.
    """

    name: ClassVar[str] = "binary"
    columns: ClassVar[tuple[str, ...]] = ("y_true", "score")
    primary_metric: ClassVar[str] = "roc_auc"
    #: metrics compared pairwise (continuous scores: no threshold enters the difference)
    compared: ClassVar[tuple[str, ...]] = ("roc_auc", "pr_auc")

    def __init__(self, *, threshold_rule: str = "max_f1", unit: str = "sample", **kwargs: Any) -> None:
        super().__init__(threshold_rule=threshold_rule, unit=unit, **kwargs)
        self.threshold_rule = threshold_rule
        self.unit = unit  # type: ignore[misc]  # an instance's own unit ("trial", "image")

    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        models: dict[str, dict[str, Any]] = {}
        for model, rows in frame.groupby("model", sort=False):
            _, y_val, val = per_seed(rows, "valid", "score", label="y_true")
            _, y_test, test = per_seed(rows, "test", "score", label="y_true")
            if len(val) != len(test):
                raise ValueError(f"model {model!r}: {len(val)} seeds have valid rows but {len(test)} test rows")
            result = evaluate_binary(np.asarray(y_val, dtype=np.float64), val, np.asarray(y_test, dtype=np.float64),
                                     test, threshold_rule=self.threshold_rule,  # type: ignore[arg-type]
                                     n_boot=self.n_boot, seed=self.seed)
            result["kind"] = str(rows["kind"].iloc[0])
            models[str(model)] = result
        return models

    def comparisons(self, frame: pd.DataFrame, models: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Paired bootstrap of differences on the test rows, stratified by class, seeds averaged
        inside each resample; every model's ids are aligned to the headline's order."""
        from polymodal.evaluation.paired import compare_family, replicate_metric

        test = frame[frame["split"] == "test"]
        head = test[test["model"] == self.headline]
        order, y, _ = per_seed(head, "test", "score", label="y_true")
        scores: dict[str, list[np.ndarray]] = {}
        for model, rows in test.groupby("model", sort=False):
            ids, _, values = per_seed(rows, "test", "score", label="y_true")
            if set(ids) != set(order):
                continue  # a model scored on other samples cannot be paired
            position = pd.Series(np.arange(len(ids)), index=ids).loc[order].to_numpy()
            scores[str(model)] = [v[position] for v in values]
        kinds = {m: str(r.get("kind")) for m, r in models.items()}
        rows: list[dict[str, Any]] = []
        y = np.asarray(y, dtype=np.float64)
        for metric in self.compared:
            reps = replicate_metric(BINARY_METRICS[metric], y, scores, n_boot=self.n_boot, seed=self.seed, strata=y)
            rows += compare_family(reps, self.headline,
                                   trivial=[m for m in scores if kinds.get(m) == "trivial"],
                                   learned=[m for m in scores if kinds.get(m) == "baseline"])
        return rows
