"""A finished run in Python, and the `eval` / `predict` commands for every recipe.

    >>> import polymodal
    >>> run = polymodal.load_run("runs/mexa-ctp")
    >>> run.metrics["models"]["mexa-ctp"]["splits"]["test"]["roc_auc"]["mean"]
    >>> run.predict(frame)            # new samples in the recipe's input format -> one row each

Opening a run folder never executes code from it: configs, metrics and manifests are JSON, tables
CSV/Parquet, fitted featurisers JSON/npz, and model weights are loaded with ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import sys
from typing import IO, Any

import pandas as pd

from polymodal.errors import ConfigError, DataError, MissingDataError
from polymodal.io import atomic_write, read_run_json
from polymodal.runs.folder import RunFolder

__all__ = ["Run", "evaluate_run", "load_run", "predict_file", "write_example_input"]


def _recipe(name: str) -> Any:
    from polymodal.recipes import REGISTRY, load_entry_point_recipes

    load_entry_point_recipes()
    return REGISTRY.get(name)


def _task_of(config: dict[str, Any], path: Path) -> Any:
    from polymodal.tasks import TASKS

    task = config.get("task") or {}
    if task.get("name") not in TASKS:
        raise DataError(f"names no known task ({task.get('name')!r}; known: {', '.join(sorted(TASKS))})",
                        file=path / "config.json", field="task")
    return TASKS[task["name"]](**task.get("spec", {}))


@dataclass
class Run:
    """A finished run folder: its config, metrics and predictions, and a predictor for new samples."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    _predictor: Any = field(default=None, repr=False)

    @property
    def recipe(self) -> str:
        return str(self.config.get("recipe"))

    @property
    def predictions(self) -> pd.DataFrame:
        return RunFolder(self.path).read_predictions()[0]

    def rows(self) -> list[dict[str, Any]]:
        """The flat metric rows that ``polymodal run --json`` prints."""
        from polymodal.tasks.base import flat_rows

        return flat_rows(self.metrics)

    def predictor(self, cache_dir: Path | None = None) -> Any:
        """The recipe's predictor for this run (built once; ``cache_dir`` for embeddings of new inputs)."""
        if self._predictor is None:
            recipe = _recipe(self.recipe)
            if recipe.predictor is None:
                raise ConfigError(f"recipe {self.recipe!r} cannot score new samples yet")
            self._predictor = recipe.predictor(self.path, cache_dir=cache_dir)
        return self._predictor

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score new samples given as a frame in the recipe's input format (one output row each)."""
        return self.predictor().predict(frame)


def load_run(path: str | Path) -> Run:
    """Open a finished run folder (see the module docstring); nothing in it is executed."""
    path = Path(path)
    if not path.is_dir():
        raise MissingDataError(f"run folder {path} does not exist")
    return Run(path, read_run_json(path / "config.json"), read_run_json(path / "metrics.json"))


def evaluate_run(path: str | Path, *, write: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Recompute metrics.json from predictions.csv (and tables) alone.

    Returns:
        ``(metrics, differences)``: the recomputed metrics, and the metric entries whose value differs
        from the run's own metrics.json (empty when the run is reproduced exactly).

    ``write=True`` replaces metrics.json and re-renders report.md; by default the run's own files
    are left as they are.
    """
    from polymodal.runs.runner import _write_outputs, assemble_metrics

    path = Path(path)
    run = load_run(path)
    task = _task_of(run.config, path)
    predictions, tables = RunFolder(path).read_predictions()
    try:
        recipe = _recipe(run.recipe)
    except KeyError:
        recipe = None
    metrics = assemble_metrics(recipe, task, predictions, tables, base=run.metrics)
    differences = _differences(run.metrics, metrics)
    if write:
        _write_outputs(path, metrics, predictions, task)
    return metrics, differences


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            if key in ("timing", "environment", "runs"):
                continue
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if isinstance(old, list | tuple) and isinstance(new, list | tuple) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += _differences(a, b, f"{prefix}{i}.")
        return out
    same = old == new or (isinstance(old, float) and isinstance(new, float) and old != old and new != new)
    return [] if same else [prefix.rstrip(".")]


def predict_file(path: str | Path, input_path: Path, output_path: Path, *, cache_dir: Path | None = None,
                 log: IO[str] | None = None) -> int:
    """Score ``input_path`` with the run in ``path`` and write ``output_path`` atomically.

    The output location is checked before any scoring, so a bad ``--output`` fails at once. Counted
    skips (unknown codes, unparsable SMILES) and the decision threshold are reported on ``log``.
    """
    _check_writable(output_path)
    if not Path(input_path).is_file():
        raise MissingDataError(f"input file {input_path} does not exist")
    run = load_run(path)
    predictor = run.predictor(cache_dir=cache_dir)
    frame = predictor.read_input(Path(input_path))
    result = predictor.predict(frame)
    log = log if log is not None else sys.stderr
    for reason, entry in (getattr(predictor, "skips", None) or {}).items():
        examples = "; ".join(entry.get("examples", [])[:3])
        log.write(f"{Path(input_path).name}: {entry['count']} x {reason}" + (f" (e.g. {examples})" if examples else "")
                  + "\n")
    if getattr(predictor, "threshold", None) is not None:
        log.write(f"decision = score >= {predictor.threshold:.4f} (validation-chosen)\n")
    atomic_write(output_path, lambda fh: result.to_csv(fh, index=False))
    return len(result)


def write_example_input(path: str | Path, output_path: Path, n: int = 5) -> int:
    """A few rows of the recipe's input format, from the run's test split with labels removed."""
    _check_writable(output_path)
    frame = load_run(path).predictor().example_input(n)
    atomic_write(output_path, lambda fh: frame.to_csv(fh, index=False))
    return len(frame)


def _check_writable(output_path: Path) -> None:
    parent = Path(output_path).parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ConfigError(f"--output {output_path}: {ancestor} is a file, not a folder")
            break
    if Path(output_path).is_dir():
        raise ConfigError(f"--output {output_path} is a folder; give a file name")
