"""Top-k ranking (recommendation): one ranked list per user; metrics recomputed from the saved lists.

predictions.csv columns beyond the common ones (``id`` is the user id):

* ``relevant``: the user's held-out items of that split, space-separated item ids;
* ``ranked``: the model's top-K items, best first, space-separated (items the user interacted with
  in training are never ranked: full ranking over all other items).

Metrics per user (:mod:`polymodal.evaluation.ranking`, binary relevance): ``recall@k``, ``ndcg@k``,
``precision@k``, ``hr@k`` for each k in ``ks``; a model's value is the mean over users, averaged over
seeds. The bootstrap unit is the user: each resample draws users with replacement, the same draws for
every seed and every model, so differences between models are paired. ``comparisons`` hold the
headline model against every other model on the test split (two-sided bootstrap p-values, Holm-adjusted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from polymodal.errors import DataError
from polymodal.evaluation.aggregate import summarise
from polymodal.evaluation.ranking import metrics_from_hits
from polymodal.tasks.base import Task

__all__ = ["RankingTask", "hits_from_lists"]


def _items(text: Any) -> list[str]:
    return str(text).split() if isinstance(text, str) or not pd.isna(text) else []


def hits_from_lists(ranked: Sequence[Any], relevant: Sequence[Any], k: int,
                    source: str = "predictions.csv") -> tuple[np.ndarray, np.ndarray]:
    """(U, k) hit matrix and (U,) relevant counts from space-separated ranked and relevant item lists."""
    hits = np.zeros((len(ranked), k), dtype=bool)
    n_rel = np.zeros(len(ranked), dtype=np.int64)
    for row, (r, rel) in enumerate(zip(ranked, relevant, strict=True)):
        top, wanted = _items(r), set(_items(rel))
        if not wanted:
            raise DataError("a user row needs at least one relevant item", file=source, row=row + 1, field="relevant")
        if len(top) < k:
            raise DataError(f"{len(top)} ranked items, fewer than k={k}", file=source, row=row + 1, field="ranked")
        hits[row] = [t in wanted for t in top[:k]]
        n_rel[row] = len(wanted)
    return hits, n_rel


class RankingTask(Task):
    """Top-k item ranking for users (MovieLens and other implicit-feedback data).

    Args:
        headline: the recipe's model name.
        ks: list lengths of the metrics (the ranked lists hold ``max(ks)`` items).
        selections, n_boot, seed: as for every task.
    """

    name: ClassVar[str] = "ranking"
    columns: ClassVar[tuple[str, ...]] = ("relevant", "ranked")
    unit: ClassVar[str] = "user"
    primary_metric: ClassVar[str] = "recall@10"

    def __init__(self, *, ks: Sequence[int] = (10, 20), alpha: float = 0.05, **kwargs: Any) -> None:
        super().__init__(ks=list(ks), alpha=alpha, **kwargs)
        self.ks = tuple(int(k) for k in ks)
        self.alpha = float(alpha)

    def metric_names(self) -> list[str]:
        return [f"{m}@{k}" for k in self.ks for m in ("recall", "ndcg", "precision", "hr")]

    def _per_user(self, rows: pd.DataFrame) -> tuple[list[str], dict[int, dict[str, np.ndarray]]]:
        """Per seed, per-user metric arrays aligned to the first seed's user order."""
        seeds = sorted(rows["seed"].unique())
        order = list(rows[rows["seed"] == seeds[0]]["id"])
        out: dict[int, dict[str, np.ndarray]] = {}
        for seed in seeds:
            part = rows[rows["seed"] == seed].set_index("id")
            if part.index.has_duplicates or set(part.index) != set(order):
                model = rows["model"].iloc[0]
                raise DataError(f"model {model!r}, seed {seed}: users differ from seed {seeds[0]}'s or repeat",
                                field="id", file="predictions.csv")
            part = part.loc[order]
            hits, n_rel = hits_from_lists(part["ranked"].tolist(), part["relevant"].tolist(), max(self.ks))
            out[int(seed)] = metrics_from_hits(hits, n_rel, self.ks)
        return order, out

    def _summaries(self, per_seed: Mapping[int, Mapping[str, np.ndarray]], draws: np.ndarray | None
                   ) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for metric in self.metric_names():
            values = [float(v[metric].mean()) for v in per_seed.values()]
            stats = summarise(values)
            if draws is not None:
                # (B,) resampled means of the seed-averaged per-user values.
                mean_users = np.mean([v[metric] for v in per_seed.values()], axis=0)
                boot = mean_users[draws].mean(axis=1)
                stats["ci_low"], stats["ci_high"] = (float(np.quantile(boot, self.alpha / 2)),
                                                     float(np.quantile(boot, 1 - self.alpha / 2)))
            else:
                stats["ci_low"] = stats["ci_high"] = None
            result[metric] = stats
        return result

    def _draws(self, n: int) -> np.ndarray:
        return np.random.default_rng(self.seed).integers(0, n, size=(self.n_boot, n))

    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        models: dict[str, dict[str, Any]] = {}
        for model, rows in frame.groupby("model", sort=False):
            result: dict[str, Any] = {"kind": str(rows["kind"].iloc[0]), "splits": {}, "n": {}}
            for split in ("valid", "test"):
                part = rows[rows["split"] == split]
                if part.empty:
                    continue
                users, per_seed = self._per_user(part)
                draws = self._draws(len(users)) if split == "test" else None
                result["splits"][split] = self._summaries(per_seed, draws)
                result["n"][split] = len(users)
                result["seeds"] = len(per_seed)
            models[str(model)] = result
        return models

    def extra_metrics(self, predictions: pd.DataFrame) -> dict[str, Any]:
        """Paired bootstrap over users: headline minus every other model on the test split (headline subset)."""
        from statsmodels.stats.multitest import multipletests

        test = predictions[(predictions["split"] == "test") & (predictions["subset"] == "all")
                           & (predictions["condition"] == "none")]
        if self.headline not in set(test["model"]):
            return {}
        users, head = self._per_user(test[test["model"] == self.headline])
        draws = self._draws(len(users))
        comparisons = []
        for model, rows in test.groupby("model", sort=False):
            if model == self.headline:
                continue
            order, other = self._per_user(rows)
            if set(order) != set(users):
                continue  # a model scored on other users (a subset run) has no paired comparison
            pos = pd.Index(order).get_indexer(users)
            for metric in (f"recall@{self.ks[0]}", f"ndcg@{self.ks[0]}"):
                a = np.mean([v[metric] for v in head.values()], axis=0)
                b = np.mean([v[metric] for v in other.values()], axis=0)[pos]
                diff = a - b
                boot = diff[draws].mean(axis=1)
                p = float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))
                comparisons.append({"model": f"{self.headline} vs {model}", "metric": metric,
                                    "mean": float(diff.mean()), "ci_low": float(np.quantile(boot, self.alpha / 2)),
                                    "ci_high": float(np.quantile(boot, 1 - self.alpha / 2)), "p_value": p})
        if comparisons:
            adjusted = multipletests([c["p_value"] for c in comparisons], method="holm")[1]
            for c, p in zip(comparisons, adjusted, strict=True):
                c["p_adjusted"] = float(p)
                c["verdict"] = ("better" if c["ci_low"] > 0 else "worse" if c["ci_high"] < 0 else "no difference")
        return {"comparisons": comparisons}

    def report_sections(self, metrics: Mapping[str, Any]) -> list[str]:
        lines = ["## Ranking protocol", "",
                 "Full ranking over every item the user did not interact with in training; binary relevance; "
                 f"NDCG's ideal DCG over min(k, |held-out items|); 95% CIs from {self.n_boot} bootstrap resamples "
                 "of users (paired across models and seeds)."]
        comps = metrics.get("comparisons") or []
        if comps:
            lines += ["", "| comparison | metric | difference | 95% CI | p | p (Holm) | verdict |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {c['model']} | {c['metric']} | {c['mean']:+.4f} | [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] "
                      f"| {c['p_value']:.3g} | {c['p_adjusted']:.3g} | {c['verdict']} |" for c in comps]
        return ["\n".join(lines)]
