"""Benchmark: the meiju recipe, both cases (paired MELD emotion + sentiment; unpaired MELD emotion +
MIntRec2.0 intent), every label budget (5, 10, 25, 100%) and 3 seeds, from a warm embedding cache.

    flock /tmp/pm-cpu.lock python benchmarks/meiju_embed.py /work/shared/data   # cold step, once
    flock /tmp/pm-cpu.lock python benchmarks/meiju.py --data-dir /work/shared/data

Runs the recipe's own per-(budget, seed) cell (``recipes.meiju_pipeline.run_cell``, what each runner
job calls) in this process, evaluates the predictions with the recipe's task
(``tasks.multitask.MultiTaskClassification``: dialogue-cluster bootstrap CIs, paired comparisons),
and writes benchmarks/results/meiju.json and meiju.md with the machine and the wall time.
Prediction rows of tasks a sample has no label for are not kept here (they carry no metric).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.data.paths import resolve_data_dir  # noqa: E402
from polymodal.encoders.cache import EmbeddingCache  # noqa: E402
from polymodal.encoders.text import HashingTextEncoder, SentenceTextEncoder  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.recipes.meiju import ABLATION_PAIRS, MeijuConfig  # noqa: E402
from polymodal.recipes.meiju_pipeline import run_meiju  # noqa: E402
from polymodal.tasks.multitask import MultiTaskClassification  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def fmt(s: dict | None) -> str:
    if not s:
        return ""
    return f"{s['mean']:.3f} ± {s['std']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def case_markdown(case: str, metrics: dict, run_info: dict, tasks: list[str]) -> list[str]:
    cols = ["meiju_score", *[f"weighted_f1_{t}" for t in tasks], *[f"macro_f1_{t}" for t in tasks],
            *[f"accuracy_{t}" for t in tasks]]
    lines = [f"## {case} case: test split (mean ± std over seeds [95% dialogue-bootstrap CI of the seed-mean])", "",
             "| model | kind | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, res in metrics["models"].items():
        test = res["splits"].get("test", {})
        lines.append(f"| {name} | {res['kind']} | " + " | ".join(fmt(test.get(c)) for c in cols) + " |")
    lines += ["", f"### {case}: paired comparisons (test meiju_score; Holm over the family)", "",
              "| comparison | difference | 95% CI | p | p (Holm) | verdict |", "|---|---|---|---|---|---|"]
    for c in metrics.get("comparisons", []):
        lines.append(f"| {c['model']} | {c['mean']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | "
                     f"{c['p_value']:.3f} | {c['p_adjusted']:.3f} | {c['verdict']} |")
    lines += ["", f"### {case}: pseudo-labels per round (mean over seeds; precision against the hidden labels)", "",
              "| budget | variant | round | threshold | task | unlabelled | pseudo-labelled | precision | "
              "valid meiju_score |", "|---|---|---|---|---|---|---|---|---|"]
    for r in run_info["pseudo_summary"]:
        lines.append(f"| {r['budget']} | {r['variant']} | {r['round']} | {r['threshold']} | {r['task']} | "
                     f"{r['n_unlabeled']:.0f} | {r['n_pseudo']:.0f} | {r['precision']:.3f} | {r['valid_score']:.3f} |")
    chosen = run_info.get("chosen_thresholds", {})
    if chosen:
        lines += ["", f"Validation-chosen thresholds (per budget, per seed): {chosen}"]
    return lines


def run_case(case: str, args: argparse.Namespace, data_dir: Path) -> tuple[dict, list[str], dict]:
    """One case: train every model of every (budget, seed), evaluate, summarise (runs in a worker)."""
    cache = EmbeddingCache.default()
    encoder = SentenceTextEncoder() if args.text_encoder == "minilm" else HashingTextEncoder(dim=384)
    smoke = {"max_epochs": 2, "min_steps": 5, "tfidf_cs": (1.0,), "n_boot": 20} if args.smoke else {}
    cfg = MeijuConfig(case=case, seeds=args.seeds, budgets=tuple(args.budgets), text_encoder=args.text_encoder,
                      **smoke)
    run = run_meiju(cfg, data_dir, encoder, cache, labelled_only=True, with_probabilities=False,
                    log=lambda s: print(s, flush=True))
    t_eval = time.perf_counter()
    tasks = list(run.info["classes"])
    task = MultiTaskClassification(classes=run.info["classes"], headline="meiju", pairs=ABLATION_PAIRS,
                                   selections=("valid",),
                                   n_boot=cfg.n_boot)
    metrics = task.evaluate(run.predictions)
    pseudo = run.pseudo
    summary = []
    if not pseudo.empty:
        keys = ["budget", "variant", "round", "threshold", "task"]
        summary = (pseudo.groupby(keys, sort=False)[["n_unlabeled", "n_pseudo", "precision", "valid_score"]]
                   .mean().reset_index().to_dict("records"))
    chosen: dict[str, list[float]] = {}
    for c in run.info["cells"]:
        if "threshold[meiju PL=valid-threshold]" in c:
            chosen.setdefault(c["budget"], []).append(c["threshold[meiju PL=valid-threshold]"])
    run_info = {"pseudo_summary": summary, "chosen_thresholds": chosen, "cells": run.info["cells"],
                "load_seconds": run.info["load_seconds"], "train_seconds": run.info["seconds"],
                "eval_seconds": round(time.perf_counter() - t_eval, 1)}
    result = {"config": cfg.model_dump(mode="json"), "metrics": metrics, "run": run_info}
    return result, case_markdown(case, metrics, run_info, tasks), cache.stats.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["paired", "unpaired"])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.10, 0.25, 1.0])
    parser.add_argument("--name", default="meiju")
    parser.add_argument("--text-encoder", default="minilm", choices=["minilm", "hashing"],
                        help="hashing: a quick offline smoke test of the pipeline (not the recipe's encoder)")
    parser.add_argument("--smoke", action="store_true", help="2 epochs, 1 C, 20 resamples: checks the flow only")
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    cache_stats: dict = {}
    t0 = time.perf_counter()
    out: dict = {"command": "flock /tmp/pm-cpu.lock python benchmarks/meiju.py --data-dir /work/shared/data",
                 "cases": {}}
    md = ["# meiju benchmark", ""]
    # The two cases are independent: one process each, so both cores work (each trains with 1 thread).
    with ProcessPoolExecutor(max_workers=min(2, len(args.cases))) as pool:
        futures = {case: pool.submit(run_case, case, args, data_dir) for case in args.cases}
        for case, future in futures.items():
            result, lines, stats = future.result()
            out["cases"][case] = result
            md += [*lines, ""]
            for key, value in stats.items():
                cache_stats[key] = cache_stats.get(key, 0) + value
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    out["embedding_cache"] = cache_stats
    out["environment"] = environment()
    md += [f"Wall time (both cases in parallel processes, warm cache): {out['wall_seconds']} s; "
           f"embedding cache: {cache_stats.get('hits')} hits, {cache_stats.get('misses')} misses.",
           f"Machine: {out['environment']}", f"Command: `{out['command']}`"]
    write_json(RESULTS / f"{args.name}.json", out)
    write_text(RESULTS / f"{args.name}.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
