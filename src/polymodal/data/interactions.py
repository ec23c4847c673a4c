"""Implicit-feedback interactions: contiguous indices, a seeded per-user random split, saved and reloaded.

The split follows MetaMMF's protocol: every (user, item) interaction is a positive; each user's
interactions are shuffled with one seeded generator and cut 80/10/10 into train / valid / test.
A user with n interactions gets ``floor(0.1 n)`` validation and ``floor(0.1 n)`` test items but at
least one of each when n >= 3 (users with fewer stay entirely in train, and are counted), so the
ranking metrics are defined for every evaluated user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from polymodal.errors import DataError
from polymodal.io import atomic_path

SPLITS = ("train", "valid", "test")


@dataclass
class InteractionSplit:
    """Users and items as contiguous indices, and which interactions fall in which split.

    Attributes:
        user_ids: (U,) original user id of each user index.
        item_ids: (I,) original item id of each item index (the ranking candidates).
        frame: one row per interaction: ``user``, ``item`` (indices), ``user_id``, ``item_id``, ``split``.
        actions: what the splitter did (users too small to evaluate).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    frame: pd.DataFrame
    actions: list[str] = field(default_factory=list)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def pairs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) index arrays of one split."""
        part = self.frame[self.frame["split"] == split]
        return part["user"].to_numpy(np.int64), part["item"].to_numpy(np.int64)

    def matrix(self, split: str) -> sp.csr_matrix:
        """(U, I) binary CSR matrix of one split's interactions."""
        u, i = self.pairs(split)
        return sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(self.n_users, self.n_items))

    def item_train_counts(self) -> np.ndarray:
        """(I,) training interactions per item (the popularity baseline and the cold-start cut)."""
        _, i = self.pairs("train")
        return np.bincount(i, minlength=self.n_items)

    def save(self, path: str | Path) -> None:
        """Write the split as CSV (user_id, item_id, split), atomically."""
        with atomic_path(path) as tmp:
            self.frame[["user_id", "item_id", "split"]].to_csv(tmp, index=False)


def index_interactions(interactions: pd.DataFrame, item_ids: np.ndarray | None = None) -> InteractionSplit:
    """Contiguous user/item indices for a frame with ``user_id`` and ``item_id`` (split column unset)."""
    user_ids = np.unique(interactions["user_id"].to_numpy())
    items = np.unique(interactions["item_id"].to_numpy()) if item_ids is None else np.asarray(item_ids)
    frame = pd.DataFrame({"user_id": interactions["user_id"].to_numpy(), "item_id": interactions["item_id"].to_numpy()})
    frame["user"] = np.searchsorted(user_ids, frame["user_id"].to_numpy())
    frame["item"] = pd.Index(items).get_indexer(frame["item_id"].to_numpy())
    if (frame["item"] < 0).any():
        raise ValueError("interactions name items outside item_ids")
    frame["split"] = "train"
    return InteractionSplit(user_ids, items, frame)


def per_user_split(interactions: pd.DataFrame, seed: int, valid_frac: float = 0.1, test_frac: float = 0.1,
                   ) -> InteractionSplit:
    """Seeded per-user random train / valid / test split of implicit interactions.

    Args:
        interactions: columns ``user_id``, ``item_id`` (one row per distinct pair).
        seed: the generator seed; the same seed and input give the same split.
        valid_frac, test_frac: shares of each user's interactions (floored, at least 1 when n >= 3).

    Returns:
        The indexed split; the candidate items are every item with at least one interaction.
    """
    out = index_interactions(interactions)
    rng = np.random.default_rng(seed)
    frame = out.frame.sort_values(["user", "item"], kind="stable").reset_index(drop=True)
    # One random key per row, then rank within user: a per-user permutation without a Python loop.
    frame["_key"] = rng.random(len(frame))
    frame["_rank"] = frame.groupby("user")["_key"].rank(method="first").astype(np.int64) - 1
    n = frame.groupby("user")["user"].transform("size").to_numpy()
    n_val = np.where(n >= 3, np.maximum(1, np.floor(valid_frac * n)), 0).astype(np.int64)
    n_test = np.where(n >= 3, np.maximum(1, np.floor(test_frac * n)), 0).astype(np.int64)
    rank = frame["_rank"].to_numpy()
    split = np.full(len(frame), "train", dtype=object)
    split[rank < n_test] = "test"
    split[(rank >= n_test) & (rank < n_test + n_val)] = "valid"
    frame["split"] = split
    out.frame = frame.drop(columns=["_key", "_rank"])
    small = int((frame.groupby("user")["user"].size() < 3).sum())
    if small:
        out.actions.append(f"{small} users with fewer than 3 interactions kept in train only (not evaluated)")
    counts = out.frame["split"].value_counts()
    out.actions.append("split (seed {}): {}".format(seed, ", ".join(f"{s} {int(counts.get(s, 0))}" for s in SPLITS)))
    return out


def load_split(path: str | Path) -> InteractionSplit:
    """Read a split written by :meth:`InteractionSplit.save` (so a run never recomputes it differently)."""
    path = Path(path)
    frame = pd.read_csv(path)
    for col in ("user_id", "item_id", "split"):
        if col not in frame.columns:
            raise DataError("missing column", file=path, field=col)
    bad = ~frame["split"].isin(SPLITS).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"split must be one of {SPLITS}, got {frame['split'].iloc[i]!r}", file=path, row=i + 1,
                        field="split")
    out = index_interactions(frame)
    out.frame["split"] = frame["split"].to_numpy()
    return out
