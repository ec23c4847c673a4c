"""Ranking / retrieval: one row per (model, seed, split, query) with that query's metric values.

predictions.csv columns beyond the common ones: ``query`` (the query text, or a product id for
cross-modal retrieval), ``query_kind`` (``attribute``, ``name``, ``name-to-photo``, ``photo-to-name``),
``recall@10``, ``ndcg@10``, ``mrr`` (that query's values, from the full ranking the job computed; see
:mod:`polymodal.search.metrics`) and ``top10`` (the ranked product ids, space-separated, for the
exclusive-match analysis).

Statistics: per seed the mean over queries; the CI is a bootstrap over queries (the unit) of the
seed-averaged per-query values, and paired comparisons resample the same queries for both models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from polymodal.evaluation.aggregate import summarise
from polymodal.tasks.base import Task, per_seed

__all__ = ["RETRIEVAL_METRICS", "RetrievalTask", "paired_difference"]

RETRIEVAL_METRICS: tuple[str, ...] = ("recall@10", "ndcg@10", "mrr")


def _boot_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """Mean of a - b over queries, 95% bootstrap CI and a two-sided bootstrap p-value (paired by query)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    boots = d[_boot_indices(len(d), n_boot, seed)].mean(axis=1)
    # add-one so that a bootstrap with no resample on the other side gives p >= 2 / (B + 1), never 0
    below, above = int((boots <= 0).sum()), int((boots >= 0).sum())
    p = 2 * min(below + 1, above + 1) / (n_boot + 1)
    return {"mean": float(d.mean()), "ci_low": float(np.quantile(boots, 0.025)),
            "ci_high": float(np.quantile(boots, 0.975)), "p_value": min(1.0, p)}


class RetrievalTask(Task):
    """Text-to-product (and cross-modal) retrieval scored per query.

    Args:
        comparisons: (model A, model B) pairs compared on the test split (A - B, paired by query).
    """

    name: ClassVar[str] = "retrieval"
    columns: ClassVar[tuple[str, ...]] = ("query", "query_kind", *RETRIEVAL_METRICS, "top10")
    unit: ClassVar[str] = "query"
    primary_metric: ClassVar[str] = "ndcg@10"

    def __init__(self, *, comparisons: Sequence[Sequence[str]] = (), **kwargs: Any) -> None:
        super().__init__(comparisons=[list(c) for c in comparisons], **kwargs)
        self.pairs = [tuple(c) for c in comparisons]

    def _values(self, rows: pd.DataFrame, split: str) -> tuple[pd.Index, list[np.ndarray]]:
        ids, _, values = per_seed(rows, split, list(RETRIEVAL_METRICS))
        return ids, values  # per seed (Q, 3)

    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        models: dict[str, dict[str, Any]] = {}
        for model, rows in frame.groupby("model", sort=False):
            result: dict[str, Any] = {"kind": str(rows["kind"].iloc[0]), "splits": {}, "n": {},
                                      "seeds": int(rows["seed"].nunique())}
            for split in ("valid", "test"):
                if not (rows["split"] == split).any():
                    continue
                _, per = self._values(rows, split)
                stacked = np.stack(per)  # (S, Q, 3)
                avg = stacked.mean(axis=0)  # (Q, 3): seed-averaged per query
                boots = avg[_boot_indices(len(avg), self.n_boot, self.seed)].mean(axis=1)  # (B, 3)
                out = {}
                for j, metric in enumerate(RETRIEVAL_METRICS):
                    stats = summarise(stacked[:, :, j].mean(axis=1))
                    stats["ci_low"] = float(np.quantile(boots[:, j], 0.025))
                    stats["ci_high"] = float(np.quantile(boots[:, j], 0.975))
                    out[metric] = stats
                result["splits"][split] = out
                result["n"][split] = len(avg)
            models[str(model)] = result
        return models

    def extra_metrics(self, predictions: pd.DataFrame) -> dict[str, Any]:
        """Paired test-split comparisons (Holm-adjusted) and per-query-kind means."""
        test = predictions[(predictions["split"] == "test") & (predictions["condition"] == "none")
                           & (predictions["subset"] == "all")]
        rows = []
        for a, b in self.pairs:
            ra, rb = test[test["model"] == a], test[test["model"] == b]
            if ra.empty or rb.empty:
                continue
            ids_a, va = self._values(ra, "test")
            ids_b, vb = self._values(rb, "test")
            mean_a = pd.DataFrame(np.stack(va).mean(axis=0), index=ids_a)
            mean_b = pd.DataFrame(np.stack(vb).mean(axis=0), index=ids_b).loc[ids_a]
            for j, metric in enumerate(RETRIEVAL_METRICS):
                diff = paired_difference(mean_a[j].to_numpy(), mean_b[j].to_numpy(), self.n_boot, self.seed)
                verdict = ("better" if diff["ci_low"] > 0 else "worse" if diff["ci_high"] < 0
                           else "no detectable difference")
                rows.append({"model": f"{a} vs {b}", "a": a, "b": b, "metric": f"{metric}_diff", **diff,
                             "half_width": (diff["ci_high"] - diff["ci_low"]) / 2, "verdict": verdict,
                             "n_boot": self.n_boot, "n": len(ids_a)})
        if rows:
            from statsmodels.stats.multitest import multipletests

            adjusted = multipletests([r["p_value"] for r in rows], method="holm")[1]
            for r, p in zip(rows, adjusted, strict=True):
                r["p_adjusted"] = float(p)
        by_kind: dict[str, dict[str, dict[str, float]]] = {}
        for (model, kind), part in test.groupby(["model", "query_kind"], sort=False):
            by_kind.setdefault(str(kind), {})[str(model)] = {m: float(part[m].mean()) for m in RETRIEVAL_METRICS}
        return {"comparisons": rows, "by_query_kind": by_kind}

