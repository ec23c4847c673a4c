"""Benchmark: `polymodal run text-forecast --domain all` on Time-MMD, every domain and horizon.

    flock /tmp/pm-cpu.lock python benchmarks/text_forecast.py --domain all --warm [--seeds 3] [--max-epochs 15]

Runs the recipe through the one runner as `polymodal run` does (in this process), checks that
`polymodal eval` reproduces its metrics.json, and writes benchmarks/results/text_forecast.json and
.md (the run's forecast sections, the machine, the wall time, and what changed against the results
committed before: ``--previous``), and one plot per domain into benchmarks/results/text_forecast_plots/.
``--warm`` first fills the embedding cache and times the run separately ("from a warm cache").
``--out`` keeps the run folder, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.config import apply_overrides  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.recipes.text_forecast import RECIPE, TextForecastConfig, embed_texts  # noqa: E402
from polymodal.reports.forecast import forecast_sections, plot_cells  # noqa: E402
from polymodal.runs import evaluate_run, run_recipe  # noqa: E402
from polymodal.runs.environment import environment  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: Models whose numbers do not depend on a training seed or on the shuffled-text control: the
#: runner change must leave them as they were (up to float summation order).
DETERMINISTIC = ("last value", "seasonal naive", "NLinear", "DLinear", "NLinear + calendar",
                 "NLinear + calendar + text")


def warm_cache(cfg: TextForecastConfig, data_dir: Path | None) -> float:
    from polymodal.data.paths import resolve_cache_dir, resolve_data_dir
    from polymodal.data.sources.time_mmd import DOMAINS, load_texts
    from polymodal.encoders.cache import EmbeddingCache

    t0 = time.perf_counter()
    cache = EmbeddingCache(resolve_cache_dir() / "embeddings")
    domains = DOMAINS if cfg.domain == "all" else cfg.domain.split(",")
    for domain in domains:
        embed_texts(load_texts(resolve_data_dir(data_dir), domain, cfg.text_kinds), cfg, cache)
    return time.perf_counter() - t0


def changes(previous: dict[str, Any], metrics: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Markdown lines and a JSON record comparing this run with the previously committed results."""
    old_cells = {f"{c['domain']}/h{c['horizon']}": c for c in previous.get("cells", [])}
    rows: list[dict[str, Any]] = []
    for cell, models in metrics["subsets"].items():
        old = old_cells.get(cell)
        if old is None:
            continue
        for name, m in models.items():
            if name in old["models"]:
                new_mse, old_mse = m["splits"]["test"]["mse"]["mean"], old["models"][name]["mse"]
                rows.append({"cell": cell, "model": name, "old": old_mse, "new": new_mse,
                             "rel": new_mse / old_mse - 1 if old_mse else float("nan")})
        for label, t in metrics["tests"].get(cell, {}).items():
            if label in old.get("tests", {}):
                rows.append({"cell": cell, "model": f"p: {label}", "old": old["tests"][label]["p_value"],
                             "new": t["p_value"], "rel": float("nan")})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return ["No earlier results to compare with."], {}
    mse = frame[~frame["model"].str.startswith("p: ")]
    by_model = mse.groupby("model", sort=False)["rel"].agg(lambda r: float(np.max(np.abs(r))))
    med = mse.groupby("model", sort=False)["rel"].median()
    old_s = previous.get("summary", {})
    new_s = metrics["summary"]
    lines = ["## What changed against the results committed before this runner", "",
             "| model | cells | largest abs. relative change of test MSE | median relative change |",
             "|---|---|---|---|"]
    for name in by_model.index:
        lines.append(f"| {name} | {int((mse['model'] == name).sum())} | {by_model[name]:.2e} | {med[name]:+.2%} |")
    pvals = frame[frame["model"].str.startswith("p: ")]
    lines += ["", "Counts of cells (tower: text vs no text; shuffled; text and not shuffled) before and now:", "",
              "| | before (raw p < 0.05, old DM) | now, raw p (new DM) | now, adjusted p |", "|---|---|---|---|"]
    for key, label in (("text_significant_gain", "text significant"),
                       ("shuffled_significant_gain", "shuffled text significant"),
                       ("text_significant_and_shuffled_not", "text significant, shuffled not"),
                       ("text_significantly_better_than_shuffled", "text beats shuffled")):
        lines.append(f"| {label} | {old_s.get(key)} | {new_s.get(key + '_raw')} | {new_s.get(key)} |")
    lin_old, lin_new = old_s.get("linear", {}), new_s["linear"]
    for key, label in (("text_significant_gain", "linear: text significant"),
                       ("shuffled_significant_gain", "linear: shuffled text significant"),
                       ("text_significant_and_shuffled_not", "linear: text significant, shuffled not")):
        lines.append(f"| {label} | {lin_old.get(key)} | {lin_new.get(key + '_raw')} | {lin_new.get(key)} |")
    record = {"max_abs_relative_mse_change": by_model.to_dict(), "median_relative_mse_change": med.to_dict(),
              "p_values_compared": len(pvals),
              "median_abs_p_change": float(np.median(np.abs(pvals["new"] - pvals["old"]))) if len(pvals) else None}
    return lines, record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domain", default="all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--channels", default="target")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--name", default="text_forecast")
    parser.add_argument("--horizons", type=int, nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=None, help="run folder to keep (resumable); default a temp dir")
    parser.add_argument("--previous", type=Path, default=RESULTS / "text_forecast.json",
                        help="earlier results to compare with (read before they are overwritten)")
    args = parser.parse_args()
    cfg = apply_overrides(TextForecastConfig, {"domain": args.domain, "channels": args.channels,
                                               "horizons": args.horizons},
                          train={"max_epochs": args.max_epochs}, protocol={"seeds": args.seeds})
    previous = json.loads(args.previous.read_text()) if args.previous.is_file() else {}
    if previous.get("runner") == "runs.run_recipe" and "previous" in previous:
        previous = previous["previous"]  # compare with the results before the runner change, not with a rerun
    warm_seconds = warm_cache(cfg, args.data_dir) if args.warm else None
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        t0 = time.perf_counter()
        metrics = run_recipe(RECIPE, cfg, out_dir=out, data_dir=args.data_dir, progress=True)
        wall = time.perf_counter() - t0
        assert metrics is not None
        _, differences = evaluate_run(out)
        plots = RESULTS / f"{args.name}_plots"
        if plots.exists():
            shutil.rmtree(plots)
        plot_cells(pd.read_csv(out / "tables" / "plot.csv"), plots)
        resumed = [r for r in metrics["runs"] if r.get("jobs_reused")]
    command = (f"python benchmarks/text_forecast.py --domain {args.domain} --seeds {args.seeds} "
               f"--max-epochs {args.max_epochs} --channels {args.channels}" + (" --warm" if args.warm else "")
               + (f" --horizons {' '.join(map(str, args.horizons))}" if args.horizons else ""))
    env = environment()
    change_lines, change_record = changes(previous, metrics)
    compact = {cell: {name: {k: m["splits"]["test"][k]["mean"] for k in ("mse", "mae", "mse_orig", "mae_orig")}
                      | {"mse_ci": [m["splits"]["test"]["mse"]["ci_low"], m["splits"]["test"]["mse"]["ci_high"]],
                         "seeds": m["seeds"], "kind": m["kind"]}
                      for name, m in models.items()} for cell, models in metrics["subsets"].items()}
    payload = {"benchmark": args.name, "command": command, "runner": "runs.run_recipe", "wall_seconds": round(wall, 1),
               "under_cpu_lock": bool(os.environ.get("PM_LOCKED")), "eval_reproduces": differences == [],
               "resumed_invocations": len(resumed),
               "cache_warm_seconds": None if warm_seconds is None else round(warm_seconds, 1),
               "environment": env, "summary": metrics["summary"], "cells": compact, "tests": metrics["tests"],
               "cells_info": metrics["cells_info"], "text_selection": metrics["text_selection"],
               "adapter": metrics["adapter"], "config": cfg.model_dump(mode="json"), "published": metrics["published"],
               "changes": change_record,
               "previous": {k: previous.get(k) for k in ("command", "wall_seconds", "summary", "cells")}}
    write_json(RESULTS / f"{args.name}.json", payload)
    head = ["# text-forecast on Time-MMD", "",
            f"Command: `{command}`. Wall time {wall:.0f} s (embedding cache warm"
            + ("" if warm_seconds is None else f"; filling it took {warm_seconds:.0f} s") + f") on "
            f"{env.get('cpu_count')} cores ({env.get('processor') or env.get('machine')}, torch {env.get('torch')}, "
            "one training thread), " + ("run under the shared CPU lock." if os.environ.get("PM_LOCKED")
                                        else "other jobs may have run at the same time.")
            + (f" The run was resumed {len(resumed)} time(s) after an interruption (finished jobs reused)."
               if resumed else "")
            + " `polymodal eval` on the run folder reproduces metrics.json "
            + ("exactly." if differences == [] else f"with {len(differences)} differences (e.g. {differences[0]})."),
            "", "What changed in the method (see docs/recipes.md): the shuffled-text control now gives each window "
            "the texts of another window at least one input length earlier (never a text published after the "
            "window's origin; before, texts were permuted across all windows of a part); the Diebold-Mariano "
            "variance is the equal-weighted cosine estimator with the overlap correction and t(nu) reference "
            "(benchmarks/dm_size.py measures its size); p-values are adjusted with Holm over every test of the run "
            "and 'significant' is counted on adjusted p-values; every model is initialised from its own seed "
            "(before, the initial weights depended on what the process had trained earlier), so a resumed run "
            "equals an uninterrupted one.", ""]
    body = head + change_lines + [""] + forecast_sections(metrics)
    body += ["", "## Published (not on the same models)", "", "| model | metric | value | source | data |",
             "|---|---|---|---|---|"]
    body += [f"| {p['model']} | {p['metric']} | {p['value']:.3f} | {p['source']} | {p['dataset_version']} |"
             for p in metrics["published"]]
    write_text(RESULTS / f"{args.name}.md", "\n".join(body) + "\n")
    print(f"wall {wall:.0f} s; eval differences {len(differences)}; summary {metrics['summary']}")


if __name__ == "__main__":
    main()
