"""Run a binary-classification recipe end to end under the evaluation protocol.

For each selection split (the official valid split, and a temporal hold-out taken from the
latest part of train+valid) and each seed: fit the featuriser on the training records, train the
model with early stopping on the selection split, score the selection and test splits (and the
test split with each modality dropped), and fit every baseline on the same data. The protocol
then chooses thresholds on selection scores only, computes test metrics with bootstrap CIs, and
the run folder gets config.json, metrics.json, predictions.csv, report.md and plots.

Every finished seed is saved (``scores.npz``) and every epoch checkpointed, so rerunning the
same command after an interruption resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from polymodal.baselines import AllPositiveBaseline, EmbeddingLogisticBaseline, PriorBaseline, TfidfLogisticBaseline
from polymodal.config import ProtocolConfig
from polymodal.data.collate import Collator, FeatureDataset
from polymodal.data.schema import Record
from polymodal.data.splits import DatasetSplits
from polymodal.evaluation import drift_summary, evaluate_binary
from polymodal.io import atomic_path, atomic_write, write_json
from polymodal.reports import write_report
from polymodal.runs.environment import environment
from polymodal.runs.record_binary import Featurizer, make_fold
from polymodal.runs.record_binary import Fold as _Fold
from polymodal.training import MultimodalSystem, TrainConfig, make_trainer, predict_scores, seed_everything
from polymodal.training.predict import drop_modality
from polymodal.training.trainer import fit_resumable, quiet_lightning

log = logging.getLogger(__name__)

@dataclass
class BinaryProblem:
    """What a binary recipe hands to the runner.

    Attributes:
        name: the recipe name (the model's name in every table).
        splits: the dataset's train/valid/test Records.
        make_featurizer: a fresh, unfitted featuriser.
        build_model: (fitted featuriser) -> MultimodalModel.
        build_objective: (training targets) -> objective returning named parts with ``loss``.
        document: Record -> text for the TF-IDF baseline.
        published: the paper's numbers (list of dicts), for the report.
        description: one line on the model, for the report.
        cache_stats: () -> dict of embedding-cache statistics (hits, misses, seconds).
    """

    name: str
    splits: DatasetSplits
    make_featurizer: Callable[[], Featurizer]
    build_model: Callable[[Featurizer], nn.Module]
    build_objective: Callable[[np.ndarray], nn.Module]
    document: Callable[[Record], str]
    published: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    notes: list[str] = field(default_factory=list)
    cache_stats: Callable[[], dict[str, float]] | None = None


def run_binary(problem: BinaryProblem, protocol: ProtocolConfig, train_cfg: TrainConfig, out_dir: str | Path,
               *, config: dict[str, Any]) -> dict[str, Any] | None:
    """Train, evaluate and report; returns the metrics dict (None on non-zero DDP ranks)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    is_main = _global_rank() == 0
    if is_main:
        write_json(out_dir / "config.json", config)

    selections: dict[str, dict[str, Any]] = {}
    predictions: list[pd.DataFrame] = []
    robustness: dict[str, Any] = {}
    train_seconds: list[float] = []
    embed_seconds = 0.0
    folds: dict[str, _Fold] = {}
    for selection in protocol.selections:
        t0 = time.perf_counter()
        folds[selection] = fold = _make_fold(problem, selection, protocol)
        embed_seconds += time.perf_counter() - t0
        if is_main:  # `polymodal predict` needs the fitted featuriser (vocabularies, scalers)
            with atomic_path(out_dir / selection / "featurizer.pkl") as tmp, open(tmp, "wb") as fh:
                pickle.dump(fold.featurizer, fh)
    if train_cfg.workers > 1 and train_cfg.devices == 1 and train_cfg.num_nodes == 1:
        _train_in_parallel(problem, folds, protocol, train_cfg, out_dir)
    for selection, fold in folds.items():
        seed_scores = []
        for seed in range(protocol.seeds):
            result = _train_seed(problem, fold, seed, train_cfg, out_dir / selection / f"seed_{seed}",
                                 robustness=protocol.robustness)
            if result is None:  # a non-zero DDP rank: it only helps fitting
                continue
            seed_scores.append(result)
            train_seconds.append(float(result["seconds"]))
        if not is_main:
            continue
        models, preds, robust = _evaluate_fold(problem, fold, seed_scores, protocol)
        selections[selection] = models
        predictions.extend(p.assign(selection=selection) for p in preds)
        if selection == protocol.selections[0]:
            robustness = robust
    if not is_main:
        return None

    headline = protocol.selections[0]
    metrics: dict[str, Any] = {
        "recipe": problem.name,
        "task": "binary",
        "primary_metric": "roc_auc",
        "dataset": {
            "description": problem.splits.description,
            "version": problem.splits.description,
            "sizes": problem.splits.sizes(),
            "files": problem.splits.files,
        },
        "selection": {"name": headline, "description": _SELECTION_TEXT[headline]},
        "models": selections[headline],
        "selections": selections,
        "robustness": robustness,
        "drift": drift_summary(
            {name: recs for name, recs in problem.splits.items()}, order_key=protocol.order_key
        ),
        "published": problem.published,
        "skips": problem.splits.skips.to_dict(),
        "timing": {
            "featurize_seconds": round(embed_seconds, 2),
            "embedding_cache": problem.cache_stats() if problem.cache_stats else {},
            "train_seconds_per_seed": [round(s, 2) for s in train_seconds],
            "total_seconds": round(time.perf_counter() - started, 2),
        },
        "environment": environment(),
        "notes": list(problem.notes),
    }
    write_json(out_dir / "metrics.json", metrics)
    frame = pd.concat(predictions, ignore_index=True)
    atomic_csv(frame, out_dir / "predictions.csv")
    write_report(out_dir, metrics, frame[frame["selection"] == headline])
    return metrics


_SELECTION_TEXT = {
    "valid": "official valid split (covers the same period as train)",
    "temporal": "temporal hold-out: the latest trials of train+valid by registration order (test is later still)",
}


def _make_fold(problem: BinaryProblem, selection: str, protocol: ProtocolConfig) -> _Fold:
    return make_fold(problem.splits, selection, protocol, problem.make_featurizer)


def _train_in_parallel(problem: BinaryProblem, folds: dict[str, _Fold], protocol: ProtocolConfig,
                       cfg: TrainConfig, out_dir: Path) -> None:
    """Train every unfinished (selection, seed) in a pool of processes; each writes its scores.npz.

    Seeds are independent, and a small model trains on one thread, so on a machine with W cores
    W seeds run at once. Spawned (not forked) workers: forking a process whose OpenMP pool is
    already running can deadlock. The model and objective builders must therefore be picklable
    (module-level functions or functools.partial, not lambdas).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(fold, seed, out_dir / name / f"seed_{seed}") for name, fold in folds.items()
            for seed in range(protocol.seeds) if not (out_dir / name / f"seed_{seed}" / "scores.npz").exists()]
    if len(jobs) < 2:
        return
    builders = _Builders(problem.build_model, problem.build_objective)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(cfg.workers, len(jobs)), mp_context=context) as pool:
        futures = [pool.submit(_train_seed, builders, fold, seed, cfg, seed_dir, robustness=protocol.robustness)
                   for fold, seed, seed_dir in jobs]
        for future in futures:
            future.result()  # re-raise a worker's error here, with its traceback


@dataclass
class _Builders:
    """The two callables of a BinaryProblem a training process needs (the rest stays behind)."""

    build_model: Callable[[Featurizer], nn.Module]
    build_objective: Callable[[np.ndarray], nn.Module]


def _train_seed(problem: BinaryProblem | _Builders, fold: _Fold, seed: int, cfg: TrainConfig, seed_dir: Path, *,
                robustness: bool) -> dict[str, Any] | None:
    done = seed_dir / "scores.npz"
    if done.exists():
        log.info("%s seed %d: finished earlier, reusing %s", fold.name, seed, done)
        with np.load(done) as saved:
            return {k: saved[k] for k in saved.files}
    seed_everything(seed)
    if not cfg.progress:
        quiet_lightning()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = problem.build_model(fold.featurizer)
    objective = problem.build_objective(fold.targets("train"))
    system = MultimodalSystem(model, objective, lr=cfg.lr, weight_decay=cfg.weight_decay)
    collator = Collator(fold.featurizer.modalities, fold.featurizer.max_len)
    datasets = {part: FeatureDataset(fold.features[part], fold.targets(part)) for part in ("train", "select", "test")}
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(datasets["train"], batch_size=cfg.batch_size, shuffle=True, collate_fn=collator,
                              generator=generator)
    select_loader = DataLoader(datasets["select"], batch_size=256, shuffle=False, collate_fn=collator)
    trainer = make_trainer(seed_dir, cfg)
    t0 = time.perf_counter()
    # Recorded in scores.npz, so a resumed seed says where it picked up (-1: a fresh start).
    resumed_from = fit_resumable(trainer, system, train_loader, select_loader, seed_dir)
    if not trainer.is_global_zero:
        return None
    seconds = time.perf_counter() - t0
    model.eval()
    result: dict[str, Any] = {
        "select": predict_scores(model, datasets["select"], collator),
        "test": predict_scores(model, datasets["test"], collator),
        "seconds": np.array(seconds),
        "epochs": np.array(trainer.current_epoch),
        "resumed_from_epoch": np.array(resumed_from),
    }
    if robustness:
        for m in fold.featurizer.modalities:
            drop = drop_modality(m)
            result[f"select:drop:{m}"] = predict_scores(model, datasets["select"], collator, transform=drop)
            result[f"test:drop:{m}"] = predict_scores(model, datasets["test"], collator, transform=drop)
    with atomic_path(seed_dir / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    with atomic_path(done) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **result)
    return result


def _evaluate_fold(problem: BinaryProblem, fold: _Fold, seed_scores: list[dict[str, Any]],
                   protocol: ProtocolConfig) -> tuple[dict[str, Any], list[pd.DataFrame], dict[str, Any]]:
    y_sel, y_test = fold.targets("select"), fold.targets("test")
    scores: dict[str, tuple[str, list[np.ndarray], list[np.ndarray]]] = {
        problem.name: ("recipe", [s["select"] for s in seed_scores], [s["test"] for s in seed_scores])
    }
    if protocol.baselines:
        for name, (kind, sel, test) in _baseline_scores(problem, fold).items():
            scores[name] = (kind, [sel], [test])

    def evaluate(sel: list[np.ndarray], test: list[np.ndarray]) -> dict[str, Any]:
        return evaluate_binary(y_sel, sel, y_test, test, threshold_rule=protocol.threshold_rule,
                               n_boot=protocol.n_boot, seed=0)

    models: dict[str, Any] = {}
    frames = []
    for name, (kind, sel, test) in scores.items():
        result = evaluate(sel, test)
        result["kind"] = kind
        models[name] = result
        for seed, (s_sel, s_test) in enumerate(zip(sel, test, strict=True)):
            for split, recs, y, s in (("valid", fold.select, y_sel, s_sel), ("test", fold.test, y_test, s_test)):
                frames.append(pd.DataFrame({"id": [r.id for r in recs], "split": split, "model": name,
                                            "seed": seed, "y_true": y, "score": s}))
    robustness: dict[str, Any] = {}
    if protocol.robustness and seed_scores and any(k.startswith("test:drop:") for k in seed_scores[0]):
        robustness["none"] = models[problem.name]["splits"]["test"]
        for m in fold.featurizer.modalities:
            res = evaluate([s[f"select:drop:{m}"] for s in seed_scores], [s[f"test:drop:{m}"] for s in seed_scores])
            robustness[f"drop:{m}"] = res["splits"]["test"]
    return models, frames, robustness


def _baseline_scores(problem: BinaryProblem, fold: _Fold) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """Trivial and learned baselines on exactly the same train / selection / test records."""
    y_train, y_sel = fold.targets("train"), fold.targets("select")
    out: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    n_sel, n_test = len(fold.select), len(fold.test)
    for name, est in (("prior", PriorBaseline()), ("all-positive", AllPositiveBaseline())):
        est.fit(np.zeros((len(y_train), 1)), y_train)
        out[name] = ("trivial", est.predict_proba(np.zeros((n_sel, 1)))[:, 1],
                     est.predict_proba(np.zeros((n_test, 1)))[:, 1])
    docs = {part: [problem.document(r) for r in getattr(fold, part)] for part in ("train", "select", "test")}
    tfidf = TfidfLogisticBaseline().fit(docs["train"], y_train, docs["select"], y_sel)
    out["tfidf-logistic"] = ("baseline", tfidf.predict_proba(docs["select"])[:, 1],
                             tfidf.predict_proba(docs["test"])[:, 1])
    pooled = {part: fold.featurizer.pooled(fold.features[part]) for part in ("train", "select", "test")}
    emb = EmbeddingLogisticBaseline().fit(pooled["train"], y_train, pooled["select"], y_sel)
    out["embedding-logistic"] = ("baseline", emb.predict_proba(pooled["select"])[:, 1],
                                 emb.predict_proba(pooled["test"])[:, 1])
    return out


def _global_rank() -> int:
    """0 on the launching process; Lightning's DDP launcher gives the others LOCAL_RANK / NODE_RANK."""
    if int(os.environ.get("NODE_RANK", "0")) != 0:
        return 1
    return int(os.environ.get("LOCAL_RANK", "0"))


def atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda fh: frame.to_csv(fh, index=False))
