"""``polymodal predict RUN --input F --output F``: score new samples with a finished run's models.

The run folder says which recipe wrote it (``config.json["recipe"]``); the recipe's registered
``predictor`` does the work, since only the recipe knows its input format and how to rebuild its
models. This module finds the predictor, checks what it returns, reports what it skipped and
writes the CSV atomically.

A predictor returns a DataFrame with columns ``id, score, decision``; it may put a SkipReport dict
in ``frame.attrs["skips"]``, the decision threshold in ``frame.attrs["threshold"]`` and, to write
more columns than those three, the output's column list in ``frame.attrs["columns"]``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import pandas as pd

from polymodal.errors import ConfigError, DataError, MissingDataError
from polymodal.io import atomic_write, read_run_json

__all__ = ["OUTPUT_COLUMNS", "predict_file", "read_run_json"]

OUTPUT_COLUMNS = ("id", "score", "decision")


def predict_file(run_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
                 cache_dir: str | Path | None = None, log: IO[str] | None = None) -> int:
    """Score every sample of ``input_path`` and write ``id,score,decision`` to ``output_path``.

    Args:
        run_dir: a run folder written by ``polymodal run``.
        input_path: a CSV in the recipe's input format (for trial recipes: TOP's columns, label optional).
        output_path: where the CSV goes (written atomically; parent folders are created).
        cache_dir: writable embedding cache (else ``$POLYMODAL_CACHE``).
        log: where skip counts and the threshold are reported (default stderr).

    Returns:
        The number of rows written.

    Raises:
        MissingDataError: the run folder, one of its files, or the input is absent.
        ConfigError: the recipe is unknown or cannot predict.
        DataError: a malformed input row (file, row, field), or a predictor that broke its contract.
    """
    from polymodal.recipes import REGISTRY, load_entry_point_recipes  # recipes import this module's helpers

    run_dir, input_path, output_path = Path(run_dir), Path(input_path), Path(output_path)
    if not run_dir.is_dir():
        raise MissingDataError(f"run folder {run_dir} does not exist")
    if not input_path.is_file():
        raise MissingDataError(f"input file {input_path} does not exist")
    config = read_run_json(run_dir / "config.json")
    name = config.get("recipe")
    if not isinstance(name, str):
        raise DataError("no 'recipe' name", file=run_dir / "config.json", field="recipe")
    load_entry_point_recipes()
    try:
        recipe = REGISTRY.get(name)
    except KeyError as err:
        raise ConfigError(f"{run_dir / 'config.json'}: {err.args[0]}") from None
    if recipe.predictor is None:
        raise ConfigError(f"recipe {name!r} cannot score new samples yet (it registers no predictor)")
    frame = recipe.predictor(run_dir, input_path, Path(cache_dir) if cache_dir is not None else None)
    _check_output(frame, name)
    _report(frame.attrs, input_path, log if log is not None else sys.stderr)
    # a predictor may name more columns (e.g. one row per visit and medication); id, score, decision stay
    out = frame[list(frame.attrs.get("columns") or OUTPUT_COLUMNS)]
    atomic_write(output_path, lambda fh: out.to_csv(fh, index=False))
    return len(out)


def _check_output(frame: Any, recipe: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"recipe {recipe!r}: predictor returned {type(frame).__name__}, not a DataFrame")
    missing = [c for c in (*OUTPUT_COLUMNS, *frame.attrs.get("columns", ())) if c not in frame.columns]
    if missing:
        raise DataError(f"recipe {recipe!r}: predictor output lacks column(s) {missing}")


def _report(attrs: Mapping[str, Any], input_path: Path, log: IO[str]) -> None:
    """Counted skips first (nothing is dropped silently), then the threshold the decisions used."""
    for reason, entry in (attrs.get("skips") or {}).items():
        examples = "; ".join(entry.get("examples", [])[:3])
        log.write(f"{input_path.name}: {entry['count']} x {reason}" + (f" (e.g. {examples})" if examples else "")
                  + "\n")
    if attrs.get("threshold") is not None:
        log.write(f"decision = score >= {attrs['threshold']:.4f} ({attrs.get('threshold_source', 'from the run')})\n")
