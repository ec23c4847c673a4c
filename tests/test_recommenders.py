"""Recommenders: CP-generated layer equals its explicit per-item weight, LightGCN paths agree, modality dropping,
and a learning test on interactions with a planted signal (users prefer items whose features match theirs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.data.interactions import per_user_split
from polymodal.evaluation.ranking import evaluate_ranking
from polymodal.recommenders.collaborative import (
    LightGCNRecommender,
    MatrixFactorization,
    Popularity,
    pyg_lightgcn_available,
)
from polymodal.recommenders.meta_fusion import CPGeneratedLinear, MetaFusion
from polymodal.recommenders.multimodal import ContentRanker, FusedGCN, MMGCNStyle
from polymodal.recommenders.train import BPRSettings, sample_negatives, train_bpr


def test_cp_layer_equals_explicit_item_weights() -> None:
    torch.manual_seed(0)
    layer = CPGeneratedLinear(d_in=5, d_out=3, d_meta=4, rank=2)
    x, meta = torch.randn(6, 5), torch.randn(6, 4)
    got = layer(x, meta)
    for i in range(6):
        # W_i = sum_r (m_i . C[:, r]) A[:, r] B[:, r]^T, built explicitly.
        w = sum((meta[i] @ layer.C[:, r]) * torch.outer(layer.A[:, r], layer.B[:, r]) for r in range(2))
        torch.testing.assert_close(got[i], w @ x[i] + layer.bias(meta[i]))
    # Two items with different meta vectors get different weights for the same input.
    fusion = MetaFusion(5, 3, d_meta=4, rank=2, n_layers=1)
    same = torch.randn(1, 5).repeat(2, 1)
    assert fusion(same).shape == (2, 3)


def _planted(n_users: int = 60, n_items: int = 80, n_groups: int = 4, per_user: int = 16, seed: int = 0):
    """Each item belongs to a group shown in its features; each user picks 85% of items from one group."""
    rng = np.random.default_rng(seed)
    group = np.arange(n_items) % n_groups
    rows = []
    for u in range(n_users):
        g = u % n_groups
        own, other = np.flatnonzero(group == g), np.flatnonzero(group != g)
        n_own = round(0.85 * per_user)
        chosen = np.concatenate([rng.choice(own, n_own, replace=False), rng.choice(other, per_user - n_own, False)])
        rows += [(u, int(i)) for i in chosen]
    features = {"genres": np.eye(n_groups, dtype=np.float32)[group],
                "title": (np.eye(n_groups)[group] @ rng.normal(size=(n_groups, 8)) + 0.3 * rng.normal(size=(n_items, 8))
                          ).astype(np.float32)}
    split = per_user_split(pd.DataFrame(rows, columns=["user_id", "item_id"]), seed=seed)
    # Items are indexed by sorted id = their position, so features stay aligned.
    assert (split.item_ids == np.arange(n_items)).all()
    return split, features


def _test_recall(model, split) -> float:
    return float(evaluate_ranking(model.score_fn(), split.matrix("train"), split.matrix("test"), ks=(10,))
                 ["recall@10"].mean())


@pytest.mark.usefixtures("one_torch_thread")
def test_learning_planted_signal_beats_popularity() -> None:
    split, features = _planted()
    tu, ti = split.pairs("train")
    train, valid = split.matrix("train"), split.matrix("valid")
    pop = _test_recall(Popularity(split.n_users, split.item_train_counts()), split)
    settings = BPRSettings(max_epochs=40, batch_size=256, lr=0.02, patience=10, eval_every=2)
    torch.manual_seed(0)
    meta = FusedGCN(split.n_users, split.n_items, tu, ti, features, fusion="meta", dim=16, proj_dim=8, d_meta=8,
                    rank=4, n_layers=2)
    result = train_bpr(meta, train, valid, settings, seed=0)
    torch.manual_seed(0)
    mf = MatrixFactorization(split.n_users, split.n_items, dim=16)
    train_bpr(mf, train, valid, settings, seed=0)
    r_meta, r_mf = _test_recall(meta, split), _test_recall(mf, split)
    # Popularity is near chance here (about 10/80 of 2-3 test items); matching the group roughly triples it.
    assert r_meta > pop + 0.15, (r_meta, pop)
    assert r_mf > pop + 0.1, (r_mf, pop)
    assert result.best_valid_recall10 > 0 and result.best_epoch > 0


@pytest.mark.usefixtures("one_torch_thread")
def test_every_model_runs_forward_backward_and_drops_modalities() -> None:
    split, features = _planted(n_users=12, n_items=40, per_user=8)
    tu, ti = split.pairs("train")
    models = [FusedGCN(split.n_users, split.n_items, tu, ti, features, fusion="meta", dim=8, proj_dim=4),
              FusedGCN(split.n_users, split.n_items, tu, ti, features, fusion="concat", dim=8, proj_dim=4),
              MMGCNStyle(split.n_users, split.n_items, tu, ti, features, dim=8),
              ContentRanker(split.n_users, features, dim=8, proj_dim=4),
              LightGCNRecommender(split.n_users, split.n_items, tu, ti, dim=8)]
    for model in models:
        users, items = model()
        assert users.shape == (12, 8) and items.shape == (40, 8)
        (users.sum() + items.sum()).backward()
        if model.modalities:
            model.eval()
            with torch.no_grad():
                full = model()[1]
                model.dropped = frozenset({"title"})
                dropped = model()[1]
                model.dropped = frozenset()
            assert not torch.allclose(full, dropped)


@pytest.mark.skipif(not pyg_lightgcn_available(), reason="torch_geometric not installed")
def test_lightgcn_pyg_and_sparse_paths_agree() -> None:
    split, _ = _planted(n_users=12, n_items=40, per_user=8)
    tu, ti = split.pairs("train")
    a = LightGCNRecommender(split.n_users, split.n_items, tu, ti, dim=8, n_layers=3, use_pyg=True)
    b = LightGCNRecommender(split.n_users, split.n_items, tu, ti, dim=8, n_layers=3, use_pyg=False)
    with torch.no_grad():
        b.embedding.weight.copy_(a.net.embedding.weight)
        for x, y in zip(a(), b(), strict=True):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_negatives_avoid_training_items() -> None:
    split, _ = _planted(n_users=12, n_items=40, per_user=8)
    train = split.matrix("train")
    users = np.repeat(np.arange(12), 50)
    neg = sample_negatives(users, train, np.random.default_rng(0), tries=20)
    assert (np.asarray(train[users, neg]).ravel() == 0).all()
