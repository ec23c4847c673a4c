"""Ranking metrics (hand-computed values, agreement with torchmetrics), full ranking masks, the per-user split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from torchmetrics.functional.retrieval import (
    retrieval_hit_rate,
    retrieval_normalized_dcg,
    retrieval_precision,
    retrieval_recall,
)

from polymodal.data.interactions import load_split, per_user_split
from polymodal.evaluation.ranking import evaluate_ranking, hits_of, metrics_from_hits, top_k_items


def test_metrics_hand_computed() -> None:
    # User 0: hits at ranks 1 and 3 of 3 relevant items; user 1: one relevant item, at rank 2; user 2: none in top 3.
    hits = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    n_rel = np.array([3, 1, 2])
    m = metrics_from_hits(hits, n_rel, ks=(3,))
    np.testing.assert_allclose(m["precision@3"], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(m["recall@3"], [2 / 3, 1.0, 0])
    np.testing.assert_allclose(m["hr@3"], [1, 1, 0])
    # DCG: 1/log2(2) + 1/log2(4) = 1.5; IDCG over min(3, 3) = 1 + 1/log2(3) + 1/2.
    idcg0 = 1 + 1 / np.log2(3) + 0.5
    # User 1: DCG 1/log2(3), IDCG over min(3, 1) = 1 item = 1.
    np.testing.assert_allclose(m["ndcg@3"], [1.5 / idcg0, 1 / np.log2(3), 0])


def test_metrics_equal_torchmetrics_definitions() -> None:
    rng = np.random.default_rng(0)
    n_items, k = 30, 10
    for _ in range(20):
        scores = rng.normal(size=n_items)
        target = rng.random(n_items) < 0.2
        target[rng.integers(n_items)] = True
        order = np.argsort(-scores)
        hits = target[order][None, :k]
        m = metrics_from_hits(hits, np.array([target.sum()]), ks=(k,))
        s, t = torch.tensor(scores), torch.tensor(target)
        assert m[f"recall@{k}"][0] == pytest.approx(float(retrieval_recall(s, t, top_k=k)))
        assert m[f"precision@{k}"][0] == pytest.approx(float(retrieval_precision(s, t, top_k=k)))
        assert m[f"hr@{k}"][0] == pytest.approx(float(retrieval_hit_rate(s, t, top_k=k)))
        assert m[f"ndcg@{k}"][0] == pytest.approx(float(retrieval_normalized_dcg(s, t.long(), top_k=k)))


def test_full_ranking_excludes_training_items() -> None:
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    exclude = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=np.float32))
    top = top_k_items(lambda u: scores[u], np.array([0, 1]), exclude, k=2, batch_size=1)
    assert top.tolist() == [[2, 3], [3, 2]]
    relevant = sp.csr_matrix(np.array([[0, 0, 0, 1, 0], [0, 0, 1, 0, 0]], dtype=np.float32))
    hits, n_rel = hits_of(top, np.array([0, 1]), relevant)
    assert hits.tolist() == [[False, True], [False, True]] and n_rel.tolist() == [1, 1]
    per_user = evaluate_ranking(lambda u: scores[u], exclude, relevant, ks=(1, 2))
    np.testing.assert_allclose(per_user["recall@1"], [0, 0])
    np.testing.assert_allclose(per_user["recall@2"], [1, 1])


def _interactions(n_users: int = 20, per_user: int = 20, n_items: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = [(u + 100, int(i) + 1000) for u in range(n_users) for i in rng.choice(n_items, per_user, replace=False)]
    rows.append((999, 1000))  # one user with a single interaction
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_per_user_split_shares_seed_and_roundtrip(tmp_path: Path) -> None:
    inter = _interactions()
    a, b, c = per_user_split(inter, seed=3), per_user_split(inter, seed=3), per_user_split(inter, seed=4)
    assert a.frame["split"].tolist() == b.frame["split"].tolist()
    assert a.frame["split"].tolist() != c.frame["split"].tolist()
    counts = a.frame[a.frame.user_id == 100]["split"].value_counts()
    assert (counts["train"], counts["valid"], counts["test"]) == (16, 2, 2)
    assert set(a.frame[a.frame.user_id == 999]["split"]) == {"train"}
    assert any("fewer than 3" in x for x in a.actions)
    a.save(tmp_path / "split.csv")
    back = load_split(tmp_path / "split.csv")
    assert back.n_users == a.n_users and back.n_items == a.n_items
    for s in ("train", "valid", "test"):
        assert (back.matrix(s) != a.matrix(s)).nnz == 0
