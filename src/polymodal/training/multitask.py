"""In-memory training of :class:`MultiTaskClassifier` with labels missing per task (masked loss).

The loss is the sum over tasks of the cross-entropy over the batch's samples that carry that task's
label (a missing label, ``-1``, contributes nothing). Early stopping keeps the epoch with the best
validation joint score (harmonic mean of the tasks' weighted F1, the MEIJU metric), computed only on
validation samples that carry each label. Like the other tiny in-memory loops (see
``training.best_weights``) this avoids a Lightning trainer's start-up: a benchmark fits hundreds
of these models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from polymodal.evaluation.multitask import MISSING, multitask_metrics
from polymodal.training.best_weights import BestWeights
from polymodal.training.multitask_model import MultiTaskClassifier

__all__ = ["FitSettings", "MultiTaskData", "fit_multitask", "masked_loss", "predict_proba"]


@dataclass
class MultiTaskData:
    """Samples as arrays.

    Attributes:
        features: modality -> (N, D_m) float32.
        masks: modality -> (N,) bool presence.
        labels: (N, T) int64 class indices, ``-1`` where a task's label is missing.
    """

    features: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    labels: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name, arr in {**self.features, **self.masks}.items():
            if len(arr) != n:
                raise ValueError(f"modality {name!r} has {len(arr)} rows, labels have {n}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> MultiTaskData:
        return MultiTaskData({k: v[idx] for k, v in self.features.items()}, {k: v[idx] for k, v in self.masks.items()},
                             self.labels[idx])

    def with_labels(self, labels: np.ndarray) -> MultiTaskData:
        return MultiTaskData(self.features, self.masks, labels)

    @staticmethod
    def concat(parts: Sequence[MultiTaskData]) -> MultiTaskData:
        keys = parts[0].features.keys()
        return MultiTaskData({k: np.concatenate([p.features[k] for p in parts]) for k in keys},
                             {k: np.concatenate([p.masks[k] for p in parts]) for k in keys},
                             np.concatenate([p.labels for p in parts]))


@dataclass(frozen=True)
class FitSettings:
    """Optimisation settings of one fit (the recipe config carries the defaults and their reasons)."""

    hidden: int = 256
    dropout: float = 0.2
    heads: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 40
    patience: int = 5
    min_steps: int = 25  # optimiser steps per epoch at least (a 5% label budget is only a few batches)


def _tensors(data: MultiTaskData, modalities: Sequence[str]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    feats = {m: torch.as_tensor(data.features[m], dtype=torch.float32) for m in modalities}
    masks = {m: torch.as_tensor(data.masks[m], dtype=torch.bool) for m in modalities}
    return feats, masks


@torch.no_grad()
def predict_proba(model: MultiTaskClassifier, data: MultiTaskData, batch_size: int = 2048) -> dict[str, np.ndarray]:
    """Class probabilities of every task: task -> (N, C_task) float32 (rows sum to 1)."""
    model.eval()
    feats, masks = _tensors(data, model.modalities)
    out: dict[str, list[np.ndarray]] = {t: [] for t in model.tasks}
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        logits = model({m: v[sl] for m, v in feats.items()}, {m: v[sl] for m, v in masks.items()})
        for t in model.tasks:
            out[t].append(torch.softmax(logits[t], dim=-1).numpy())
    return {t: np.concatenate(v) if v else np.zeros((0, model.heads[t].out_features), np.float32)
            for t, v in out.items()}


def masked_loss(logits: Mapping[str, torch.Tensor], labels: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
    """Sum over tasks of the mean cross-entropy over the samples that carry the task's label.

    Args:
        logits: task -> (B, C_task).
        labels: (B, T) int64, ``-1`` where missing.
        tasks: T task names (column order of ``labels``).

    Returns:
        Scalar loss; a task without any label in the batch contributes 0 (and no gradient).
    """
    loss = logits[tasks[0]].new_zeros(())
    for j, task in enumerate(tasks):
        have = labels[:, j] != MISSING  # (B,)
        if have.any():
            loss = loss + nn.functional.cross_entropy(logits[task][have], labels[have, j])
    return loss


def _score(model: MultiTaskClassifier, data: MultiTaskData, n_classes: Sequence[int]) -> float:
    probs = predict_proba(model, data)
    pred = np.stack([probs[t].argmax(1) for t in model.tasks], axis=1)  # (N, T)
    return multitask_metrics(data.labels, pred, model.tasks, n_classes)["meiju_score"]


def fit_multitask(train: MultiTaskData, valid: MultiTaskData, task_classes: Mapping[str, int],
                  cross_task: tuple[str, str] | None, settings: FitSettings, seed: int,
                  modalities: Sequence[str] | None = None) -> tuple[MultiTaskClassifier, dict]:
    """Train one model; early stopping on the validation joint score.

    Args:
        train: training samples (labels may be missing per task; pseudo-labels are plain labels here).
        valid: validation samples (never trained on).
        task_classes: task -> number of classes (column order of ``labels``).
        cross_task: ``(helper, target)`` or ``None`` (no-cross-task ablation).
        settings: optimisation settings.
        seed: seeds the initial weights and the batch order.
        modalities: which feature keys to use (default: all of ``train.features``).

    Returns:
        The model with its best-validation weights, and info (best epoch, best validation score).
    """
    modalities = tuple(sorted(modalities or train.features))
    torch.manual_seed(seed)
    dims = {m: int(train.features[m].shape[1]) for m in modalities}
    model = MultiTaskClassifier(dims, task_classes, hidden=settings.hidden, dropout=settings.dropout,
                                cross_task=cross_task, heads=settings.heads)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    feats, masks = _tensors(train, modalities)
    labels = torch.as_tensor(train.labels, dtype=torch.long)  # (N, T)
    n_classes = list(task_classes.values())
    best = BestWeights(model, patience=settings.patience, mode="max")
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(settings.max_epochs):
        model.train()
        # An epoch is one pass over the data, or min_steps batches when that is longer (small budgets
        # cycle through their samples), so that early stopping sees comparable amounts of training.
        n_steps = max(math.ceil(len(train) / settings.batch_size), settings.min_steps)
        order = torch.cat([torch.randperm(len(train), generator=gen)
                           for _ in range(math.ceil(n_steps * settings.batch_size / len(train)))])
        for idx in order[: n_steps * settings.batch_size].split(settings.batch_size):
            logits = model({m: v[idx] for m, v in feats.items()}, {m: v[idx] for m, v in masks.items()})
            loss = masked_loss(logits, labels[idx], model.tasks)
            if not loss.requires_grad:
                continue  # a batch without any label
            opt.zero_grad()
            loss.backward()
            opt.step()
        if best.update(_score(model, valid, n_classes), epoch):
            break
    best.restore()
    model.eval()
    return model, {"best_epoch": best.best_epoch, "valid_meiju_score": best.best, "epochs": len(best.history)}
