"""Jobs for a binary recipe whose samples are Records and whose model is a MultimodalModel.

For each selection split (the official valid split, or a temporal hold-out from the latest part
of train+valid) the featuriser is fitted on that selection's training records only; then one job
per seed trains the model with early stopping on the selection split and scores the selection and
test splits, also with each modality dropped (condition ``drop:<modality>``); one job per
selection fits the trivial and learned baselines on exactly the same records. Thresholds are the
task's business (validation rows only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from torch import nn

from polymodal.config import ProtocolConfig
from polymodal.data.schema import Record
from polymodal.data.splits import DatasetSplits
from polymodal.runs.problem import Job, JobContext, JobResult, predictions_frame

__all__ = ["Featurizer", "Fold", "RecordBinarySpec", "make_fold", "record_binary_jobs", "selection_manifest"]

SELECTION_TEXT = {
    "valid": "official valid split (covers the same period as train)",
    "temporal": "temporal hold-out: the latest trials of train+valid by registration order",
}


class Featurizer(Protocol):
    """Turns Records into per-modality arrays; fitted on training records only."""

    modalities: list[str]
    max_len: dict[str, int]

    def fit(self, records: Sequence[Record]) -> Featurizer: ...
    def transform(self, records: Sequence[Record]) -> list[dict[str, np.ndarray]]: ...
    def pooled(self, features: Sequence[dict[str, np.ndarray]]) -> np.ndarray: ...


@dataclass
class Fold:
    """One selection: which records train, which select, and their features."""

    name: str
    train: list[Record]
    select: list[Record]
    test: list[Record]
    featurizer: Any
    features: dict[str, list[dict[str, np.ndarray]]]

    def targets(self, part: str) -> np.ndarray:
        return np.array([float(r.target) for r in getattr(self, part)], dtype=np.float64)


@dataclass
class RecordBinarySpec:
    """The model side of a binary recipe (module-level callables or partials: jobs may be pickled)."""

    name: str
    build_model: Callable[[Any], nn.Module]
    build_objective: Callable[[np.ndarray], nn.Module]
    document: Callable[[Record], str]
    robustness: bool = True
    baselines: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def make_fold(splits: DatasetSplits, selection: str, protocol: ProtocolConfig, make_featurizer: Callable[[], Any]
              ) -> Fold:
    from polymodal.evaluation import temporal_holdout

    if selection == "valid":
        train, select = list(splits.train), list(splits.valid)
    else:
        train, select = temporal_holdout([*splits.train, *splits.valid], order_key=protocol.order_key,
                                         fraction=protocol.temporal_fraction)
    featurizer = make_featurizer().fit(train)
    features = {part: featurizer.transform(recs) for part, recs in
                (("train", train), ("select", select), ("test", list(splits.test)))}
    return Fold(selection, list(train), list(select), list(splits.test), featurizer, features)


def selection_manifest(folds: Sequence[Fold]) -> pd.DataFrame:
    """split.csv: which record was train / valid (selection) / test under each selection."""
    rows = [{"selection": fold.name, "split": split, "id": r.id}
            for fold in folds for split, recs in (("train", fold.train), ("valid", fold.select), ("test", fold.test))
            for r in recs]
    return pd.DataFrame(rows, columns=["selection", "split", "id"])


def record_binary_jobs(spec: RecordBinarySpec, folds: Sequence[Fold], seeds: int) -> list[Job]:
    jobs: list[Job] = []
    for fold in folds:
        for seed in range(seeds):
            jobs.append(Job(f"{fold.name}/seed_{seed}/{spec.name}", partial(_train_seed, spec, fold), seed=seed,
                            label=f"{spec.name} ({fold.name} selection, seed {seed})"))
        if spec.baselines:
            jobs.append(Job(f"{fold.name}/baselines", partial(_baselines, spec, fold), parallel=False))
    return jobs


def _rows(model: str, kind: str, fold: Fold, seed: int, part: str, scores: np.ndarray,
          condition: str = "none") -> pd.DataFrame:
    records = fold.select if part == "select" else fold.test
    return predictions_frame(model=model, kind=kind, split="valid" if part == "select" else "test",
                             ids=[r.id for r in records], selection=fold.name, seed=seed, condition=condition,
                             y_true=fold.targets(part).astype(int), score=np.asarray(scores, dtype=np.float64))


def _train_seed(spec: RecordBinarySpec, fold: Fold, ctx: JobContext) -> JobResult | None:
    import torch
    from torch.utils.data import DataLoader

    from polymodal.data.collate import Collator, FeatureDataset
    from polymodal.training import MultimodalSystem, make_trainer, predict_scores, seed_everything
    from polymodal.training.predict import drop_modality
    from polymodal.training.trainer import fit_resumable, quiet_lightning

    cfg = ctx.train
    seed_everything(ctx.seed)
    if not ctx.progress or not cfg.progress:
        quiet_lightning()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = spec.build_model(fold.featurizer)
    objective = spec.build_objective(fold.targets("train"))
    system = MultimodalSystem(model, objective, lr=cfg.lr, weight_decay=cfg.weight_decay)
    collator = Collator(fold.featurizer.modalities, fold.featurizer.max_len)
    datasets = {part: FeatureDataset(fold.features[part], fold.targets(part)) for part in ("train", "select", "test")}
    generator = torch.Generator().manual_seed(ctx.seed)
    train_loader = DataLoader(datasets["train"], batch_size=cfg.batch_size, shuffle=True, collate_fn=collator,
                              generator=generator)
    select_loader = DataLoader(datasets["select"], batch_size=256, shuffle=False, collate_fn=collator)
    trainer = make_trainer(ctx.dir, cfg)
    t0 = time.perf_counter()
    resumed_from = fit_resumable(trainer, system, train_loader, select_loader, ctx.dir)
    if not trainer.is_global_zero:
        return None
    seconds = time.perf_counter() - t0
    model.eval()
    frames = [_rows(spec.name, "recipe", fold, ctx.seed, part, predict_scores(model, datasets[part], collator))
              for part in ("select", "test")]
    if spec.robustness:
        for m in fold.featurizer.modalities:
            for part in ("select", "test"):
                scores = predict_scores(model, datasets[part], collator, transform=drop_modality(m))
                frames.append(_rows(spec.name, "recipe", fold, ctx.seed, part, scores, condition=f"drop:{m}"))
    from polymodal.io import atomic_path

    with atomic_path(Path(ctx.dir) / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    return JobResult(pd.concat(frames, ignore_index=True),
                     info={"seconds": round(seconds, 2), "epochs": int(trainer.current_epoch),
                           "resumed_from_epoch": int(resumed_from)})


def _baselines(spec: RecordBinarySpec, fold: Fold, ctx: JobContext) -> JobResult:
    """Trivial and learned baselines on exactly the same train / selection / test records."""
    from polymodal.baselines import AllPositiveBaseline, EmbeddingLogisticBaseline, PriorBaseline, TfidfLogisticBaseline

    y_train, y_sel = fold.targets("train"), fold.targets("select")
    frames = []
    for name, est in (("prior", PriorBaseline()), ("all-positive", AllPositiveBaseline())):
        est.fit(np.zeros((len(y_train), 1)), y_train)
        for part, n in (("select", len(fold.select)), ("test", len(fold.test))):
            frames.append(_rows(name, "trivial", fold, 0, part, est.predict_proba(np.zeros((n, 1)))[:, 1]))
    docs = {part: [spec.document(r) for r in getattr(fold, part)] for part in ("train", "select", "test")}
    tfidf = TfidfLogisticBaseline().fit(docs["train"], y_train, docs["select"], y_sel)
    pooled = {part: fold.featurizer.pooled(fold.features[part]) for part in ("train", "select", "test")}
    emb = EmbeddingLogisticBaseline().fit(pooled["train"], y_train, pooled["select"], y_sel)
    for part in ("select", "test"):
        frames.append(_rows("tfidf-logistic", "baseline", fold, 0, part, tfidf.predict_proba(docs[part])[:, 1]))
        frames.append(_rows("embedding-logistic", "baseline", fold, 0, part, emb.predict_proba(pooled[part])[:, 1]))
    return JobResult(pd.concat(frames, ignore_index=True))
