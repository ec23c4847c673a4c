"""Collaborative baselines: popularity, BPR matrix factorisation, LightGCN (torch_geometric's, else sparse)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from polymodal.recommenders.base import Recommender
from polymodal.recommenders.graph import normalized_adjacency, propagate


class Popularity(Recommender):
    """Scores every item by its number of training interactions (the same list for every user).

    ``forward`` returns a (U, 1) column of ones and the (I, 1) counts, so the dot product is the count.
    """

    trainable = False

    def __init__(self, n_users: int, item_counts: np.ndarray) -> None:
        super().__init__()
        self.n_users = n_users
        self.register_buffer("counts", torch.as_tensor(item_counts, dtype=torch.float32)[:, None])

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(self.n_users, 1), self.counts


class MatrixFactorization(Recommender):
    """BPR-MF: free user and item embeddings (Rendle et al., 2009)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.users.weight, self.items.weight


def pyg_lightgcn_available() -> bool:
    try:
        from torch_geometric.nn import LightGCN  # noqa: F401
    except ImportError:
        return False
    return True


class LightGCNRecommender(Recommender):
    """LightGCN (He et al., 2020): ID embeddings averaged over ``n_layers`` of normalised propagation.

    Uses ``torch_geometric.nn.LightGCN`` when torch_geometric imports (optional extra ``graph``);
    otherwise the same propagation as one sparse matrix product per layer
    (:func:`polymodal.recommenders.graph.propagate`), which the tests check gives equal embeddings.
    """

    def __init__(self, n_users: int, n_items: int, users: np.ndarray, items: np.ndarray, dim: int = 64,
                 n_layers: int = 3, use_pyg: bool | None = None) -> None:
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.use_pyg = pyg_lightgcn_available() if use_pyg is None else use_pyg
        if self.use_pyg:
            from torch_geometric.nn import LightGCN

            self.net = LightGCN(n_users + n_items, dim, n_layers)
            nn.init.normal_(self.net.embedding.weight, std=0.1)
            src = np.concatenate([users, items + n_users])
            dst = np.concatenate([items + n_users, users])
            self.register_buffer("edge_index", torch.as_tensor(np.stack([src, dst]), dtype=torch.long),
                                 persistent=False)
        else:
            self.embedding = nn.Embedding(n_users + n_items, dim)
            nn.init.normal_(self.embedding.weight, std=0.1)
            self.register_buffer("adj", normalized_adjacency(users, items, n_users, n_items), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.use_pyg:
            out = self.net.get_embedding(self.edge_index)  # (N, D)
        else:
            out = propagate(self.adj, self.embedding.weight, self.n_layers)
        return out[: self.n_users], out[self.n_users:]
