"""BPR training with uniform negative sampling and early stopping on validation Recall@10."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from polymodal.evaluation.ranking import evaluate_ranking
from polymodal.recommenders.base import Recommender
from polymodal.training.best_weights import BestWeights


@dataclass(frozen=True)
class BPRSettings:
    """Optimisation settings shared by every trained recommender.

    Attributes:
        max_epochs: passes over the training interactions.
        batch_size: (user, positive, negative) triples per step.
        lr: Adam learning rate.
        reg: L2 weight on the batch's final user/item embeddings (per triple, as LightGCN's code does
            on its layer-0 embeddings).
        weight_decay: Adam weight decay on every parameter (the fusion and projection layers).
        patience: validation checks without a better Recall@10 before stopping.
        eval_every: epochs between validation checks.
    """

    max_epochs: int = 60
    batch_size: int = 4096
    lr: float = 0.005
    reg: float = 1e-4
    weight_decay: float = 0.0
    patience: int = 5
    eval_every: int = 2


@dataclass
class TrainResult:
    best_epoch: int
    best_valid_recall10: float
    epochs_run: int
    seconds: float
    history: list[float] = field(default_factory=list)


def sample_negatives(users: np.ndarray, train: sp.csr_matrix, rng: np.random.Generator, tries: int = 5) -> np.ndarray:
    """One uniformly drawn item per user that is not among that user's training items (resampled up to ``tries``)."""
    n_items = train.shape[1]
    neg = rng.integers(n_items, size=len(users))
    for _ in range(tries):
        clash = np.asarray(train[users, neg]).ravel() > 0
        if not clash.any():
            break
        neg[clash] = rng.integers(n_items, size=int(clash.sum()))
    return neg


def bpr_loss(users_e: torch.Tensor, pos_e: torch.Tensor, neg_e: torch.Tensor, reg: float) -> torch.Tensor:
    """BPR: -log sigmoid(s_pos - s_neg) averaged over triples, plus L2 on the three embeddings. Inputs (B, D)."""
    diff = (users_e * pos_e).sum(-1) - (users_e * neg_e).sum(-1)  # (B,)
    l2 = (users_e.pow(2).sum() + pos_e.pow(2).sum() + neg_e.pow(2).sum()) / (2 * len(users_e))
    return -F.logsigmoid(diff).mean() + reg * l2


def train_bpr(model: Recommender, train: sp.csr_matrix, valid: sp.csr_matrix, settings: BPRSettings, seed: int,
              log: Callable[[str], None] | None = None) -> TrainResult:
    """Fit ``model`` with BPR; keep the weights of the best validation Recall@10 (full ranking, train items masked).

    Args:
        model: a recommender whose ``forward()`` gives (U, D) and (I, D) embeddings.
        train: (U, I) CSR of training interactions (positives and the negative-sampling mask).
        valid: (U, I) CSR of validation interactions (the early-stopping target).
        settings: optimisation settings.
        seed: seeds the negative sampler and the batch order (initialisation is seeded by the caller).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    coo = train.tocoo()
    pos_users, pos_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    stopper = BestWeights(model, patience=settings.patience)
    epoch = 0
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        order = rng.permutation(len(pos_users))
        for start in range(0, len(order), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            u, p = pos_users[idx], pos_items[idx]
            n = sample_negatives(u, train, rng)
            users_e, items_e = model()
            tu, tp, tn = (torch.as_tensor(a) for a in (u, p, n))
            loss = bpr_loss(users_e[tu], items_e[tp], items_e[tn], settings.reg)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % settings.eval_every == 0 or epoch == settings.max_epochs:
            score = float(evaluate_ranking(model.score_fn(), train, valid, ks=(10,))["recall@10"].mean())
            if log is not None:
                log(f"  epoch {epoch}: loss {loss.item():.4f}, valid recall@10 {score:.4f}")
            if stopper.update(score, epoch // settings.eval_every):
                break
    stopper.restore()
    model.eval()
    return TrainResult(best_epoch=stopper.best_epoch * settings.eval_every, best_valid_recall10=stopper.best,
                       epochs_run=epoch, seconds=time.perf_counter() - t0, history=stopper.history)
