"""Benchmark: UMPSNet's survival loss, MCAT's discrete-time NLL (the default) vs the Cox partial likelihood.

    python benchmarks/umpsnet_loss.py [--data-dir DIR] [--run DIR]

Runs `polymodal run umpsnet --loss cox` (or reads ``--run``, a finished run folder made by that
command) and sets its headline pan-cancer network beside the default NLL run committed in
benchmarks/results/umpsnet.json (same folds, inner splits and seeds). The loss is *chosen* on the
inner-validation C-index only; the test columns are shown after the choice, never used for it.
Writes benchmarks/results/umpsnet_loss.json and .md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.evaluation import format_cell  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("c_index_blca", "c_index_luad", "c_index_mean")


def _fmt(cell: dict) -> str:
    # Inner-validation cells carry ci_low/ci_high = None (no CI there): drop them, not "[n/a, n/a]".
    return format_cell({k: v for k, v in cell.items() if v is not None}, ci_digits=3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--run", default=None, help="a finished `polymodal run umpsnet --loss cox` folder")
    args = parser.parse_args()
    wall = None
    if args.run:
        run = Path(args.run)
    else:
        run = ROOT / "runs" / "bench_umpsnet_cox"
        data = ["--data-dir", args.data_dir] if args.data_dir else []
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "polymodal.cli", "run", "umpsnet", *data, "--loss", "cox",
                        "--out", str(run), "--quiet"], check=True)
        wall = round(time.perf_counter() - t0, 1)
    config = json.loads((run / "config.json").read_text())
    config = config.get("options", config)  # the one runner's config.json nests the recipe options
    if config.get("loss") != "cox":
        raise SystemExit(f"{run / 'config.json'}: loss is {config.get('loss')!r}, expected 'cox'")
    cox = json.loads((run / "metrics.json").read_text())["models"]["umpsnet"]["splits"]
    nll = json.loads((RESULTS / "umpsnet.json").read_text())["models"]["umpsnet"]
    rows = {"nll (default)": {"valid": nll["valid"], "test": nll["test"]},
            "cox": {"valid": cox["valid"], "test": cox["test"]}}
    chosen = max(rows, key=lambda name: rows[name]["valid"]["c_index_mean"]["mean"])
    payload = {"benchmark": "umpsnet_loss", "command": "python benchmarks/umpsnet_loss.py",
               "run_command": "polymodal run umpsnet --loss cox --quiet", "wall_seconds": wall,
               "chosen_on_inner_validation": chosen, "models": rows, "environment": environment()}
    write_json(RESULTS / "umpsnet_loss.json", payload)
    env = payload["environment"]
    lines = ["# UMPSNet loss: discrete-time NLL vs Cox partial likelihood (5 folds, BLCA + LUAD)", "",
             f"Command: `{payload['command']}` (runs `{payload['run_command']}`; the NLL row is the default run in "
             f"umpsnet.json, same folds, inner splits and seeds). Machine: {env.get('machine', '')} "
             f"{env.get('cpu_count', '')} CPUs, torch {env.get('torch', '')}.", "",
             f"Chosen on the inner-validation mean C-index: **{chosen}**. Inner-validation C-indices are "
             "optimistic (early stopping picked the epoch on them); test columns come after the choice.", "",
             "| loss | split | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for name, splits in rows.items():
        for split in ("valid", "test"):
            lines.append(f"| {name} | {split} | " + " | ".join(_fmt(splits[split][m]) for m in METRICS) + " |")
    write_text(RESULTS / "umpsnet_loss.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
