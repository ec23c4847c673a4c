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
* :class:`GameNet` — GAMENet (Shang et al., AAAI 2019, arXiv 1809.01852): dual GRUs, a graph-
  augmented static memory (GCN over the training co-prescription graph minus a learnt multiple of
  a GCN over the DDI graph) and a dynamic memory of the earlier visits' medication sets.

SafeDrug, with its molecular message-passing encoder, is in :mod:`polymodal.baselines.safedrug`.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from polymodal.tasks.medication import VisitBatch

__all__ = ["GameNet", "MostFrequentSet", "NearestVisits", "PerLabelLogistic", "Retain"]


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


def _row_normalise(adj: np.ndarray) -> torch.Tensor:
    """GAMENet's ``normalize(adj + I)``: self-loops, then each row divided by its sum."""
    a = np.asarray(adj, dtype=np.float32) + np.eye(len(adj), dtype=np.float32)
    return torch.as_tensor(a / a.sum(axis=1, keepdims=True))


class _GraphEncoder(nn.Module):
    """GAMENet's GCN: two graph convolutions over one-hot medication nodes -> (L, D) node embeddings."""

    def __init__(self, adj: np.ndarray, dim: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.register_buffer("adj", _row_normalise(adj))  # (L, L)
        n = self.adj.shape[0]
        self.w1 = nn.Parameter(torch.empty(n, dim))  # layer 1 on identity features = one weight row per node
        self.b1 = nn.Parameter(torch.zeros(dim))
        self.w2 = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.w1)
        self.dropout = nn.Dropout(dropout)

    def forward(self) -> torch.Tensor:
        h = torch.relu(self.adj @ self.w1 + self.b1)  # (L, D)
        w, b = self.w2.weight, self.w2.bias
        return self.adj @ (self.dropout(h) @ w.T) + b  # (L, D): adj @ (H W) + bias, as GraphConvolution


class GameNet(nn.Module):
    """GAMENet (Shang et al., AAAI 2019, arXiv 1809.01852): graph-augmented memory networks.

    Dual GRUs over the visits' diagnosis and procedure embeddings give a query per visit; the
    static memory is ``GCN(EHR co-prescription graph) - beta * GCN(DDI graph)`` over medications;
    the dynamic memory holds the earlier visits' queries (keys) and medication sets (values). The
    output MLP reads the query, the static read-out and the dynamic read-out.

    Args:
        n_codes: code vocabulary size including padding id 0. ehr_adj: (L, L) 0/1 co-prescription
            graph of the **training** visits. ddi_adj: (L, L) DDI graph. dim: width. dropout: rate.
    """

    def __init__(self, n_codes: int, ehr_adj: np.ndarray, ddi_adj: np.ndarray, dim: int = 64,
                 dropout: float = 0.4) -> None:
        super().__init__()
        self.diag_embed = nn.Embedding(n_codes, dim, padding_idx=0)
        self.proc_embed = nn.Embedding(n_codes, dim, padding_idx=0)
        self.diag_gru = nn.GRU(dim, 2 * dim, batch_first=True)
        self.proc_gru = nn.GRU(dim, 2 * dim, batch_first=True)
        self.query = nn.Sequential(nn.ReLU(), nn.Linear(4 * dim, dim))
        self.ehr_gcn = _GraphEncoder(ehr_adj, dim)
        self.ddi_gcn = _GraphEncoder(ddi_adj, dim)
        self.inter = nn.Parameter(torch.zeros(1).uniform_(-0.1, 0.1))  # beta, learnt as in the paper's code
        n_labels = len(ehr_adj)
        self.output = nn.Sequential(nn.ReLU(), nn.Linear(3 * dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, n_labels))
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def _visit_mean(emb: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        """(B, V, T) -> (B, V, D): mean of a visit's code embeddings (GAMENet averages, RETAIN sums)."""
        count = (ids > 0).sum(dim=2, keepdim=True).clamp_min(1)
        return emb(ids).sum(dim=2) / count

    def forward(self, batch: VisitBatch, drop: frozenset[str] = frozenset()) -> tuple[torch.Tensor, dict]:
        if "procedures" in drop:
            batch = batch.without_procedures()
        d, _ = self.diag_gru(self.dropout(self._visit_mean(self.diag_embed, batch.diag)))  # (B, V, 2D)
        p, _ = self.proc_gru(self.dropout(self._visit_mean(self.proc_embed, batch.proc)))
        queries = self.query(torch.cat([d, p], dim=-1))  # (B, V, D): one per visit
        mask = batch.visit_mask
        last = mask.long().sum(dim=1).clamp_min(1) - 1  # (B,)
        query = queries[torch.arange(len(last)), last]  # (B, D)
        memory = self.ehr_gcn() - self.ddi_gcn() * self.inter  # (L, D) static memory
        fact1 = torch.softmax(query @ memory.T, dim=-1) @ memory  # (B, D)
        # dynamic memory: earlier visits of the window (keys = their queries, values = their medications)
        earlier = mask & (torch.arange(mask.shape[1])[None, :] < last[:, None])  # (B, V)
        fact2 = fact1
        if batch.history_meds is not None and bool(earlier.any()):
            scores = torch.einsum("bd,bvd->bv", query, queries).masked_fill(~earlier, float("-inf"))
            weights = torch.nan_to_num(torch.softmax(scores, dim=1))  # rows without history -> zeros
            read = torch.einsum("bv,bvl->bl", weights, batch.history_meds) @ memory  # (B, D)
            has = earlier.any(dim=1, keepdim=True)
            fact2 = torch.where(has, read, fact1)
        return self.output(torch.cat([query, fact1, fact2], dim=-1)), {}
