"""metammf benchmark: every model, 3 seeds, MetaMMF modality ablations, on ml-latest-small (CPU).

    flock /tmp/pm-cpu.lock python benchmarks/metammf.py --data-dir /work/shared/data [--budget 480]

The run folder (default /tmp/pm-metammf-run) is the recipe's, so the jobs are exactly those of
``polymodal run metammf``. This script trains the unfinished jobs two at a time (spawned worker
processes, one torch thread each) and stops *starting* jobs after ``--budget`` seconds, so a locked
session on the shared machine stays short; rerunning continues with the jobs left (each finished
job is saved by the run folder). When every job is done, the one runner evaluates the run (reusing
every job) and this script writes benchmarks/results/metammf.json and .md. Compute time is the
sum of the sessions' wall times, logged in the run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("recall@10", "ndcg@10", "precision@10", "hr@10", "recall@20", "ndcg@20", "precision@20", "hr@20")


def _run_job(job: Any, job_dir: Path, train_cfg: Any) -> tuple[str, Any]:
    from polymodal.runs.problem import JobContext

    job_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = job.run(JobContext(dir=job_dir, seed=job.seed, train=train_cfg, progress=False))
    result.info.setdefault("seconds", round(time.perf_counter() - t0, 2))
    return job.key, result


def fill_jobs(folder: Any, jobs: list[Any], train_cfg: Any, workers: int, budget: float, log: Any) -> int:
    """Run unfinished jobs until ``budget`` seconds have passed (jobs in flight finish); returns jobs left."""
    todo = [j for j in jobs if not folder.job_done(j.key)]
    start = time.perf_counter()
    running: dict[Any, str] = {}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        while todo or running:
            while todo and len(running) < workers and time.perf_counter() - start < budget:
                job = todo.pop(0)
                running[pool.submit(_run_job, job, folder.job_dir(job.key), train_cfg)] = job.key
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                key, result = fut.result()
                running.pop(fut)
                folder.save_job(key, result.predictions, result.tables, result.info)
                log(f"{time.perf_counter() - start:7.1f}s  {key}: {result.info.get('seconds')}s, "
                    f"best epoch {result.info.get('best_epoch')}, valid R@10 {result.info.get('best_valid_recall10')}")
    return len([j for j in jobs if not folder.job_done(j.key)])


def _cell(stats: dict[str, Any]) -> str:
    text = f"{stats['mean']:.4f} ± {stats['std']:.4f}"
    if stats.get("ci_low") is not None:
        text += f" [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"
    return text


def write_results(metrics: dict[str, Any], sessions: list[dict[str, Any]], command: str) -> dict[str, Any]:
    models = metrics["models"]
    summary: dict[str, Any] = {
        "command": command,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "torch_threads_per_job": 1, "workers": 2},
        "sessions": sessions,
        "compute_seconds": round(sum(s["seconds"] for s in sessions), 1),
        "dataset": {k: metrics["dataset"][k] for k in ("name", "users", "items", "interactions", "modalities",
                                                       "cold_items", "cold_test_interactions", "actions")},
        "test": {m: {k: r["splits"]["test"][k] for k in METRICS} | {"kind": r["kind"], "seeds": r.get("seeds")}
                 for m, r in models.items()},
        "valid_recall@10": {m: r["splits"]["valid"]["recall@10"]["mean"] for m, r in models.items()},
        "robustness_test_time_drop": metrics.get("robustness", {}),
        "cold_items": {m: {k: r["splits"]["test"][k] for k in ("recall@10", "ndcg@10", "recall@20")}
                       for m, r in (metrics.get("subsets", {}).get("cold_items") or {}).items()},
        "comparisons": metrics.get("comparisons", []),
        "ranking_cost": metrics.get("ranking_cost", {}),
        "anchor": {"popularity recall@10": 0.070, "popularity ndcg@10": 0.103},
        "published": metrics.get("published", []),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "metammf.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    lines = ["# metammf benchmark (ml-latest-small, per-user random 80/10/10 split, full ranking)", "",
             f"Command: `{command}`", "",
             f"Machine: {summary['machine']['platform']}, {summary['machine']['cpus']} CPUs (shared), 2 worker "
             f"processes x 1 torch thread. Compute: {summary['compute_seconds']} s over {len(sessions)} locked "
             "session(s).", "",
             "Test metrics: mean ± std over seeds [95% bootstrap CI over users, seed-averaged].", "",
             "| model | kind | recall@10 | ndcg@10 | precision@10 | hr@10 | recall@20 | ndcg@20 | valid R@10 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m, r in summary["test"].items():
        lines.append(f"| {m} | {r['kind']} | {_cell(r['recall@10'])} | {_cell(r['ndcg@10'])} | "
                     f"{r['precision@10']['mean']:.4f} | {r['hr@10']['mean']:.4f} | {r['recall@20']['mean']:.4f} | "
                     f"{r['ndcg@20']['mean']:.4f} | {summary['valid_recall@10'][m]:.4f} |")
    lines += ["", "## MetaMMF with one item modality zeroed at test time", "", "| condition | recall@10 | ndcg@10 |",
              "|---|---|---|"]
    for cond, values in summary["robustness_test_time_drop"].items():
        lines.append(f"| {cond} | {_cell(values['recall@10'])} | {_cell(values['ndcg@10'])} |")
    lines += ["", f"## Cold items (at most 5 training interactions; {summary['dataset']['cold_items']} items, "
              f"{summary['dataset']['cold_test_interactions']} test interactions)", "",
              "| model | recall@10 | ndcg@10 | recall@20 |", "|---|---|---|---|"]
    for m, r in summary["cold_items"].items():
        lines.append(f"| {m} | {_cell(r['recall@10'])} | {_cell(r['ndcg@10'])} | {_cell(r['recall@20'])} |")
    lines += ["", "## Paired comparisons (MetaMMF minus model, test, bootstrap over users, Holm)", "",
              "| comparison | metric | difference | 95% CI | p | p Holm | verdict |", "|---|---|---|---|---|---|---|"]
    for c in summary["comparisons"]:
        lines.append(f"| {c['model']} | {c['metric']} | {c['mean']:+.4f} | [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] "
                     f"| {c['p_value']:.3g} | {c['p_adjusted']:.3g} | {c['verdict']} |")
    lines += ["", "## Cost", "", "| model | train s (mean) | epochs | full ranking s | users x items / s |",
              "|---|---|---|---|---|"]
    for m, c in summary["ranking_cost"].items():
        lines.append(f"| {m} | {c.get('train_seconds', 0):.1f} | {c.get('epochs_run', 0):.0f} | "
                     f"{c.get('rank_seconds', 0):.3f} | {c.get('rank_pairs_per_second', 0):.3g} |")
    (RESULTS / "metammf.md").write_text("\n".join(lines) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/shared/data")
    parser.add_argument("--run-dir", default="/tmp/pm-metammf-run")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--budget", type=float, default=480.0, help="seconds after which no new job starts")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from polymodal.io import read_run_json, write_json
    from polymodal.recipes.metammf import RECIPE, MetaMMFConfig
    from polymodal.runs.folder import RunFolder
    from polymodal.runs.runner import run_config, run_recipe

    t0 = time.perf_counter()
    cfg = MetaMMFConfig()
    folder = RunFolder(args.run_dir)
    folder.claim(run_config(RECIPE, cfg))
    problem = RECIPE.build(cfg, data_dir=Path(args.data_dir), cache_dir=args.cache_dir)
    print(f"prepared in {time.perf_counter() - t0:.1f}s: {len(problem.jobs)} jobs", flush=True)
    left = fill_jobs(folder, list(problem.jobs), cfg.train, args.workers, args.budget,
                     lambda s: print(s, flush=True))
    sessions_path = Path(args.run_dir) / "bench_sessions.json"
    sessions = read_run_json(sessions_path)["sessions"] if sessions_path.exists() else []
    sessions.append({"seconds": round(time.perf_counter() - t0, 1), "jobs_left": left,
                     "load_average_at_end": os.getloadavg()})
    write_json(sessions_path, {"sessions": sessions})
    if left:
        print(f"{left} jobs left: rerun the same command to continue", flush=True)
        return
    metrics = run_recipe(RECIPE, cfg, out_dir=args.run_dir, data_dir=Path(args.data_dir), cache_dir=args.cache_dir,
                         progress=False)
    sessions[-1]["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(sessions_path, {"sessions": sessions})
    command = "flock /tmp/pm-cpu.lock python benchmarks/metammf.py --data-dir /work/shared/data (repeated until done)"
    summary = write_results(metrics, sessions, command)
    print(json.dumps({m: round(r["recall@10"]["mean"], 4) for m, r in summary["test"].items()}, indent=1))


if __name__ == "__main__":
    main()
