"""Task shapes: each owns its targets, scores, decisions, metrics, bootstrap unit and predictions schema.

``TASKS`` maps a shape's name to its class, so ``polymodal eval`` rebuilds a run's task from
``config.json`` alone.
"""

from polymodal.tasks.base import COMMON_COLUMNS, KINDS, Task, flat_rows, per_seed
from polymodal.tasks.binary import BinaryTask
from polymodal.tasks.forecast import ForecastTask
from polymodal.tasks.hierarchical import HierarchicalTask
from polymodal.tasks.multilabel import MultilabelTask
from polymodal.tasks.multitask import MultiTaskClassification
from polymodal.tasks.ranking import RankingTask
from polymodal.tasks.retrieval import RetrievalTask
from polymodal.tasks.survival import SurvivalTask

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (BinaryTask, ForecastTask, HierarchicalTask, MultilabelTask, MultiTaskClassification, RankingTask,
                RetrievalTask, SurvivalTask)
}


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task shape (a duplicate name raises)."""
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"a task named {cls.name!r} is already registered")
    TASKS[cls.name] = cls
    return cls


__all__ = ["COMMON_COLUMNS", "KINDS", "TASKS", "BinaryTask", "ForecastTask", "HierarchicalTask",
           "MultiTaskClassification", "MultilabelTask", "RankingTask", "RetrievalTask", "SurvivalTask", "Task",
           "flat_rows", "per_seed", "register_task"]
