"""Self-training rounds with confidence-thresholded pseudo-labels (arXiv 2501.06215's low-resource step).

Round 0 is a model trained on the labelled samples only. In round r >= 1 the previous round's model
predicts every unlabelled sample; for each task that the sample's source has (``applicable``), the
predicted class becomes a pseudo-label when its probability is at least the threshold; a new model is
trained from scratch on the labelled samples plus the pseudo-labelled ones. Pseudo-labels are redrawn
every round from the newest model (not frozen once given), so a wrong early label can be withdrawn.

The threshold is the paper's 0.99, or chosen on validation: every candidate of a grid runs round 1,
the one whose round-1 model has the best validation joint score is kept for the later rounds (the
validation set is never pseudo-labelled or trained on). Each round's pseudo-label precision is
measured against the hidden true labels of the unlabelled samples (reporting only; never used for a
choice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from polymodal.evaluation.multitask import MISSING
from polymodal.training.multitask import MultiTaskData

__all__ = ["RoundStats", "pseudo_label_precision", "select_pseudo_labels", "self_train"]

Fit = Callable[[MultiTaskData], object]
Predict = Callable[[object, MultiTaskData], dict[str, np.ndarray]]
Score = Callable[[object], float]


@dataclass(frozen=True)
class RoundStats:
    """One round's pseudo-labels of one task."""

    round: int
    threshold: float
    task: str
    n_unlabeled: int  # samples of this task's sources without a (kept) label
    n_pseudo: int  # of which got a pseudo-label
    precision: float  # share of pseudo-labels equal to the hidden true label (NaN if none)
    valid_score: float  # validation joint score of the model trained with these pseudo-labels


def select_pseudo_labels(probs: dict[str, np.ndarray], tasks: Sequence[str], applicable: np.ndarray,
                         threshold: float) -> np.ndarray:
    """Pseudo-labels where the top class probability reaches ``threshold``.

    Args:
        probs: task -> (N, C) class probabilities.
        tasks: T task names (column order).
        applicable: (N, T) bool, whether the sample's source has this task.
        threshold: minimum top probability, in (0, 1].

    Returns:
        (N, T) int, the argmax class where confident and applicable, else ``-1``.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    out = np.full(applicable.shape, MISSING, dtype=np.int64)
    for j, task in enumerate(tasks):
        p = probs[task]
        keep = (p.max(1) >= threshold) & applicable[:, j]
        out[keep, j] = p.argmax(1)[keep]
    return out


def pseudo_label_precision(pseudo: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per task: number of pseudo-labels and their precision against the hidden labels.

    Args:
        pseudo: (N, T) pseudo-labels, ``-1`` where none.
        hidden: (N, T) true labels, ``-1`` where the task does not apply.

    Returns:
        ``(n, precision)``, each (T,); precision is NaN for a task without pseudo-labels.
    """
    given = (pseudo != MISSING) & (hidden != MISSING)
    n = given.sum(0)
    correct = ((pseudo == hidden) & given).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n > 0, correct / np.maximum(n, 1), np.nan)
    return n, precision


def self_train(fit: Fit, predict: Predict, score: Score, labeled: MultiTaskData, unlabeled: MultiTaskData,
               tasks: Sequence[str], applicable: np.ndarray, thresholds: Sequence[float], rounds: int,
               start: object, round1: dict[float, tuple[object, float]] | None = None
               ) -> tuple[object, float, list[RoundStats]]:
    """Run pseudo-labelling rounds.

    Args:
        fit: trains a fresh model on a dataset.
        predict: ``(model, data) -> task -> (N, C) probabilities``.
        score: validation joint score of a model (higher is better).
        labeled: the kept labelled training samples.
        unlabeled: the other training samples; its ``labels`` are the hidden truth, used only for
            the precision report.
        tasks: task names (column order).
        applicable: (N_unlabeled, T) bool, tasks of each unlabelled sample's source.
        thresholds: one threshold (fixed) or a grid (chosen on validation at round 1).
        rounds: number of pseudo-labelling rounds R >= 1.
        start: the round-0 model (trained on ``labeled``).
        round1: optional cache threshold -> (round-1 model, its validation score); filled with every
            round-1 fit and reused when a later call (same data, same start) needs the same threshold,
            so the fixed-0.99 path and a grid containing 0.99 share that fit.

    Returns:
        The last round's model, the threshold used, and one :class:`RoundStats` per round and task
        (for a grid, round 1 lists every candidate; the later rounds only the chosen one).
    """
    if rounds < 1 or not thresholds:
        raise ValueError("need rounds >= 1 and at least one threshold")
    stats: list[RoundStats] = []
    model = start
    chosen = thresholds[0]
    for r in range(1, rounds + 1):
        probs = predict(model, unlabeled)
        candidates = thresholds if r == 1 else [chosen]
        best: tuple[float, object, float] | None = None
        for t in candidates:
            pseudo = select_pseudo_labels(probs, tasks, applicable, t)
            if r == 1 and round1 is not None and float(t) in round1:
                new_model, valid = round1[float(t)]
            else:
                rows = (pseudo != MISSING).any(1)
                train = MultiTaskData.concat([labeled, unlabeled.with_labels(pseudo).subset(np.flatnonzero(rows))])
                new_model = fit(train)
                valid = float(score(new_model))
                if r == 1 and round1 is not None:
                    round1[float(t)] = (new_model, valid)
            n, precision = pseudo_label_precision(pseudo, unlabeled.labels)
            for j, task in enumerate(tasks):
                stats.append(RoundStats(r, float(t), task, int(applicable[:, j].sum()), int(n[j]),
                                        float(precision[j]), valid))
            if best is None or valid > best[0]:
                best = (valid, new_model, float(t))
        assert best is not None
        _, model, chosen = best
    return model, chosen, stats
