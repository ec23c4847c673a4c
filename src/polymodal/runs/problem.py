"""What a recipe hands the runner: a :class:`Problem` made of :class:`Job` s.

A job is the unit of work, of resume and of parallelism: one model trained on one (selection,
fold, seed), or one family of baselines on one selection. Its ``run`` returns the prediction rows
it contributes; the runner saves them atomically under ``jobs/<key>/`` and skips the job when the
same command is rerun, so a killed run loses at most the job in flight (and a Lightning job resumes
that one from its last checkpoint with its random state; see training.trainer).

``run`` is called with a :class:`JobContext` and must be picklable (a module-level function or a
``functools.partial`` of one) when the runner trains jobs in parallel processes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

if TYPE_CHECKING:
    from polymodal.config import TrainConfig
    from polymodal.tasks.base import Task

__all__ = ["Job", "JobContext", "JobResult", "Predictor", "Problem", "predictions_frame"]

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-\[\]%+ ]+)*$")


@dataclass(frozen=True)
class JobContext:
    """Where and how a job runs.

    Attributes:
        dir: the job's own folder; it survives an interruption (checkpoints, saved models).
        seed: the job's training seed.
        train: the training options (epochs, batch size, threads, accelerator).
        progress: whether to show progress (on stderr).
    """

    dir: Path
    seed: int
    train: TrainConfig
    progress: bool = True


@dataclass
class JobResult:
    """What a finished job contributes.

    Attributes:
        predictions: rows in the task's predictions.csv schema (common + task columns).
        tables: further per-sample tables (saved as ``tables/<name>.csv`` and concatenated across jobs),
            for results the task table cannot hold (explanation scores per image, say).
        info: JSON-able facts (epochs, seconds, resumed_from_epoch) for the report's timing section.
    """

    predictions: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """One unit of work.

    Attributes:
        key: unique, path-like (``"temporal/seed_0/mexa-ctp"``); the job's folder is ``jobs/<key>``.
        run: ``run(ctx) -> JobResult``.
        seed: the seed passed in the context.
        parallel: whether the job may run in a worker process (``--workers``).
        label: what progress lines call it.
    """

    key: str
    run: Callable[[JobContext], JobResult]
    seed: int = 0
    parallel: bool = True
    label: str = ""

    def __post_init__(self) -> None:
        if not _KEY.match(self.key) or ".." in self.key:
            raise ValueError(f"job key {self.key!r} must be a relative path of letters, digits, '_', '-', '.'")


class Predictor(Protocol):
    """Scores new samples with a finished run's saved featuriser, models and validation decisions."""

    def read_input(self, path: Path) -> pd.DataFrame:
        """Read and validate an input file (errors name the file, row and field)."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One output row per input row (``id`` first)."""

    def example_input(self, n: int = 5) -> pd.DataFrame:
        """A few rows of the input format, from the run's own test split with labels removed."""


@dataclass
class Problem:
    """Everything the runner needs from a recipe.

    Attributes:
        task: the task shape, with its parameters (headline model, selections, bootstrap size).
        jobs: the work, in order (the runner keeps the order for predictions.csv).
        dataset: description, version, sizes and files of the data, for the report.
        split_manifest: one row per sample and split assignment (``id, split`` and optionally
            ``selection, fold``), saved as ``split.csv`` and never recomputed differently.
        published: the paper's numbers (dicts with model, metric, value, source, dataset_version).
        notes: lines for the report.
        skips: counted skips of the adapter ({reason: count}).
        extra: further JSON-able facts for metrics.json (drift tables, cache statistics).
        artifacts: JSON-able fitted state that ``polymodal predict`` needs (vocabularies, scalers),
            written as ``artifacts/<name>.json``: data, never pickles, so opening a run runs no code.
    """

    task: Task
    jobs: Sequence[Job]
    dataset: Mapping[str, Any]
    split_manifest: pd.DataFrame | None = None
    published: Sequence[Mapping[str, Any]] = ()
    notes: Sequence[str] = ()
    skips: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)


def predictions_frame(*, model: str, kind: str, split: str, ids: Sequence[Any], selection: str = "", fold: int = 0,
                      seed: int = 0, condition: str = "none", subset: str = "all", **columns: Any) -> pd.DataFrame:
    """Rows in the common layout: the common columns first, then the task's (arrays or scalars)."""
    frame = pd.DataFrame({"model": model, "kind": kind, "selection": selection, "fold": fold, "seed": seed,
                          "condition": condition, "subset": subset, "split": split, "id": [str(i) for i in ids]})
    for name, value in columns.items():
        frame[name] = value
    return frame
