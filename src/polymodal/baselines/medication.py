"""Medication-recommendation baselines, run on the same patient splits as the recipe.

Non-neural (scikit-learn estimator style; ``fit(X, Y)`` then ``predict_proba(X) -> (n, L)`` scores):

* :class:`MostFrequentSet` — every visit gets the training frequency of each medication.
* :class:`NearestVisits` — co-occurrence: the medications of the k most similar training visits
  (cosine over the bag of diagnosis and procedure codes), weighted by similarity.
* :class:`PerLabelLogistic` — one L2 logistic regression per medication on the same code bag
  (scikit-learn); a medication constant in training gets its training rate.

Literature models (``nn.Module``; ``forward(batch, drop) -> (logits (B, L), aux)``):

* :class:`Retain` — RETAIN (Choi et al., NeurIPS 2016, arXiv 1608.05745): reverse-time GRUs give
  visit-level (alpha) and code-level (beta) attention over visit embeddings.
* :class:`SafeDrugLite` — SafeDrug (Yang et al., IJCAI 2021, arXiv 2105.02711): dual GRU patient
  encoder, a global molecule match and a local BRICS-substructure bipartite encoder, trained with
  the controllable DDI loss. Deviation: molecules are Morgan fingerprints through an MLP instead of
  SafeDrug's message-passing network (no graph library dependency); see docs/recipes/nla-mmr.md.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from polymodal.tasks.medication import VisitBatch

__all__ = ["MostFrequentSet", "NearestVisits", "PerLabelLogistic", "Retain", "SafeDrugLite"]


class MostFrequentSet:
    """Scores = training frequency of each medication (the same for every visit)."""

    def fit(self, X: np.ndarray, Y: np.ndarray) -> MostFrequentSet:
        self.freq_ = np.asarray(Y, dtype=np.float64).mean(axis=0)  # (L,)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile(self.freq_, (len(X), 1))  # (n, L)


class NearestVisits:
    """Similarity-weighted medications of the k nearest training visits (cosine over code bags).

    Args:
        k: neighbours. Ties in similarity keep training order.
    """

    def __init__(self, k: int = 5) -> None:
        self.k = k

    def fit(self, X: np.ndarray, Y: np.ndarray) -> NearestVisits:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        self.X_ = _l2(np.asarray(X, dtype=np.float64))
        self.Y_ = np.asarray(Y, dtype=np.float64)
        self.freq_ = self.Y_.mean(axis=0)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        sim = _l2(np.asarray(X, dtype=np.float64)) @ self.X_.T  # (n, N_train)
        k = min(self.k, sim.shape[1])
        top = np.argsort(-sim, axis=1, kind="stable")[:, :k]  # (n, k)
        w = np.take_along_axis(sim, top, axis=1)  # (n, k)
        scores = np.einsum("nk,nkl->nl", w, self.Y_[top]) / np.clip(w.sum(axis=1, keepdims=True), 1e-12, None)
        # a visit with no code in common with any training visit falls back to frequencies;
        # the tiny frequency term breaks ties among medications the neighbours share.
        empty = w.sum(axis=1) <= 0
        scores[empty] = self.freq_
        return scores + 1e-6 * self.freq_


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


class PerLabelLogistic:
    """One-vs-rest L2 logistic regression on the code bag.

    Args:
        C: inverse regularisation strength (scikit-learn's ``C``).
        max_iter: solver iterations.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 200) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, Y: np.ndarray) -> PerLabelLogistic:
        Y = np.asarray(Y)
        self.rate_ = Y.mean(axis=0)
        self.models_: list[LogisticRegression | None] = []
        for j in range(Y.shape[1]):
            if Y[:, j].min() == Y[:, j].max():
                self.models_.append(None)  # constant in training: score = its rate
                continue
            self.models_.append(LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, Y[:, j]))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.tile(self.rate_.astype(np.float64), (len(X), 1))
        for j, model in enumerate(self.models_):
            if model is not None:
                out[:, j] = model.predict_proba(X)[:, 1]
        return out


def _visit_sum(emb: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """(B, V, T) ids -> (B, V, D): sum of the code embeddings (padding id 0 embeds to zero)."""
    return emb(ids).sum(dim=2)


def _last(h: torch.Tensor, visit_mask: torch.Tensor) -> torch.Tensor:
    """(B, V, D) per-visit states -> (B, D) the state at each sample's last real visit."""
    last = visit_mask.long().sum(dim=1).clamp_min(1) - 1  # (B,)
    return h[torch.arange(h.shape[0]), last]


class Retain(nn.Module):
    """RETAIN: reverse-time attention over visits and over embedding dimensions.

    Args:
        n_codes: code vocabulary size including padding id 0. n_labels: L. dim: embedding width.
    """

    def __init__(self, n_codes: int, n_labels: int, dim: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_codes, dim, padding_idx=0)
        self.alpha_gru = nn.GRU(dim, dim, batch_first=True)
        self.beta_gru = nn.GRU(dim, dim, batch_first=True)
        self.alpha = nn.Linear(dim, 1)
        self.beta = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, n_labels)

    def forward(self, batch: VisitBatch, drop: frozenset[str] = frozenset()) -> tuple[torch.Tensor, dict]:
        if "procedures" in drop:
            batch = batch.without_procedures()
        v = self.dropout(_visit_sum(self.embed, batch.diag) + _visit_sum(self.embed, batch.proc))  # (B, V, D)
        mask = batch.visit_mask
        # reverse time per sample: visits are left-aligned, so flip within each sample's length
        lengths = mask.long().sum(dim=1)  # (B,)
        steps = torch.arange(v.shape[1])
        rev = (lengths[:, None] - 1 - steps[None, :]).clamp_min(0)  # (B, V)
        v_rev = torch.gather(v, 1, rev[..., None].expand_as(v))
        g, _ = self.alpha_gru(v_rev)  # (B, V, D)
        h, _ = self.beta_gru(v_rev)
        e = self.alpha(g).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, V)
        alpha = torch.softmax(e, dim=1)  # (B, V)
        beta = torch.tanh(self.beta(h))  # (B, V, D)
        context = (alpha[..., None] * beta * v_rev).sum(dim=1)  # (B, D)
        return self.out(self.dropout(context)), {}


class SafeDrugLite(nn.Module):
    """SafeDrug with Morgan-fingerprint molecules (see the module docstring).

    Args:
        n_codes: code vocabulary size (with padding). structure: (L, F) molecule features.
        substructures: (S, L) BRICS membership mask. dim: width.
    """

    def __init__(self, n_codes: int, structure: np.ndarray, substructures: np.ndarray, dim: int = 64,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.diag_embed = nn.Embedding(n_codes, dim, padding_idx=0)
        self.proc_embed = nn.Embedding(n_codes, dim, padding_idx=0)
        self.diag_gru = nn.GRU(dim, 2 * dim, batch_first=True)
        self.proc_gru = nn.GRU(dim, 2 * dim, batch_first=True)
        self.query = nn.Sequential(nn.ReLU(), nn.Linear(4 * dim, dim))
        self.register_buffer("structure", torch.as_tensor(structure, dtype=torch.float32))  # (L, F)
        self.register_buffer("mask", torch.as_tensor(substructures, dtype=torch.float32))  # (S, L)
        self.molecule = nn.Sequential(nn.Linear(self.structure.shape[1], dim), nn.ReLU(), nn.Linear(dim, dim))
        n_labels = self.structure.shape[0]
        self.match_out = nn.Linear(n_labels, n_labels)
        self.match_norm = nn.LayerNorm(n_labels)
        self.substructure = nn.Linear(dim, self.mask.shape[0])
        self.bipartite = nn.Parameter(torch.randn(self.mask.shape[0], n_labels) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, batch: VisitBatch, drop: frozenset[str] = frozenset()) -> tuple[torch.Tensor, dict]:
        if "procedures" in drop:
            batch = batch.without_procedures()
        d, _ = self.diag_gru(self.dropout(_visit_sum(self.diag_embed, batch.diag)))  # (B, V, 2D)
        p, _ = self.proc_gru(self.dropout(_visit_sum(self.proc_embed, batch.proc)))
        q = self.query(torch.cat([_last(d, batch.visit_mask), _last(p, batch.visit_mask)], dim=-1))  # (B, D)
        mols = self.molecule(self.structure)  # (L, D)
        match = torch.sigmoid(q @ mols.T)  # (B, L) global molecule match
        att = self.match_norm(match + self.match_out(match))  # (B, L)
        sub = torch.sigmoid(self.substructure(q))  # (B, S) substructure presence
        local = sub @ (self.bipartite * self.mask)  # (B, L) bipartite (masked) encoder
        return local * att, {}

