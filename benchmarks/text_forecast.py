"""Benchmark: `polymodal run text-forecast --domain all` on Time-MMD, every domain and horizon.

    flock /tmp/pm-cpu.lock python benchmarks/text_forecast.py --domain all --warm [--seeds 3] [--max-epochs 15]

Runs the recipe as `polymodal run` does (in this process, so the wall time excludes nothing but
the interpreter start), then writes benchmarks/results/text_forecast.json and .md (the run's
report plus the machine and the wall time) and copies the per-domain plots to
benchmarks/results/text_forecast_plots/. ``--warm`` first fills the embedding cache and times the
run separately, so the reported wall time is "from a warm cache".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.config import apply_overrides  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.recipes.text_forecast import TextForecastConfig, embed_texts, run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


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
    args = parser.parse_args()
    cfg = apply_overrides(TextForecastConfig, {"domain": args.domain, "channels": args.channels,
                                               "horizons": args.horizons},
                          train={"max_epochs": args.max_epochs}, protocol={"seeds": args.seeds})
    warm_seconds = warm_cache(cfg, args.data_dir) if args.warm else None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        metrics = run(cfg, data_dir=args.data_dir, out_dir=out, log=lambda s: print(s, flush=True))
        wall = time.perf_counter() - t0
        report = (out / "report.md").read_text()
        plots = RESULTS / f"{args.name}_plots"
        if plots.exists():
            shutil.rmtree(plots)
        shutil.copytree(out / "plots", plots)
    command = (f"python benchmarks/text_forecast.py --domain {args.domain} --seeds {args.seeds} "
               f"--max-epochs {args.max_epochs} --channels {args.channels}" + (" --warm" if args.warm else "")
               + (f" --horizons {' '.join(map(str, args.horizons))}" if args.horizons else ""))
    env = environment()
    payload = {"benchmark": args.name, "command": command, "wall_seconds": round(wall, 1),
               "under_cpu_lock": bool(os.environ.get("PM_LOCKED")),
               "cache_warm_seconds": None if warm_seconds is None else round(warm_seconds, 1),
               "environment": env, "summary": metrics["summary"], "cells": metrics["cells"],
               "adapter": metrics["adapter"], "config": metrics["config"], "published": metrics["published"]}
    write_json(RESULTS / f"{args.name}.json", payload)
    head = [f"Command: `{command}`. Wall time {wall:.0f} s (embedding cache warm"
            + ("" if warm_seconds is None else f"; filling it took {warm_seconds:.0f} s") + f") on "
            f"{env['cpu_count']} cores ({env['processor']}, torch {env['torch']}, one training thread), "
            + ("run under the shared CPU lock (no other benchmark at the same time)." if os.environ.get("PM_LOCKED")
               else "other jobs may have run at the same time.") + f" Target: under 1200 s; "
            f"{'met' if wall < 1200 else 'NOT met'}.", ""]
    lines = report.splitlines()
    write_text(RESULTS / f"{args.name}.md", "\n".join(lines[:2] + head + lines[2:]) + "\n")
    print(f"wall {wall:.0f} s; summary {metrics['summary']}")


if __name__ == "__main__":
    main()
