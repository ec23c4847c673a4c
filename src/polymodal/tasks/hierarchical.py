"""Hierarchical multi-class classification: one label per taxonomy level per sample.

predictions.csv columns beyond the common ones (one row per sample and level):

* ``level``: the level's column name (``masterCategory``, ``subCategory``, ``articleType``);
* ``y_true``, ``y_pred``: labels; ``confidence``: the predicted label's probability;
* ``has_image``: whether the sample had a usable photo; ``rare``: the true label had fewer than the
  recipe's minimum of training examples (or none).

Metrics (per model and split, mean and std over seeds, test CIs by a bootstrap over samples paired
across seeds, :mod:`polymodal.evaluation.hierarchical_protocol`): ``accuracy_<level>``,
``macro_f1_<level>``, ``exact_match``, ``consistency`` (predicted path follows the training taxonomy),
``hierarchical_f1``. Beyond the headline table: the subsets ``with_photo``, ``without_photo`` and
``rare`` (from the flag columns) and paired comparisons of the headline model with every other model
(and any extra ``pairs``) on the samples they share, Holm-adjusted per metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pandas as pd

from polymodal.data.taxonomy import Taxonomy
from polymodal.evaluation.hierarchical_protocol import evaluate_hierarchical
from polymodal.tasks.base import Task

__all__ = ["HierarchicalTask"]

FLAG_SUBSETS = ("with_photo", "without_photo", "rare")


def _bool(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    return series.astype(str).str.lower().isin(("true", "1", "1.0"))


def _nest(metrics: pd.DataFrame, subset: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    part = metrics[metrics.subset == subset] if not metrics.empty else metrics
    for model, rows in part.groupby("model", sort=False):
        entry: dict[str, Any] = {"kind": str(rows["kind"].iloc[0]), "splits": {}, "n": {}}
        for split, srows in rows.groupby("split", sort=False):
            entry["splits"][split] = {
                r.metric: {"mean": r["mean"], "std": r["std"], "ci_low": None if pd.isna(r.ci_low) else r.ci_low,
                           "ci_high": None if pd.isna(r.ci_high) else r.ci_high, "per_seed": list(r.per_seed)}
                for _, r in srows.iterrows()}
            entry["n"][split] = int(srows["n"].iloc[0])
            entry["seeds"] = len(srows["per_seed"].iloc[0])
        out[str(model)] = entry
    return out


class HierarchicalTask(Task):
    """Hierarchical classification over a fixed taxonomy.

    Args:
        taxonomy: :meth:`Taxonomy.to_dict` of the training taxonomy (levels, classes, edges, counts).
        pairs: extra (model, versus) comparisons beyond headline-vs-every-model.
        headline, selections, n_boot, seed: see :class:`~polymodal.tasks.base.Task`.
    """

    name: ClassVar[str] = "hierarchical"
    columns: ClassVar[tuple[str, ...]] = ("level", "y_true", "y_pred", "confidence", "has_image", "rare")
    unit: ClassVar[str] = "product"
    primary_metric: ClassVar[str] = "exact_match"

    def __init__(self, *, taxonomy: Mapping[str, Any], pairs: Sequence[Sequence[str]] = (), **kwargs: Any) -> None:
        super().__init__(taxonomy=dict(taxonomy), pairs=[list(p) for p in pairs], **kwargs)
        self.taxonomy = Taxonomy.from_dict(dict(taxonomy))
        self.pairs = [tuple(p) for p in pairs]

    def check(self, predictions: pd.DataFrame, *, source: str = "predictions.csv") -> pd.DataFrame:
        frame = super().check(predictions, source=source)
        for col in ("level", "y_true", "y_pred"):
            frame[col] = frame[col].fillna("").astype(str)
        for col in ("has_image", "rare"):
            frame[col] = _bool(frame[col])
        frame["confidence"] = pd.to_numeric(frame["confidence"], errors="raise").astype(float)
        return frame

    def _evaluate(self, frame: pd.DataFrame, subsets: Sequence[str],
                  compare: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
        return evaluate_hierarchical(frame, self.taxonomy, n_boot=self.n_boot, seed=self.seed, subsets=subsets,
                                     compare=compare, reference=self.headline if compare else None,
                                     pairs=self.pairs if compare else ())

    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        if frame.empty:
            return {}
        metrics, _ = self._evaluate(frame, ("all",), compare=False)
        return _nest(metrics, "all")

    def extra_metrics(self, predictions: pd.DataFrame) -> dict[str, Any]:
        """The photo / rare subsets and the paired comparisons (headline selection, no test-time condition)."""
        selection = self.selections[0] if self.selections else ""
        frame = predictions[(predictions["condition"] == "none") & (predictions["subset"] == "all")
                            & predictions["selection"].isin((selection, ""))]
        if frame.empty:
            return {}
        metrics, comp = self._evaluate(frame, FLAG_SUBSETS, compare=True)
        comparisons = []
        for _, r in comp.iterrows():
            comparisons.append({"model": f"{r.model} vs {r.versus}", "metric": r.metric, "subset": r.subset,
                                "mean": float(r["diff"]), "ci_low": float(r.ci_low), "ci_high": float(r.ci_high),
                                "p_value": float(r.p_value), "p_adjusted": float(r.p_holm), "verdict": r.verdict,
                                "n": int(r.n)})
        return {"subsets": {s: _nest(metrics, s) for s in FLAG_SUBSETS if not metrics.empty
                            and (metrics.subset == s).any()},
                "comparisons": comparisons,
                "taxonomy_summary": {"levels": list(self.taxonomy.levels), "sizes": list(self.taxonomy.sizes),
                                     "multi_parent": self.taxonomy.multi_parent()}}

    def report_sections(self, metrics: Mapping[str, Any]) -> list[str]:
        """Test tables of the photo / rare subsets, then the paired comparisons."""
        sections = []
        shown = ("accuracy_masterCategory", "accuracy_subCategory", "accuracy_articleType", "macro_f1_articleType",
                 "exact_match", "consistency", "hierarchical_f1")
        for subset, models in (metrics.get("subsets") or {}).items():
            lines = [f"## Test, subset {subset}", "", "| model | kind | n | " + " | ".join(shown) + " |",
                     "|" + "---|" * (len(shown) + 3)]
            for model, res in models.items():
                test = res["splits"].get("test", {})
                cells = [f"{test[m]['mean']:.4f}" + (f" ({test[m]['ci_low']:.4f}-{test[m]['ci_high']:.4f})"
                                                     if test[m].get("ci_low") is not None else "")
                         if m in test else "" for m in shown]
                lines.append(f"| {model} | {res['kind']} | {res['n'].get('test', '')} | " + " | ".join(cells) + " |")
            sections.append("\n".join(lines))
        comps = metrics.get("comparisons") or []
        if not comps:
            return sections
        lines = ["## Paired comparisons (test; difference of seed means, 95% bootstrap CI, Holm per metric)", "",
                 "| comparison | subset | metric | diff | 95% CI | p (Holm) | verdict | n |", "|" + "---|" * 8]
        for c in comps:
            lines.append(f"| {c['model']} | {c['subset']} | {c['metric']} | {c['mean']:+.4f} | "
                         f"{c['ci_low']:+.4f} to {c['ci_high']:+.4f} | {c['p_value']:.3g} ({c['p_adjusted']:.3g}) | "
                         f"{c['verdict']} | {c['n']} |")
        return [*sections, "\n".join(lines)]
