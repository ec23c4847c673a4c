"""The one runner: every recipe's jobs, resumed, saved and evaluated the same way.

    polymodal run RECIPE  ->  run_recipe(recipe, cfg, ...)
        1. claim the run folder (a different configuration in it is an error, not a mix)
        2. recipe.build(cfg) -> Problem (task, jobs, dataset, split manifest)
        3. each job not finished earlier runs (in worker processes with --workers N) and its rows are
           saved atomically under jobs/<key>/; a finished job is reused, never rerun
        4. predictions.csv (+ tables) and manifest.json; read back, so that the metrics are computed
           from exactly the bytes `polymodal eval` will read
        5. metrics.json = task.evaluate(predictions) + the recipe's table results + dataset, timing,
           environment, resumes; report.md and plots
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from polymodal.runs.environment import environment
from polymodal.runs.folder import RunFolder, config_hash
from polymodal.runs.problem import Job, JobContext, JobResult, Problem

if TYPE_CHECKING:
    from pydantic import BaseModel

    from polymodal.recipes.registry import Recipe

__all__ = ["assemble_metrics", "global_rank", "run_recipe"]


def global_rank() -> int:
    """0 on the launching process; Lightning's DDP launcher gives the others LOCAL_RANK / NODE_RANK."""
    if int(os.environ.get("NODE_RANK", "0")) != 0:
        return 1
    return int(os.environ.get("LOCAL_RANK", "0"))


def run_config(recipe: Recipe, cfg: BaseModel) -> dict[str, Any]:
    options = cfg.model_dump(mode="json")
    return {"recipe": recipe.name, "options": options, "config_hash": config_hash(recipe.name, options),
            "polymodal_version": _version()}


def run_recipe(recipe: Recipe, cfg: BaseModel, *, out_dir: str | Path, data_dir: Path | None = None,
               cache_dir: Path | None = None, overwrite: bool = False, progress: bool = True) -> dict[str, Any] | None:
    """Train and evaluate ``recipe`` with options ``cfg`` into ``out_dir``; returns metrics.json's content.

    Returns None on a non-zero DDP rank (those processes only help fitting).
    """
    started = time.perf_counter()
    is_main = global_rank() == 0
    folder = RunFolder(out_dir)
    config = run_config(recipe, cfg)
    resumed = folder.claim(config, overwrite=overwrite) if is_main else False
    _say(progress, f"{recipe.name}: preparing data and features")
    t0 = time.perf_counter()
    problem: Problem = recipe.build(cfg, data_dir=data_dir, cache_dir=cache_dir)
    prepare_seconds = time.perf_counter() - t0
    if is_main:
        config["task"] = {"name": problem.task.name, "spec": problem.task.spec()}
        folder.claim(config)
        if problem.split_manifest is not None:
            folder.write_split(problem.split_manifest)
        from polymodal.io import write_json

        for name, value in problem.artifacts.items():
            write_json(folder.path / "artifacts" / f"{name}.json", value)
    train_cfg = getattr(cfg, "train", None)
    if train_cfg is None:
        from polymodal.config import TrainConfig

        train_cfg = TrainConfig(progress=progress)
    reused, ran, infos = _run_jobs(folder, problem.jobs, train_cfg, progress=progress, is_main=is_main)
    if not is_main:
        return None
    predictions, tables = _collect(folder, problem.jobs)
    folder.write_predictions(predictions, tables)
    predictions, tables = folder.read_predictions()  # evaluate the bytes eval will read
    log = folder.append_log({"started": datetime.now(UTC).isoformat(timespec="seconds"),
                             "jobs_reused": reused, "jobs_run": ran, "resumed": resumed})
    _say(progress, f"{recipe.name}: evaluating {len(predictions)} prediction rows")
    metrics = assemble_metrics(recipe, problem.task, predictions, tables, base={
        "recipe": recipe.name,
        "config_hash": config["config_hash"],
        "dataset": dict(problem.dataset),
        "published": [dict(p) for p in problem.published] or _published(recipe),
        "deviations": list(recipe.deviations),
        "skips": dict(problem.skips),
        "notes": list(problem.notes),
        **dict(problem.extra),
        "timing": {"prepare_seconds": round(prepare_seconds, 2),
                   "job_seconds": {k: v.get("seconds") for k, v in infos.items() if v.get("seconds") is not None},
                   "total_seconds": round(time.perf_counter() - started, 2)},
        "runs": log,
        "environment": environment(),
    })
    _write_outputs(folder.path, metrics, predictions, problem.task)
    return metrics


def assemble_metrics(recipe: Recipe | None, task: Any, predictions: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                     base: Mapping[str, Any]) -> dict[str, Any]:
    """metrics.json: the recorded facts in ``base`` plus everything recomputed from the saved rows."""
    metrics = dict(base)
    metrics.update(task.evaluate(predictions))
    evaluate_tables = getattr(recipe, "evaluate_tables", None) if recipe is not None else None
    if evaluate_tables is not None:
        metrics.update(evaluate_tables(predictions, dict(tables)))
    return metrics


def _write_outputs(run_dir: Path, metrics: dict[str, Any], predictions: pd.DataFrame, task: Any) -> None:
    from polymodal.io import write_json
    from polymodal.reports import write_report

    write_json(run_dir / "metrics.json", metrics)
    headline = metrics.get("selection", {}).get("name", "")
    shown = predictions[predictions["selection"].fillna("").isin((headline, ""))
                        & (predictions["condition"].fillna("none") == "none")]
    write_report(run_dir, metrics, shown, sections=task.report_sections(metrics))


def _run_jobs(folder: RunFolder, jobs: Sequence[Job], train_cfg: Any, *, progress: bool,
              is_main: bool) -> tuple[list[str], list[str], dict[str, dict[str, Any]]]:
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"two jobs share the key {duplicate!r}")
    reused = [job.key for job in jobs if folder.job_done(job.key)]
    todo = [job for job in jobs if job.key not in reused]
    infos: dict[str, dict[str, Any]] = {}
    workers = int(getattr(train_cfg, "workers", 1) or 1)
    distributed = getattr(train_cfg, "devices", 1) != 1 or getattr(train_cfg, "num_nodes", 1) != 1
    parallel = [job for job in todo if job.parallel] if workers > 1 and not distributed else []
    total = len(jobs)
    for key in reused:
        _say(progress, f"[{keys.index(key) + 1}/{total}] {key}: finished earlier, reused")
    if len(parallel) > 1:
        infos.update(_run_parallel(folder, parallel, train_cfg, workers, keys, progress))
    for job in todo:
        if job in parallel and len(parallel) > 1:
            continue
        _say(progress, f"[{keys.index(job.key) + 1}/{total}] {job.key}: running")
        result = _run_one(job, folder.job_dir(job.key), train_cfg, progress)
        if result is None or not is_main:
            continue
        folder.save_job(job.key, result.predictions, result.tables, result.info)
        infos[job.key] = result.info
    return reused, [job.key for job in todo], infos


def _run_one(job: Job, job_dir: Path, train_cfg: Any, progress: bool) -> JobResult | None:
    job_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = job.run(JobContext(dir=job_dir, seed=job.seed, train=train_cfg, progress=progress))
    if result is not None:
        result.info.setdefault("seconds", round(time.perf_counter() - t0, 2))
    return result


def _run_parallel(folder: RunFolder, jobs: Sequence[Job], train_cfg: Any, workers: int, keys: list[str],
                  progress: bool) -> dict[str, dict[str, Any]]:
    """Jobs in a pool of spawned processes (forking a process whose OpenMP pool runs can deadlock).

    Each finished job is saved as soon as it returns, so an interruption keeps it.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    infos: dict[str, dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(_run_one, job, folder.job_dir(job.key), train_cfg, False): job for job in jobs}
        for job in jobs:
            _say(progress, f"[{keys.index(job.key) + 1}/{len(keys)}] {job.key}: queued on {workers} workers")
        for future in as_completed(futures):
            job = futures[future]
            result = future.result()  # a worker's error is raised here, with its traceback
            if result is not None:
                folder.save_job(job.key, result.predictions, result.tables, result.info)
                infos[job.key] = result.info
            _say(progress, f"{job.key}: done")
    return infos


def _collect(folder: RunFolder, jobs: Sequence[Job]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    frames, tables = [], {}
    for job in jobs:
        predictions, job_tables, _ = folder.load_job(job.key)
        frames.append(predictions)
        for name, table in job_tables.items():
            tables.setdefault(name, []).append(table)
    return (pd.concat(frames, ignore_index=True),
            {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()})


def _published(recipe: Recipe) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(p) for p in recipe.published]


def _say(progress: bool, text: str) -> None:
    # Progress goes to stderr, so that `--json` output on stdout stays one parseable document.
    if progress:
        print(text, file=sys.stderr, flush=True)


def _version() -> str:
    from polymodal import __version__

    return __version__
