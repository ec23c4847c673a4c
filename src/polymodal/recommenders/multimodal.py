"""Recommenders that read item features: the fused-feature GCN (MetaMMF / concat), MMGCN-style, content-only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
from torch import nn

from polymodal.recommenders.base import Recommender, feature_dims
from polymodal.recommenders.graph import normalized_adjacency, propagate
from polymodal.recommenders.meta_fusion import ConcatFusion, MetaFusion, ModalityProjector


class FusedGCN(Recommender):
    """GCN backbone whose item nodes start from an ID embedding plus the fused multimodal representation.

    ``fusion="meta"`` is MetaMMF_GCN (item-specific, meta-generated fusion); ``fusion="concat"`` is the
    paper's key ablation (static fusion of the concatenated modalities). Users start from ID embeddings;
    both are propagated LightGCN-style over the training graph.
    """

    def __init__(self, n_users: int, n_items: int, users: np.ndarray, items: np.ndarray,
                 features: Mapping[str, np.ndarray], *, fusion: Literal["meta", "concat"] = "meta", dim: int = 64,
                 proj_dim: int = 32, d_meta: int = 32, rank: int = 16, fusion_layers: int = 2, n_layers: int = 3,
                 item_id_embedding: bool = True) -> None:
        super().__init__()
        self.n_users, self.n_layers = n_users, n_layers
        self.set_features(features)
        self.project = ModalityProjector(feature_dims(features), proj_dim)
        d_in = self.project.out_dim
        self.fuse = (MetaFusion(d_in, dim, d_meta, rank, fusion_layers) if fusion == "meta"
                     else ConcatFusion(d_in, dim, fusion_layers))
        self.users = nn.Embedding(n_users, dim)
        nn.init.normal_(self.users.weight, std=0.1)
        self.items = nn.Embedding(n_items, dim) if item_id_embedding else None
        if self.items is not None:
            nn.init.normal_(self.items.weight, std=0.1)
        self.register_buffer("adj", normalized_adjacency(users, items, n_users, n_items), persistent=False)

    def item_content(self) -> torch.Tensor:
        """(I, dim) fused multimodal representation of every item."""
        x = self.project({m: self.feature(m) for m in self.modalities}, self.dropped)
        return self.fuse(x)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        item0 = self.item_content()
        if self.items is not None:
            item0 = item0 + self.items.weight
        out = propagate(self.adj, torch.cat([self.users.weight, item0]), self.n_layers)
        return out[: self.n_users], out[self.n_users:]


class MMGCNStyle(Recommender):
    """MMGCN-style (Wei et al., 2019): one graph branch per modality plus an ID branch, summed.

    Each modality m has its own user preference embedding and item node features
    ``LeakyReLU(W_m x_m)``, propagated over the user-item graph; the final user and item
    representations are sums over branches. Simplified from MMGCN: LightGCN-style mean propagation
    instead of its aggregation + combination layers.
    """

    def __init__(self, n_users: int, n_items: int, users: np.ndarray, items: np.ndarray,
                 features: Mapping[str, np.ndarray], *, dim: int = 64, n_layers: int = 2) -> None:
        super().__init__()
        self.n_users, self.n_layers = n_users, n_layers
        self.set_features(features)
        dims = feature_dims(features)
        self.item_maps = nn.ModuleDict({m: nn.Linear(dims[m], dim) for m in self.modalities})
        self.user_prefs = nn.ParameterDict({m: nn.Parameter(torch.randn(n_users, dim) * 0.1) for m in self.modalities})
        self.id_users = nn.Embedding(n_users, dim)
        self.id_items = nn.Embedding(n_items, dim)
        nn.init.normal_(self.id_users.weight, std=0.1)
        nn.init.normal_(self.id_items.weight, std=0.1)
        self.act = nn.LeakyReLU(0.1)
        self.register_buffer("adj", normalized_adjacency(users, items, n_users, n_items), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        total = propagate(self.adj, torch.cat([self.id_users.weight, self.id_items.weight]), self.n_layers)
        for m in self.modalities:
            if m in self.dropped:
                continue  # a dropped modality's branch contributes nothing
            item0 = self.act(self.item_maps[m](self.feature(m)))  # (I, dim)
            total = total + propagate(self.adj, torch.cat([self.user_prefs[m], item0]), self.n_layers)
        return total[: self.n_users], total[self.n_users:]


class ContentRanker(Recommender):
    """Item-feature-only ranking: items are a function of their features (no item ID, no graph).

    Users keep free embeddings; items are ``MLP(concat of projected modalities)``, so an item nobody
    rated in training still gets a representation (the cold-start baseline).
    """

    def __init__(self, n_users: int, features: Mapping[str, np.ndarray], *, dim: int = 64, proj_dim: int = 32) -> None:
        super().__init__()
        self.set_features(features)
        self.project = ModalityProjector(feature_dims(features), proj_dim)
        self.tower = ConcatFusion(self.project.out_dim, dim, 2)
        self.users = nn.Embedding(n_users, dim)
        nn.init.normal_(self.users.weight, std=0.1)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        items = self.tower(self.project({m: self.feature(m) for m in self.modalities}, self.dropped))
        return self.users.weight, items
