"""``polymodal predict RUN --input users.csv --output recs.csv`` for the metammf recipe, and its timing table.

Input: a CSV with a ``user_id`` column. Output: one row per input row: ``id`` (the user id), ``rank``
1..k and ``item_id`` in long form would lose the one-row-per-input rule, so the k items are one
space-separated ``items`` column, best first, plus ``source`` (``"metammf"`` or ``"popularity"``).

Scores come from seed 0's MetaMMF embeddings saved by the run (``jobs/seed_0/metammf/embeddings.npz``,
plain float arrays) and exclude each user's training items (from the run's ``split.csv``). A user id
that the run never saw is an error naming the row, unless the run's config says
``unknown_users="popularity"``: then that user gets the training-popularity list (documented cold-start
fallback; ``source`` says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from polymodal.errors import DataError, MissingDataError
from polymodal.evaluation.ranking import top_k_items
from polymodal.io import read_run_json


class RankingPredictor:
    """Top-k items for given users from a finished metammf run."""

    def __init__(self, run_dir: Path, cache_dir: Path | None = None) -> None:
        self.run_dir = Path(run_dir)
        options = read_run_json(self.run_dir / "config.json").get("options", {})
        self.k = max(options.get("ks", [10, 20]))
        self.unknown = options.get("unknown_users", "error")
        split = pd.read_csv(self.run_dir / "split.csv")
        self.user_ids = np.unique(split["user_id"].to_numpy())
        self.item_ids = np.unique(split["item_id"].to_numpy())
        train = split[split["split"] == "train"]
        u = np.searchsorted(self.user_ids, train["user_id"].to_numpy())
        i = np.searchsorted(self.item_ids, train["item_id"].to_numpy())
        self.train = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)),
                                   shape=(len(self.user_ids), len(self.item_ids)))
        self.popular = np.argsort(-np.bincount(i, minlength=len(self.item_ids)), kind="stable")[: self.k]
        path = self.run_dir / "jobs" / "seed_0" / "metammf" / "embeddings.npz"
        if not path.is_file():
            raise MissingDataError(f"{path} not found: the run has no saved MetaMMF embeddings")
        with np.load(path, allow_pickle=False) as z:
            self.users_e, self.items_e = torch.as_tensor(z["users"]), torch.as_tensor(z["items"])
        self.skips: dict[str, Any] = {}

    def read_input(self, path: Path) -> pd.DataFrame:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "user_id" not in frame.columns:
            raise DataError(f"missing column (has {list(frame.columns)})", file=path, field="user_id")
        ids = pd.to_numeric(frame["user_id"], errors="coerce")
        bad = ids.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise DataError(f"not an integer user id: {frame['user_id'].iloc[row - 1]!r}", file=path, row=row,
                            field="user_id")
        out = pd.DataFrame({"user_id": ids.astype(np.int64)})
        unknown = ~np.isin(out["user_id"].to_numpy(), self.user_ids)
        if unknown.any() and self.unknown == "error":
            row = int(np.flatnonzero(unknown)[0]) + 1
            raise DataError(f"user {out['user_id'].iloc[row - 1]} is not in the run's training data "
                            "(run with unknown_users='popularity' for a popularity fallback)", file=path, row=row,
                            field="user_id")
        return out

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        ids = frame["user_id"].to_numpy(dtype=np.int64)
        known = np.isin(ids, self.user_ids)
        items = [" ".join(str(int(x)) for x in self.item_ids[self.popular])] * len(ids)
        source = np.where(known, "metammf", "popularity").astype(object)
        if known.any():
            idx = np.searchsorted(self.user_ids, ids[known])
            top = top_k_items(lambda u: self.users_e[u] @ self.items_e.T, idx, self.train, self.k)
            for j, row in zip(np.flatnonzero(known), top, strict=True):
                items[j] = " ".join(str(int(x)) for x in self.item_ids[row])
        if (~known).any():
            self.skips = {"unknown users given the popularity list": {"count": int((~known).sum()),
                                                                      "examples": [str(x) for x in ids[~known][:3]]}}
        return pd.DataFrame({"id": ids, "items": items, "source": source})

    def example_input(self, n: int = 5) -> pd.DataFrame:
        return pd.DataFrame({"user_id": self.user_ids[:n]})


def evaluate_timing(predictions: pd.DataFrame, tables: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Per model: training seconds, epochs and the cost of full ranking (users x items per second), over seeds."""
    timing = tables.get("timing")
    if timing is None or timing.empty:
        return {}
    out: dict[str, Any] = {}
    for model, rows in timing.groupby("model", sort=False):
        entry = {"seeds": len(rows)}
        for col in ("train_seconds", "epochs_run", "best_epoch", "rank_seconds", "rank_pairs_per_second"):
            if col in rows and rows[col].notna().any():
                entry[col] = float(rows[col].mean())
        out[str(model)] = entry
    return {"ranking_cost": out}
