"""The meiju recipe's work: build a case, hide labels, train every model, return long-format predictions.

One call of :func:`run_meiju` trains, for every label budget and seed, the recipe model (cross-task
attention + pseudo-labels at the paper's 0.99), the validation-chosen-threshold variant, the model
without pseudo-labels (round 0) and the no-cross-task ablation, plus the majority and TF-IDF
logistic-regression baselines, and returns their valid and test predictions in the run contract's
long format (one row per sample and task) with every pseudo-labelling round's statistics.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from polymodal.baselines.multitask_text import fit_majority, fit_tfidf_logreg, proba_full
from polymodal.data.sources.meld import load_meld
from polymodal.data.sources.mintrec import load_mintrec
from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.dialogue import embed_dialogue
from polymodal.encoders.frozen import FrozenEncoder
from polymodal.errors import ConfigError
from polymodal.evaluation.multitask import MISSING, multitask_metrics
from polymodal.training.multitask import FitSettings, MultiTaskData, fit_multitask, predict_proba
from polymodal.training.pseudo_label import self_train

if TYPE_CHECKING:
    from polymodal.recipes.meiju import MeijuConfig

__all__ = ["CASES", "CaseData", "MeijuRun", "budget_label", "label_budget", "load_case", "run_meiju"]

# case -> (tasks in column order, (helper, target) of the cross-task attention)
CASES: dict[str, tuple[tuple[str, ...], tuple[str, str]]] = {
    "paired": (("emotion", "sentiment"), ("sentiment", "emotion")),
    "unpaired": (("emotion", "intent"), ("intent", "emotion")),
}
AVAILABLE_MODALITIES = ("context", "text")
SPLITS = ("train", "valid", "test")


@dataclass
class CaseData:
    """One case's samples.

    Attributes:
        name: "paired" or "unpaired".
        classes: task -> class names (index order), tasks in column order.
        cross_task: (helper, target).
        frames: split -> rows with ``id, source, dialogue, order, text, context``.
        data: split -> arrays for the model (labels (N, T), ``-1`` missing).
        applicable: split -> (N, T) bool, whether the sample's corpus has the task.
    """

    name: str
    classes: dict[str, tuple[str, ...]]
    cross_task: tuple[str, str]
    frames: dict[str, pd.DataFrame]
    data: dict[str, MultiTaskData]
    applicable: dict[str, np.ndarray]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.classes)


def check_modalities(modalities: tuple[str, ...]) -> tuple[str, ...]:
    """The requested modalities, or a ConfigError saying which are absent from these text-only data."""
    missing = [m for m in modalities if m not in AVAILABLE_MODALITIES]
    if missing:
        raise ConfigError(f"modalities {missing} are not available: MELD_text and MIntRec_text are transcripts "
                          f"only (no audio or video); available: {list(AVAILABLE_MODALITIES)}")
    if not modalities:
        raise ConfigError("at least one modality is needed")
    return tuple(sorted(set(modalities)))


def load_case(cfg: MeijuConfig, data_dir: str | Path, encoder: FrozenEncoder,
              cache: EmbeddingCache | None) -> CaseData:
    """Read the corpora of ``cfg.case``, embed them and arrange labels as (N, T) with ``-1`` missing."""
    tasks, cross = CASES[cfg.case]
    modalities = check_modalities(cfg.modalities)
    meld = load_meld(data_dir, context_turns=cfg.context_turns)
    parts = [(meld.frame.assign(source="meld"), meld.labels)]
    if cfg.case == "unpaired":
        mint = load_mintrec(data_dir, version=cfg.mintrec_version, context_turns=cfg.context_turns)
        parts.append((mint.frame.assign(source=f"mintrec{cfg.mintrec_version}"), mint.labels))
    classes: dict[str, tuple[str, ...]] = {}
    for _, labels in parts:
        classes.update({t: c for t, c in labels.items() if t in tasks})
    classes = {t: classes[t] for t in tasks}
    frame = pd.concat([f for f, _ in parts], ignore_index=True)
    # Dialogue keys must stay distinct across corpora for the pooled context.
    frame["dialogue"] = np.where(frame["dialogue"].isna(), None, frame["source"] + ":" + frame["dialogue"].astype(str))
    vectors = embed_dialogue(frame, encoder, cache, context=cfg.context, max_turns=cfg.context_turns)
    labels = np.full((len(frame), len(tasks)), MISSING, dtype=np.int64)
    for j, task in enumerate(tasks):
        if task in frame:
            lookup = {c: i for i, c in enumerate(classes[task])}
            labels[:, j] = frame[task].map(lookup).fillna(MISSING).astype(np.int64).to_numpy()
    applicable = labels != MISSING
    features = {"text": vectors["text"], "context": vectors["context"]}
    masks = {"text": np.ones(len(frame), dtype=bool), "context": vectors["context_mask"]}
    out_frames, out_data, out_app = {}, {}, {}
    for split in SPLITS:
        rows = np.flatnonzero(frame["split"].to_numpy() == split)
        out_frames[split] = frame.iloc[rows][["id", "source", "dialogue", "order", "text", "context"]].reset_index(
            drop=True)
        out_data[split] = MultiTaskData({m: features[m][rows] for m in modalities},
                                        {m: masks[m][rows] for m in modalities}, labels[rows])
        out_app[split] = applicable[rows]
    return CaseData(cfg.case, classes, cross, out_frames, out_data, out_app)


def label_budget(labels: np.ndarray, applicable: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which training samples keep their labels: a seeded share per corpus, stratified by its first task.

    Args:
        labels: (N, T) training labels.
        applicable: (N, T) bool, tasks of each sample's corpus (samples of one corpus share a pattern).
        fraction: kept share in (0, 1]; 1 keeps all.
        seed: seeds the draw.

    Returns:
        (N,) bool, True where the labels are kept.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    keep = np.zeros(len(labels), dtype=bool)
    if fraction >= 1.0:
        keep[:] = True
        return keep
    patterns, group = np.unique(applicable, axis=0, return_inverse=True)
    for g, pattern in enumerate(patterns):
        rows = np.flatnonzero(group.ravel() == g)
        if not pattern.any():
            continue
        strata = labels[rows, int(np.argmax(pattern))]
        n_keep = max(1, round(fraction * len(rows)))
        try:
            kept, _ = train_test_split(rows, train_size=n_keep, stratify=strata, random_state=seed)
        except ValueError:  # a class too rare to stratify at this size: plain seeded draw
            kept = np.random.default_rng(seed).choice(rows, size=n_keep, replace=False)
        keep[kept] = True
    return keep


def budget_label(fraction: float) -> str:
    """0.1 -> '10%' (row names carry the budget, e.g. 'meiju [10%]')."""
    pct = 100.0 * fraction
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}%"


@dataclass
class MeijuRun:
    """What :func:`run_meiju` returns.

    Attributes:
        predictions: long format, one row per (model, seed, split, sample, task): common columns
            ``model, kind, selection, fold, seed, condition, subset, split, id`` and the task's
            ``dialogue, source, budget, task, y_true`` (class name, ``""`` when missing), ``y_pred``,
            ``probabilities`` (JSON object class -> probability).
        pseudo: one row per (budget, seed, variant, round, threshold, task) with the count and precision
            of the pseudo-labels against the hidden true labels and the round model's validation score.
        info: timings, chosen thresholds and C values, fit counts.
    """

    predictions: pd.DataFrame
    pseudo: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def _long_rows(case: CaseData, split: str, model: str, kind: str, seed: int, budget: str,
               probs: dict[str, np.ndarray], labelled_only: bool, with_probabilities: bool) -> pd.DataFrame:
    frame, labels = case.frames[split], case.data[split].labels
    parts = []
    for j, task in enumerate(case.tasks):
        names = np.asarray(case.classes[task], dtype=object)
        p = probs[task]
        rows = np.flatnonzero(labels[:, j] != MISSING) if labelled_only else np.arange(len(frame))
        y = labels[rows, j]
        part = pd.DataFrame({
            "model": model, "kind": kind, "selection": "valid", "fold": 0, "seed": seed, "condition": "none",
            "subset": "all", "split": split, "id": frame["id"].to_numpy()[rows],
            "dialogue": frame["dialogue"].to_numpy()[rows], "source": frame["source"].to_numpy()[rows],
            "budget": budget, "task": task,
            "y_true": np.where(y == MISSING, "", names[np.clip(y, 0, None)]),
            "y_pred": names[p[rows].argmax(1)],
        })
        if with_probabilities:
            part["probabilities"] = [json.dumps(dict(zip(names.tolist(), np.round(r, 4).tolist(), strict=True)))
                                     for r in p[rows]]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _settings(cfg: MeijuConfig) -> FitSettings:
    return FitSettings(hidden=cfg.hidden, dropout=cfg.dropout, heads=cfg.heads, lr=cfg.lr,
                       weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs,
                       patience=cfg.patience, min_steps=cfg.min_steps)


def _valid_score(model: Any, case: CaseData) -> float:
    probs = predict_proba(model, case.data["valid"])
    pred = np.stack([probs[t].argmax(1) for t in case.tasks], axis=1)
    return multitask_metrics(case.data["valid"].labels, pred, case.tasks,
                             [len(case.classes[t]) for t in case.tasks])["meiju_score"]


def run_cell(case: CaseData, cfg: MeijuConfig, fraction: float, seed: int, *, labelled_only: bool = False,
             with_probabilities: bool = True, save_dir: Path | None = None
             ) -> tuple[list[pd.DataFrame], list[dict], dict]:
    """Every model of one (budget, seed): predictions frames, pseudo-label rows and info.

    With ``save_dir`` the headline model's weights are written there as ``model.pt`` (for predict).
    """
    budget = budget_label(fraction)
    train, valid = case.data["train"], case.data["valid"]
    keep = label_budget(train.labels, case.applicable["train"], fraction, seed)
    labeled, unlabeled = train.subset(np.flatnonzero(keep)), train.subset(np.flatnonzero(~keep))
    app_unlabeled = case.applicable["train"][~keep]
    task_classes = {t: len(c) for t, c in case.classes.items()}
    settings = _settings(cfg)
    fits = 0

    def fit(data: MultiTaskData, cross: bool = cfg.cross_task) -> Any:
        nonlocal fits
        fits += 1
        model, _ = fit_multitask(data, valid, task_classes, case.cross_task if cross else None, settings, seed)
        return model

    def emit(model_name: str, kind: str, probs_by_split: dict[str, dict[str, np.ndarray]]) -> None:
        for split, probs in probs_by_split.items():
            frames.append(_long_rows(case, split, f"{model_name} [{budget}]", kind, seed, budget, probs,
                                     labelled_only, with_probabilities))

    def model_probs(model: Any) -> dict[str, dict[str, np.ndarray]]:
        return {s: predict_proba(model, case.data[s]) for s in ("valid", "test")}

    def save(model: Any) -> None:
        if save_dir is not None:
            from polymodal.io import atomic_path

            save_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(save_dir / "model.pt") as tmp:
                torch.save(model.state_dict(), tmp)

    frames: list[pd.DataFrame] = []
    pseudo_rows: list[dict] = []
    info: dict[str, Any] = {"budget": budget, "seed": seed, "n_labeled": int(keep.sum()),
                            "n_unlabeled": int((~keep).sum())}
    start = fit(labeled)
    can_pseudo = fraction < 1.0 and cfg.rounds > 0 and len(unlabeled) > 0
    if can_pseudo:
        emit("meiju no PL", "ablation", model_probs(start))
        variants = [("meiju", "recipe", (cfg.threshold,))]
        if cfg.threshold_grid:
            variants.insert(0, ("meiju PL=valid-threshold", "recipe", tuple(cfg.threshold_grid)))
        round1: dict[float, tuple[Any, float]] = {}  # shared round-1 fits (the grid holds 0.99 too)
        for name, kind, grid in variants:
            model, chosen, stats = self_train(fit, predict_proba, lambda m: _valid_score(m, case), labeled, unlabeled,
                                              case.tasks, app_unlabeled, grid, cfg.rounds, start, round1=round1)
            emit(name, kind, model_probs(model))
            if name == "meiju":
                save(model)
            info[f"threshold[{name}]"] = chosen
            pseudo_rows += [{"budget": budget, "seed": seed, "variant": name, "chosen_threshold": chosen,
                             **vars(s)} for s in stats]
    else:
        emit("meiju", "recipe", model_probs(start))
        save(start)
    if cfg.ablation and cfg.cross_task:
        emit("meiju no PL, no cross-task" if can_pseudo else "meiju no cross-task", "ablation",
             model_probs(fit(labeled, cross=False)))
    if cfg.baselines:
        texts = {s: case.frames[s]["text"].tolist() for s in SPLITS}
        maj: dict[str, dict[str, np.ndarray]] = {"valid": {}, "test": {}}
        lr: dict[str, dict[str, np.ndarray]] = {"valid": {}, "test": {}}
        labeled_texts = [t for t, k in zip(texts["train"], keep, strict=True) if k]
        for j, task in enumerate(case.tasks):
            n_c = len(case.classes[task])
            dummy = fit_majority(labeled.labels[:, j])
            pipe, c = fit_tfidf_logreg(labeled_texts, labeled.labels[:, j], texts["valid"], valid.labels[:, j],
                                       cs=cfg.tfidf_cs, seed=seed)
            info[f"tfidf_C[{task}]"] = c
            for split in ("valid", "test"):
                maj[split][task] = proba_full(dummy, texts[split], n_c)
                lr[split][task] = proba_full(pipe, texts[split], n_c)
        emit("majority", "trivial", maj)
        emit("tfidf-logreg", "baseline", lr)
    info["fits"] = fits
    return frames, pseudo_rows, info


def run_meiju(cfg: MeijuConfig, data_dir: str | Path, encoder: FrozenEncoder, cache: EmbeddingCache | None, *,
              labelled_only: bool = False, with_probabilities: bool = True, log: Any = None) -> MeijuRun:
    """Train every model of every (budget, seed) of ``cfg`` and return their predictions.

    Args:
        cfg: the recipe config.
        data_dir: directory holding MELD_text/ (and MIntRec_text/ for the unpaired case).
        encoder: frozen text encoder; cache: the embedding cache (None: encode directly).
        labelled_only: drop prediction rows of tasks a sample has no label for (smaller frames for
            benchmarks; the recipe keeps them with an empty ``y_true``).
        with_probabilities: add the JSON ``probabilities`` column.
        log: optional ``print``-like callable for progress lines.

    Returns:
        A :class:`MeijuRun`.
    """
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    case = load_case(cfg, data_dir, encoder, cache)
    info: dict[str, Any] = {"load_seconds": round(time.perf_counter() - t0, 1), "cells": [],
                            "classes": {t: list(c) for t, c in case.classes.items()}}
    frames, pseudo = [], []
    for fraction in cfg.budgets:
        for seed in range(cfg.seeds):
            t = time.perf_counter()
            f, p, cell = run_cell(case, cfg, fraction, seed, labelled_only=labelled_only,
                                  with_probabilities=with_probabilities)
            cell["seconds"] = round(time.perf_counter() - t, 1)
            frames += f
            pseudo += p
            info["cells"].append(cell)
            if log is not None:
                log(f"meiju {cfg.case} {cell['budget']} seed {seed}: {cell['fits']} fits, {cell['seconds']} s")
    info["seconds"] = round(time.perf_counter() - t0, 1)
    return MeijuRun(pd.concat(frames, ignore_index=True), pd.DataFrame(pseudo), info)
