"""Ranking metrics over a score matrix and graded relevance: recall@k, nDCG@k, MRR (one value per query).

Inputs are ``scores`` (Q, N), higher is better, and ``relevance`` (Q, N) non-negative grades. Ranking
sorts by score, ties broken by item index (stable), so the results are deterministic.

* ``recall@k``: of the query's *fully* relevant items (grade equal to the query's maximum grade),
  the share in the top k, capped: ``hits / min(k, n_full)``. Capping makes 1.0 reachable for an
  attribute query that matches hundreds of products; for a single-target query it is hit@k.
* ``ndcg@k``: linear gain = grade, log2 discount, ideal ordering over all N items, ranking as above
  (scikit-learn's ``ndcg_score`` with ``ignore_ties=True``, vectorised; a test checks they agree).
* ``mrr``: 1 / rank of the first fully relevant item in the full ranking (no cut-off).

A query with no relevant item has no defined value; callers drop such queries before scoring.
"""

from __future__ import annotations

import numpy as np


def _check(scores: np.ndarray, relevance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(relevance, dtype=np.float64)
    if s.ndim != 2 or s.shape != r.shape:
        raise ValueError(f"scores and relevance must both be (Q, N), got {s.shape} and {r.shape}")
    if (r < 0).any():
        raise ValueError("relevance grades must be >= 0")
    if (r.max(axis=1) <= 0).any():
        raise ValueError("every query needs at least one relevant item (grade > 0)")
    return s, r


def ranking(scores: np.ndarray) -> np.ndarray:
    """(Q, N) item indices, best first (stable on ties)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")


def recall_at_k(scores: np.ndarray, relevance: np.ndarray, k: int = 10) -> np.ndarray:
    """(Q,) capped recall of the fully relevant items in the top k."""
    s, r = _check(scores, relevance)
    full = r >= r.max(axis=1, keepdims=True)  # (Q, N)
    top = ranking(s)[:, :k]
    hits = np.take_along_axis(full, top, axis=1).sum(axis=1)
    return hits / np.minimum(k, full.sum(axis=1))


def mrr(scores: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """(Q,) reciprocal rank of the first fully relevant item."""
    s, r = _check(scores, relevance)
    full = r >= r.max(axis=1, keepdims=True)
    ordered = np.take_along_axis(full, ranking(s), axis=1)
    first = ordered.argmax(axis=1)  # there is always one (checked above)
    return 1.0 / (first + 1)


def ndcg_at_k(scores: np.ndarray, relevance: np.ndarray, k: int = 10) -> np.ndarray:
    """(Q,) graded nDCG@k per query (linear gain, log2 discount)."""
    s, r = _check(scores, relevance)
    kk = min(k, s.shape[1])
    discount = 1.0 / np.log2(np.arange(2, kk + 2))  # (k,)
    gains = np.take_along_axis(r, ranking(s)[:, :kk], axis=1)
    ideal = -np.sort(-r, axis=1)[:, :kk]
    return (gains @ discount) / (ideal @ discount)


def retrieval_metrics(scores: np.ndarray, relevance: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """{"recall@k", "ndcg@k", "mrr"} -> (Q,) per-query values."""
    return {f"recall@{k}": recall_at_k(scores, relevance, k), f"ndcg@{k}": ndcg_at_k(scores, relevance, k),
            "mrr": mrr(scores, relevance)}
