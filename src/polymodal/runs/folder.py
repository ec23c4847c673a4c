"""The run folder: one layout for every recipe, written atomically, checked when reopened.

    RUN/
      config.json        recipe, resolved options, the hash of the options that change results, task spec
      split.csv          the split manifest (id, split[, selection, fold]); saved once, never recomputed
      jobs/<key>/        a job's own state (checkpoints, models) and, once finished, result.json +
                         predictions.parquet (+ tables/*.parquet)
      predictions.csv    every job's rows, long format (tasks/base.py)
      tables/<name>.csv  further per-sample tables
      manifest.json      row counts and SHA-256 of predictions.csv and each table, per split
      metrics.json       what the task computed from predictions.csv, plus dataset, timing, environment
      run_log.json       one entry per invocation: which jobs were reused, which ran (resumes)
      report.md, plots/

A rerun with the same options reuses finished jobs; with different options it stops with an error
unless ``overwrite`` is set, so old scores never mix with a new configuration.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from polymodal.errors import ConfigError, DataError, MissingDataError
from polymodal.io import atomic_path, atomic_write, read_run_json, write_json

__all__ = ["RunFolder", "config_hash", "sha256_file"]

#: Options that change how a run is executed, not what it computes.
EXECUTION_ONLY = frozenset({"progress", "workers", "threads", "logger"})
_OWNED = ("config.json", "split.csv", "jobs", "artifacts", "predictions.csv", "tables", "manifest.json", "metrics.json",
          "run_log.json", "report.md", "plots")


def _strip(config: Any) -> Any:
    if isinstance(config, Mapping):
        return {k: _strip(v) for k, v in sorted(config.items()) if k not in EXECUTION_ONLY}
    if isinstance(config, list | tuple):
        return [_strip(v) for v in config]
    return config


def config_hash(recipe: str, options: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the recipe name and every option that changes results."""
    text = json.dumps({"recipe": recipe, "options": _strip(options)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunFolder:
    """A run folder on disk (see the module docstring for its layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ opening

    def claim(self, config: Mapping[str, Any], *, overwrite: bool = False) -> bool:
        """Create or reopen the folder for ``config``; returns True when it resumes an earlier run.

        Raises:
            ConfigError: the path is a file, is not writable, or holds a run with other options.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} is an existing file, not a folder")
        existing = self.path / "config.json"
        if existing.exists():
            old = read_run_json(existing)
            if old.get("config_hash") != config["config_hash"]:
                if not overwrite:
                    raise ConfigError(
                        f"{self.path} holds a run of {old.get('recipe')!r} with other options (hash "
                        f"{old.get('config_hash')} vs {config['config_hash']}): rerun with --overwrite to replace it, "
                        "or choose another --out")
                self.clear()
            elif overwrite:
                self.clear()
        resumed = (self.path / "jobs").is_dir() and any((self.path / "jobs").rglob("result.json"))
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self.path / "config.json", config)
        except OSError as err:
            raise ConfigError(f"cannot write the run folder {self.path}: {err.strerror or err}") from None
        return resumed

    def clear(self) -> None:
        """Remove what a run writes (and nothing else a user may have put there)."""
        for name in _OWNED:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    # ------------------------------------------------------------------ jobs

    def job_dir(self, key: str) -> Path:
        return self.path / "jobs" / key

    def job_done(self, key: str) -> bool:
        return (self.job_dir(key) / "result.json").is_file()

    def save_job(self, key: str, predictions: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                 info: Mapping[str, Any]) -> None:
        """Write a finished job's rows; result.json goes last, so a job is done only when all is on disk."""
        folder = self.job_dir(key)
        files = {"predictions": "predictions.parquet"}
        _write_parquet(predictions, folder / "predictions.parquet")
        for name, table in tables.items():
            files[f"table:{name}"] = f"tables/{name}.parquet"
            _write_parquet(table, folder / "tables" / f"{name}.parquet")
        write_json(folder / "result.json", {"files": files, "info": dict(info), "rows": len(predictions)})

    def load_job(self, key: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, Any]]:
        folder = self.job_dir(key)
        meta = read_run_json(folder / "result.json")
        tables = {name.split(":", 1)[1]: pd.read_parquet(folder / rel) for name, rel in meta["files"].items()
                  if name.startswith("table:")}
        return pd.read_parquet(folder / meta["files"]["predictions"]), tables, dict(meta.get("info") or {})

    # ------------------------------------------------------------------ outputs

    def write_split(self, manifest: pd.DataFrame) -> None:
        """Save the split manifest once; a resumed run must produce the same one."""
        path = self.path / "split.csv"
        text = manifest.to_csv(index=False)
        if path.exists() and path.read_text(encoding="utf-8") != text:
            raise ConfigError(f"{path}: the split differs from the one this run started with (changed data?); "
                              "rerun with --overwrite to start afresh")
        if not path.exists():
            atomic_write(path, lambda fh: fh.write(text))

    def write_predictions(self, predictions: pd.DataFrame, tables: Mapping[str, pd.DataFrame]) -> None:
        """predictions.csv and tables/*.csv, then manifest.json with their row counts and hashes."""
        manifest: dict[str, Any] = {}
        entries = {"predictions.csv": predictions, **{f"tables/{n}.csv": t for n, t in tables.items()}}
        for rel, frame in entries.items():
            atomic_write(self.path / rel, lambda fh, frame=frame: frame.to_csv(fh, index=False))
            per_split = frame["split"].value_counts().to_dict() if "split" in frame.columns else {}
            manifest[rel] = {"rows": len(frame), "rows_per_split": {str(k): int(v) for k, v in per_split.items()},
                             "sha256": sha256_file(self.path / rel)}
        write_json(self.path / "manifest.json", manifest)

    def read_predictions(self) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        """predictions.csv and the tables, refused when they do not match manifest.json."""
        manifest = read_run_json(self.path / "manifest.json")
        frames: dict[str, pd.DataFrame] = {}
        for rel, entry in manifest.items():
            path = self.path / rel
            if not path.is_file():
                raise MissingDataError(f"{path} not found: the run folder is incomplete")
            digest = sha256_file(path)
            if digest != entry.get("sha256"):
                frame = _read_csv(path)
                counts = frame["split"].value_counts().to_dict() if "split" in frame.columns else {}
                raise DataError(f"does not match the run's manifest.json (rows {len(frame)} vs {entry.get('rows')}, "
                                f"per split {counts} vs {entry.get('rows_per_split')}, SHA-256 differs): refusing to "
                                "evaluate an edited or truncated file", file=path)
            frames[rel] = _read_csv(path)
        predictions = frames.pop("predictions.csv")
        tables = {rel.removeprefix("tables/").removesuffix(".csv"): frame for rel, frame in frames.items()}
        return predictions, tables

    def append_log(self, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
        path = self.path / "run_log.json"
        log = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
        log.append(dict(entry))
        write_json(path, log)
        return log


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _read_csv(path: Path) -> pd.DataFrame:
    from polymodal.tasks.base import TEXT_COLUMNS

    try:
        # Text columns stay text (an id "007" must not become 7); floats round-trip exactly.
        return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                           na_values=[""], float_precision="round_trip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"malformed CSV: {err}", file=path) from None
