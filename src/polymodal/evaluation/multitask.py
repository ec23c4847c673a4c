"""Metrics of multi-task classification with missing labels (pure functions, scikit-learn inside).

Labels are integer class indices with ``-1`` for "no label for this task on this sample"; every
metric of a task is computed on the samples that carry that task's label, and nowhere else.

The combined score is the MEIJU 2025 challenge's joint metric: the harmonic mean of the tasks'
weighted F1 (Track I, low resource). Source: the official baseline, AI-S2-Lab/MEIJU2025-baseline,
``train_baseline.py`` @ 71fdcdb (``harmonic_mean(M_emotion, M_intent) = 2 M_e M_i / (M_e + M_i)``
on ``f1_score(..., average="weighted")`` for track 1); its README table checks out against it
(English track 1: 0.3174 and 0.3944 give 0.3516). With more than two tasks we use the harmonic mean
of all of them, which reduces to that formula for two.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

__all__ = ["MISSING", "cluster_weights", "harmonic_score", "multitask_metrics", "task_metrics", "weighted_task_metrics"]

MISSING = -1


def task_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Weighted F1 (the MEIJU metric), macro F1 and accuracy over the labelled samples of one task.

    Args:
        y_true: (N,) int class indices, ``-1`` where the sample has no label for this task.
        y_pred: (N,) int predicted class indices.
        n_classes: number of classes C (macro F1 averages over classes present in y_true or y_pred).

    Returns:
        ``{"weighted_f1", "macro_f1", "accuracy", "n"}``; NaN metrics when no sample is labelled.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    keep = y_true != MISSING
    n = int(keep.sum())
    if n == 0:
        return {"weighted_f1": float("nan"), "macro_f1": float("nan"), "accuracy": float("nan"), "n": 0}
    t, p = y_true[keep], y_pred[keep]
    if t.max() >= n_classes or t.min() < 0:
        raise ValueError(f"labels must lie in [0, {n_classes}) or be {MISSING}")
    return {
        "weighted_f1": float(f1_score(t, p, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(t, p, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(t, p)),
        "n": n,
    }


def harmonic_score(values: Sequence[float]) -> float:
    """The MEIJU joint score: harmonic mean of per-task weighted F1 (0 if any is 0; NaN if any is NaN)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 or np.isnan(arr).any():
        return float("nan")
    if (arr <= 0).any():
        return 0.0
    return float(arr.size / np.sum(1.0 / arr))


def multitask_metrics(y_true: np.ndarray, y_pred: np.ndarray, tasks: Sequence[str],
                      n_classes: Sequence[int]) -> dict[str, float]:
    """Flat metrics of every task plus ``meiju_score``.

    Args:
        y_true: (N, T) int, ``-1`` for a missing label.
        y_pred: (N, T) int predictions (any value where the label is missing).
        tasks: T task names, e.g. ``("emotion", "intent")``.
        n_classes: T class counts.

    Returns:
        ``weighted_f1_<task>``, ``macro_f1_<task>``, ``accuracy_<task>``, ``n_<task>`` for each task and
        ``meiju_score`` (harmonic mean of the weighted F1s).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 2 or y_true.shape[1] != len(tasks) or len(tasks) != len(n_classes):
        raise ValueError(f"y_true must be (N, {len(tasks)}), got {y_true.shape}")
    out: dict[str, float] = {}
    for j, (task, c) in enumerate(zip(tasks, n_classes, strict=True)):
        for name, value in task_metrics(y_true[:, j], y_pred[:, j], c).items():
            out[f"{name}_{task}"] = value
    out["meiju_score"] = harmonic_score([out[f"weighted_f1_{t}"] for t in tasks])
    return out


def cluster_weights(rng: np.random.Generator, clusters: np.ndarray, n_boot: int) -> np.ndarray:
    """Row weights of a cluster bootstrap: each resample draws clusters with replacement.

    Args:
        rng: the generator (same seed, same resamples).
        clusters: (N,) cluster key of every row (a dialogue id; a row's own id when it has none).
        n_boot: resamples B.

    Returns:
        (B, N) float weights: how many times the row's cluster was drawn.
    """
    _, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    k = int(inverse.max()) + 1 if inverse.size else 0
    draws = rng.integers(0, k, size=(n_boot, k))  # (B, K)
    counts = np.stack([np.bincount(d, minlength=k) for d in draws]).astype(np.float64)  # (B, K)
    return counts[:, inverse]  # (B, N)


def weighted_task_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                          weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted F1, macro F1 and accuracy for many row weightings at once (bootstrap resamples).

    The same numbers as :func:`task_metrics` on the resampled rows (``f1_score(..., sample_weight=w)``
    with the labels present in the resample); computed from one weighted confusion matrix per
    resample so that hundreds of resamples cost one matrix product. ``tests/test_meiju.py`` checks
    them against scikit-learn on explicit resamples.

    Args:
        y_true: (N,) labels of the labelled rows only (no ``-1``).
        y_pred: (N,) predictions.
        n_classes: C.
        weights: (B, N) row weights.

    Returns:
        ``{"weighted_f1", "macro_f1", "accuracy"}``, each (B,).
    """
    cell = y_true.astype(np.int64) * n_classes + y_pred.astype(np.int64)  # (N,)
    onehot = np.zeros((len(cell), n_classes * n_classes))
    onehot[np.arange(len(cell)), cell] = 1.0
    conf = (weights @ onehot).reshape(-1, n_classes, n_classes)  # (B, C, C): [true, pred]
    tp = np.einsum("bcc->bc", conf)  # (B, C)
    support, predicted = conf.sum(2), conf.sum(1)  # (B, C)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1e-12), 0.0)
        total = support.sum(1)
        weighted = (f1 * support).sum(1) / total
        present = (support + predicted) > 0
        macro = (f1 * present).sum(1) / present.sum(1)
        accuracy = tp.sum(1) / total
    return {"weighted_f1": weighted, "macro_f1": macro, "accuracy": accuracy}
