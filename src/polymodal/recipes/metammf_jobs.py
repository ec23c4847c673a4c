"""MetaMMF jobs: train one model on one seed, then rank every item for every user into prediction rows.

Everything a job needs travels in :class:`RankingData` (index arrays, sparse matrices, item features),
so a job is a picklable ``functools.partial`` and runs in a worker process too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from polymodal.evaluation.ranking import ranking_throughput, top_k_items
from polymodal.io import atomic_write
from polymodal.recommenders.base import Recommender
from polymodal.recommenders.collaborative import LightGCNRecommender, MatrixFactorization, Popularity
from polymodal.recommenders.multimodal import ContentRanker, FusedGCN, MMGCNStyle
from polymodal.recommenders.train import BPRSettings, train_bpr
from polymodal.runs.problem import JobContext, JobResult, predictions_frame

#: model name -> (kind, uses item features)
MODELS: dict[str, tuple[str, bool]] = {
    "metammf": ("recipe", True),
    "concat-gcn": ("ablation", True),
    "mmgcn": ("baseline", True),
    "content": ("baseline", True),
    "lightgcn": ("baseline", False),
    "bpr-mf": ("baseline", False),
    "popularity": ("trivial", False),
}


@dataclass
class RankingData:
    """One split of one dataset, in index space.

    Attributes:
        user_ids, item_ids: (U,), (I,) original ids of the indices.
        train, valid, test: (U, I) CSR interaction matrices.
        features: item modality -> (I, d_m) float32.
        cold_items: (I,) bool, items with few training interactions (the cold-start subset).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    features: dict[str, np.ndarray]
    cold_items: np.ndarray
    item_counts: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class ModelSpec:
    """Widths and depths of the models (from the recipe config)."""

    dim: int = 64
    gcn_layers: int = 3
    proj_dim: int = 32
    d_meta: int = 32
    cp_rank: int = 16
    fusion_layers: int = 2
    mmgcn_layers: int = 2


def build_model(name: str, data: RankingData, spec: ModelSpec, features: Mapping[str, np.ndarray]) -> Recommender:
    """A fresh model by name (initialised from torch's current seed)."""
    n_users, n_items = data.train.shape
    coo = data.train.tocoo()
    users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
    if name == "popularity":
        return Popularity(n_users, data.item_counts)
    if name == "bpr-mf":
        return MatrixFactorization(n_users, n_items, spec.dim)
    if name == "lightgcn":
        # The sparse-matmul path: torch_geometric's LightGCN gives the same embeddings (tested) but its
        # scatter-based propagation measured 7x slower on this CPU; ``use_pyg=True`` selects it.
        return LightGCNRecommender(n_users, n_items, users, items, spec.dim, spec.gcn_layers, use_pyg=False)
    if name in ("metammf", "concat-gcn"):
        return FusedGCN(n_users, n_items, users, items, features, fusion="meta" if name == "metammf" else "concat",
                        dim=spec.dim, proj_dim=spec.proj_dim, d_meta=spec.d_meta, rank=spec.cp_rank,
                        fusion_layers=spec.fusion_layers, n_layers=spec.gcn_layers)
    if name == "mmgcn":
        return MMGCNStyle(n_users, n_items, users, items, features, dim=spec.dim, n_layers=spec.mmgcn_layers)
    if name == "content":
        return ContentRanker(n_users, features, dim=spec.dim, proj_dim=spec.proj_dim)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def _join(ids: np.ndarray) -> str:
    return " ".join(str(int(i)) for i in ids)


def ranking_rows(score: Callable[[torch.Tensor], torch.Tensor], data: RankingData, *, model: str, kind: str,
                 seed: int, k: int, splits: tuple[str, ...] = ("valid", "test"), condition: str = "none",
                 cold: bool = True) -> pd.DataFrame:
    """Prediction rows: per split, one row per user with held-out items (id, relevant, ranked top-k).

    With ``cold``, test rows of the ``cold_items`` subset follow: the same ranked lists, judged
    only on the user's held-out items that are cold (users without such items are left out).
    """
    frames = []
    for split in splits:
        relevant = data.valid if split == "valid" else data.test
        users = np.flatnonzero(np.diff(relevant.indptr) > 0)
        top = top_k_items(score, users, data.train, k)  # (U', k) item indices
        ranked = [_join(data.item_ids[row]) for row in top]
        rel = [_join(data.item_ids[relevant.indices[relevant.indptr[u]:relevant.indptr[u + 1]]]) for u in users]
        frames.append(predictions_frame(model=model, kind=kind, split=split, ids=data.user_ids[users], seed=seed,
                                        condition=condition, relevant=rel, ranked=ranked))
        if cold and split == "test" and condition == "none":
            cold_rel, keep = [], []
            for j, u in enumerate(users):
                items = relevant.indices[relevant.indptr[u]:relevant.indptr[u + 1]]
                items = items[data.cold_items[items]]
                if len(items):
                    keep.append(j)
                    cold_rel.append(_join(data.item_ids[items]))
            if keep:
                frames.append(predictions_frame(model=model, kind=kind, split=split, ids=data.user_ids[users[keep]],
                                                seed=seed, subset="cold_items", relevant=cold_rel,
                                                ranked=[ranked[j] for j in keep]))
    return pd.concat(frames, ignore_index=True)


def run_model_job(ctx: JobContext, *, data: RankingData, name: str, kind: str, spec: ModelSpec,
                  settings: BPRSettings, k: int, drop_train: tuple[str, ...] = (), drop_test: tuple[str, ...] = (),
                  label: str | None = None, save_embeddings: bool = False, threads: int = 1) -> JobResult:
    """Train ``name`` on seed ``ctx.seed`` (without the modalities in ``drop_train``) and rank.

    ``drop_test``: modalities zeroed one at a time after training (rows with ``condition="drop:M"``).
    ``label``: the row name (defaults to ``name``; e.g. ``"metammf -tags"`` for a training-time ablation).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(ctx.seed)
    features = {m: v for m, v in data.features.items() if m not in drop_train}
    model = build_model(name, data, spec, features)
    label = label or name
    info: dict[str, Any] = {"model": label, "seed": ctx.seed}
    if getattr(model, "trainable", True):
        result = train_bpr(model, data.train, data.valid, settings, seed=ctx.seed)
        info.update(best_epoch=result.best_epoch, epochs_run=result.epochs_run,
                    best_valid_recall10=result.best_valid_recall10, train_seconds=round(result.seconds, 2))
    score = model.score_fn()
    rows = [ranking_rows(score, data, model=label, kind=kind, seed=ctx.seed, k=k)]
    for m in drop_test:
        model.dropped = frozenset({m})
        rows.append(ranking_rows(model.score_fn(), data, model=label, kind=kind, seed=ctx.seed, k=k,
                                 splits=("test",), condition=f"drop:{m}", cold=False))
    model.dropped = frozenset()
    t0 = time.perf_counter()
    users_e, items_e = (t.detach() for t in model())
    embed_seconds = time.perf_counter() - t0
    cost = ranking_throughput(lambda u: users_e[u] @ items_e.T, data.train.shape[0], data.train.shape[1],
                              data.train, k=k, repeats=2)
    info.update(embed_seconds=round(embed_seconds, 4), rank_seconds=round(cost["seconds"], 4),
                rank_pairs_per_second=round(cost["pairs_per_second"]))
    if save_embeddings:
        # Plain float arrays, read back with allow_pickle=False by the predictor.
        atomic_write(ctx.dir / "embeddings.npz",
                     lambda fh: np.savez(fh, users=users_e.numpy(), items=items_e.numpy()), binary=True)
    timing = pd.DataFrame([info])
    return JobResult(predictions=pd.concat(rows, ignore_index=True), tables={"timing": timing}, info=info)
