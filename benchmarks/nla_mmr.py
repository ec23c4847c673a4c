"""Benchmark: NLA-MMR and the medication baselines on the MIMIC-III demo, both cohorts.

    flock /tmp/pm-cpu.lock python benchmarks/nla_mmr.py --data-dir ../shared/data [--seeds 3] [--repeats 2]

Runs `polymodal run nla-mmr` (the recipe's default configuration, on the one runner) in a fresh
process into a temporary run folder with a fresh embedding cache (so the wall time includes
start-up, ETL and the cold MiniLM and Morgan encoding), then `polymodal eval` on that folder
(`runs.evaluate_run`: every metric recomputed from predictions.csv), and writes
benchmarks/results/nla_mmr.json (every model of both cohorts, paired comparisons, ETL counts, per-fold
vocabulary sizes, timings, the machine) and benchmarks/results/nla_mmr.md (what changed against the
numbers of the previous runner, then the run report). Nothing is selected on test data: every
choice inside is made on validation folds, and vocabularies are fitted on training folds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.config import apply_overrides  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.recipes.nla_mmr import NlaMmrConfig  # noqa: E402
from polymodal.runs import evaluate_run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("jaccard", "pr_auc", "f1", "ddi_rate", "avg_meds")
#: main before nla-mmr moved onto the one runner: the committed numbers of its own runner
PREVIOUS_COMMIT = "8022bb3"


def _previous() -> dict[str, Any] | None:
    try:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{PREVIOUS_COMMIT}:benchmarks/results/nla_mmr.json"],
                              check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return json.loads(text)


def _changes(old: dict[str, Any] | None, table: dict[str, Any], vocabularies: dict[str, Any]) -> str:
    """The 'what changed' section: old and new test means per cohort, model and metric, and why."""
    if old is None:
        return ""
    lines = [f"## What changed against the previous runner (results of commit {PREVIOUS_COMMIT})\n",
             "Same data, folds (patient-level, seed = repeat), seeds, models and training options. Four things "
             "changed:\n",
             "1. **Vocabularies and SafeDrug's frequency filters are fitted on each training fold** (issue 11's leak "
             "fix). Before, the code and label (ATC3) vocabularies were built from every patient, test folds "
             "included. Now a code no training patient had is the shared *unknown* code, and a medication no "
             "training patient received is not a label of that fold: the models cannot recommend it, and it "
             "stays in the visit's true set, so it counts as missed (Jaccard, F1 and recall fall; it is ranked "
             "last for PR-AUC). The top-300 ATC3 / top-2000 diagnosis filters do not bind on the demo (81 / 101 "
             "ATC3 and 304 / 721 codes overall), so what moves the numbers here is unseen codes and medications. "
             "Test visits holding a medication outside their fold's labels: "
             + "; ".join(f"{c}: {sum(f['test_visits_with_unseen_medication'] for f in v)} of "
                         f"{sum(f['test_visits'] for f in v)}" for c, v in vocabularies.items()) + ". "
             "The effect on the means is small even in the SafeDrug cohort because those are rare medications, "
             "a small part of each affected visit's set.",
             "2. **The set threshold moves with the label space**: its grid is quantiles of the validation scores "
             "over the fold's labels, so a fold with fewer labels gets other candidate thresholds. This is why the "
             "deterministic baselines move too (most-frequent, per-label logistic regression, previous visit in the "
             "SafeDrug cohort) although their per-label scores are computed as before.",
             "3. **Each model is trained on its fold's own label and code space**, so the networks differ in size "
             "(fewer output rows and code embeddings); their random initialisation and training therefore differ "
             "too, which moves the learned models by about their seed spread even where no visit is affected.",
             "4. **Verdicts come from paired comparisons** (patient bootstrap of the difference, the same draws "
             "for every model, Holm within each metric) instead of overlapping intervals. The per-model CIs are "
             "computed as before (patient bootstrap, paired across runs).\n",
             "| Cohort | Model | Metric | Before | Now | Now − before |", "|---|---|---|---|---|---|"]
    for cohort, models in table.items():
        for model, values in models.items():
            before_model = (old.get("test") or {}).get(cohort, {}).get(model)
            if before_model is None:
                continue
            for metric in ("jaccard", "pr_auc", "f1", "ddi_rate"):
                b, n = before_model[metric]["mean"], values[metric]["mean"]
                lines.append(f"| {cohort} | {model} | {metric} | {b:.3f} | {n:.3f} | {n - b:+.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    overrides: dict = {}
    extra: list[str] = []
    if args.repeats:
        overrides["repeats"] = args.repeats
        extra += ["--repeats", str(args.repeats)]
    if args.seeds:
        overrides["protocol"] = {"seeds": args.seeds}
        extra += ["--seeds", str(args.seeds)]
    cfg = apply_overrides(NlaMmrConfig, overrides)
    command = "polymodal run nla-mmr --data-dir ../shared/data" + "".join(f" {a}" for a in extra)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, cache = Path(tmp) / "run", Path(tmp) / "cache"
        # the user's command itself (a fresh process, ETL and a cold embedding cache included)
        cli = [sys.executable, "-m", "polymodal", "run", "nla-mmr", "--data-dir", str(args.data_dir),
               "--out", str(run_dir), "--cache-dir", str(cache), "--json", *extra]
        started = time.perf_counter()
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        wall = time.perf_counter() - started
        metrics = json.loads((run_dir / "metrics.json").read_text())
        # `polymodal eval` recomputes every number from predictions.csv, without retraining
        t0 = time.perf_counter()
        _, differences = evaluate_run(run_dir)
        eval_seconds = time.perf_counter() - t0
        report = (run_dir / "report.md").read_text()
        folder_mb = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file()) / 2**20
        jobs = len(list(run_dir.glob("jobs/**/result.json")))
    table = {c: {m: {k: v["splits"]["test"][k] for k in METRICS} for m, v in models.items()}
             for c, models in metrics["subsets"].items()}
    result = {"command": command, "benchmark": "python benchmarks/nla_mmr.py" + "".join(f" {a}" for a in extra),
              "config": cfg.model_dump(), "wall_seconds_cold_cache": wall, "jobs": jobs,
              "eval": {"seconds": eval_seconds, "reproduces_metrics": not differences, "differences": differences},
              "run_folder_mb": folder_mb, "timing": metrics["timing"], "environment": metrics["environment"],
              "test": table, "comparisons": metrics.get("comparisons"),
              "robustness": metrics.get("subset_robustness"), "sizes": metrics["dataset"]["sizes"],
              "vocabularies": metrics["vocabularies"], "etl": metrics["etl"],
              "note": "timed on a 2-core machine shared with other engineers, inside the shared CPU lock "
                      "(flock /tmp/pm-cpu.lock), so no other heavy job ran at the same time"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "nla_mmr.json", result)
    env = metrics["environment"]
    header = (f"# Benchmark: nla-mmr on the MIMIC-III demo\n\nCommand: `{command}` (run by "
              f"`{result['benchmark']}` under `flock /tmp/pm-cpu.lock`)  \n"
              f"Wall time of the command (fresh process, cold embedding cache, ETL included, {jobs} jobs on the one "
              f"runner): {wall:.0f} s on {env['cpu_count']} CPUs ({env['processor']}, {env['system']}, torch "
              f"{env['torch']}).  \n"
              f"`polymodal eval` on the run folder: {eval_seconds:.0f} s, metrics.json reproduced exactly: "
              f"{not differences}; run folder {folder_mb:.1f} MiB.\n")
    write_text(RESULTS / "nla_mmr.md", header + "\n" + _changes(_previous(), table, metrics["vocabularies"])
               + "\n" + report)
    print(f"wrote {RESULTS / 'nla_mmr.json'} and .md ({wall:.0f} s)")


if __name__ == "__main__":
    main()
