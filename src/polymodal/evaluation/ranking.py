"""Top-k ranking metrics (pure, vectorised, one value per user) and full ranking over all items.

Definitions (binary relevance; the recommender-standard ones, as in MetaMMF/MMGCN/LightGCN code):

* ``precision@k = hits_k / k``
* ``recall@k = hits_k / |R_u|``  (R_u: the user's held-out items)
* ``hr@k = 1 if hits_k > 0 else 0``
* ``ndcg@k = DCG_k / IDCG_k`` with ``DCG_k = sum_{j<k} rel_j / log2(j + 2)`` and the ideal DCG over
  ``min(k, |R_u|)`` relevant items at the top.

These equal torchmetrics' ``retrieval_precision``, ``retrieval_recall``, ``retrieval_hit_rate`` and
``retrieval_normalized_dcg`` with ``top_k=k`` on binary targets (the tests check this); they are
written here over a (U, k) hit matrix because torchmetrics works one query at a time and full
ranking needs U x I scores that are cheaper to reduce to top-k hits first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

METRICS = ("recall", "ndcg", "precision", "hr")


def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """hits: (U, K>=k) bool, hits[u, j] = the j-th ranked item is relevant -> (U,) precision@k."""
    return hits[:, :k].sum(axis=1) / k


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """(U,) recall@k; n_relevant (U,) > 0."""
    return hits[:, :k].sum(axis=1) / n_relevant


def hit_rate_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """(U,) 1.0 where any of the top k is relevant."""
    return hits[:, :k].any(axis=1).astype(np.float64)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """(U,) NDCG@k with binary relevance; ideal DCG over min(k, n_relevant) items."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # (k,)
    dcg = (hits[:, :k] * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    return dcg / ideal


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int] = (10, 20)) -> dict[str, np.ndarray]:
    """Every metric at every k, per user: keys like ``"recall@10"`` -> (U,) float64."""
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(hits, n_relevant, k)
        out[f"ndcg@{k}"] = ndcg_at_k(hits, n_relevant, k)
        out[f"precision@{k}"] = precision_at_k(hits, k)
        out[f"hr@{k}"] = hit_rate_at_k(hits, k)
    return out


def top_k_items(score_users: Callable[[torch.Tensor], torch.Tensor], users: np.ndarray, exclude: sp.csr_matrix,
                k: int, batch_size: int = 1024) -> np.ndarray:
    """Full ranking: the k best-scored items per user among those not in ``exclude``.

    Args:
        score_users: user indices (B,) -> scores (B, I) over every item.
        users: (U,) user indices to rank for.
        exclude: (n_users, I) CSR of items never recommended to a user (their training items).
        k: list length.
        batch_size: users scored at once (memory B x I floats).

    Returns:
        (U, k) int64 item indices, best first.
    """
    out = np.empty((len(users), k), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            chunk = users[start:start + batch_size]
            scores = score_users(torch.as_tensor(chunk, dtype=torch.long)).float().clone()  # (B, I)
            sub = exclude[chunk].tocoo()
            scores[torch.as_tensor(sub.row, dtype=torch.long), torch.as_tensor(sub.col, dtype=torch.long)] = -torch.inf
            out[start:start + len(chunk)] = torch.topk(scores, k, dim=1).indices.numpy()
    return out


def hits_of(top: np.ndarray, users: np.ndarray, relevant: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(U, k) bool hit matrix and (U,) number of relevant items for ranked lists ``top`` of ``users``."""
    rel = relevant[users]
    hits = np.asarray(rel[np.repeat(np.arange(len(users)), top.shape[1]), top.ravel()]).reshape(top.shape) > 0
    return hits, np.asarray(rel.sum(axis=1)).ravel().astype(np.int64)


def evaluate_ranking(score_users: Callable[[torch.Tensor], torch.Tensor], exclude: sp.csr_matrix,
                     relevant: sp.csr_matrix, ks: Sequence[int] = (10, 20)) -> dict[str, np.ndarray]:
    """Per-user metrics for every user with at least one relevant item; adds ``"user"`` (indices)."""
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    top = top_k_items(score_users, users, exclude, max(ks))
    hits, n_rel = hits_of(top, users, relevant)
    out = metrics_from_hits(hits, n_rel, ks)
    out["user"] = users
    return out


def ranking_throughput(score_users: Callable[[torch.Tensor], torch.Tensor], n_users: int, n_items: int,
                       exclude: sp.csr_matrix, k: int = 20, repeats: int = 3) -> dict[str, float]:
    """Cost of full ranking: scoring, masking and top-k for every user; best of ``repeats`` wall times."""
    users = np.arange(n_users)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        top_k_items(score_users, users, exclude, k)
        best = min(best, time.perf_counter() - t0)
    return {"seconds": best, "users": n_users, "items": n_items, "pairs_per_second": n_users * n_items / best}
