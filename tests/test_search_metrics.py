"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polymodal.search.metrics import mrr, ndcg_at_k, recall_at_k, retrieval_metrics

# One query, five items. Ranking by score: items 4, 0, 2, 1, 3.
SCORES = np.array([[0.8, 0.1, 0.5, 0.0, 0.9]])
REL = np.array([[2, 0, 1, 2, 0]])  # fully relevant (grade 2): items 0 and 3


def test_recall_capped_by_k_and_by_relevant_count() -> None:
    # top-2 = {4, 0}: one of the two fully relevant items -> 1/min(2, 2) = 0.5
    assert recall_at_k(SCORES, REL, k=2) == pytest.approx([0.5])
    # top-1 = {4}: none -> 0
    assert recall_at_k(SCORES, REL, k=1) == pytest.approx([0.0])
    # top-5 has both -> 1
    assert recall_at_k(SCORES, REL, k=5) == pytest.approx([1.0])
    # a single fully relevant item makes recall@k the hit rate: item 2 at rank 3
    single = np.array([[0, 0, 1, 0, 0]])
    assert recall_at_k(SCORES, single, k=2) == pytest.approx([0.0])
    assert recall_at_k(SCORES, single, k=3) == pytest.approx([1.0])


def test_mrr_first_fully_relevant() -> None:
    # first grade-2 item (item 0) is at rank 2
    assert mrr(SCORES, REL) == pytest.approx([0.5])
    assert mrr(SCORES, np.array([[0, 0, 0, 1, 0]])) == pytest.approx([1 / 5])


def test_ndcg_graded_by_hand() -> None:
    # ranking 4,0,2 with grades 0,2,1: DCG@3 = 0/log2(2) + 2/log2(3) + 1/log2(4)
    dcg = 2 / math.log2(3) + 1 / 2
    # ideal order grades 2,2,1: IDCG@3 = 2 + 2/log2(3) + 1/2
    idcg = 2 + 2 / math.log2(3) + 1 / 2
    assert ndcg_at_k(SCORES, REL, k=3) == pytest.approx([dcg / idcg])


def test_ndcg_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(0)
    scores, rel = rng.normal(size=(20, 50)), rng.integers(0, 4, size=(20, 50))
    rel[:, 0] = 1  # every query has a relevant item
    ours = ndcg_at_k(scores, rel, k=10)
    theirs = [ndcg_score(rel[i : i + 1], scores[i : i + 1], k=10, ignore_ties=True) for i in range(20)]
    assert ours == pytest.approx(theirs)


def test_ties_are_broken_by_item_index_and_rows_are_independent() -> None:
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    rel = np.array([[0, 1, 0], [1, 0, 0]])
    assert recall_at_k(scores, rel, k=1) == pytest.approx([0.0, 0.0])
    assert mrr(scores, rel) == pytest.approx([0.5, 0.5])
    out = retrieval_metrics(scores, rel, k=2)
    assert set(out) == {"recall@2", "ndcg@2", "mrr"} and out["recall@2"] == pytest.approx([1.0, 1.0])


def test_bad_input_rejected() -> None:
    with pytest.raises(ValueError, match="at least one relevant"):
        mrr(SCORES, np.zeros((1, 5)))
    with pytest.raises(ValueError, match="must both be"):
        recall_at_k(SCORES, REL[:, :3])
