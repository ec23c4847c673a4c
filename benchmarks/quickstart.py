"""Benchmark: wall time and results of `polymodal quickstart` on a fresh run folder.

    python benchmarks/quickstart.py

Runs the quickstart exactly as a user would (a subprocess, fresh output folder, no data
directory) and writes benchmarks/results/quickstart.json and .md with the machine it ran on. The
numbers are compared with the results file found before the run (the previous committed run):
each test C-index mean and CI is reported as identical or with its old value.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.runs.environment import environment  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quickstart.json"


def compare(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: per model, whether mean, std and CI equal the previous results'."""
    before = {r["model"]: r for r in old}
    lines = ["| model | mean, std | 95% CI | previous (mean ± std [CI]) |", "|---|---|---|---|"]
    for row in new:
        prev = before.get(row["model"])
        if prev is None:
            lines.append(f"| {row['model']} | new | new | (none) |")
            continue
        same_mean = prev["mean"] == row["mean"] and prev["std"] == row["std"]
        same_ci = prev["ci_low"] == row["ci_low"] and prev["ci_high"] == row["ci_high"]
        lines.append(f"| {row['model']} | {'identical' if same_mean else 'differs'} | "
                     f"{'identical' if same_ci else 'differs'} | {prev['mean']:.4f} ± {prev['std']:.4f} "
                     f"[{prev['ci_low']:.4f}, {prev['ci_high']:.4f}] |")
    return lines


def main() -> None:
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quickstart"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "polymodal", "quickstart", "--out", str(out), "--json"],
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-4000:])
        metrics = json.loads((out / "metrics.json").read_text())
    test = [{"model": name, "kind": m["kind"], "split": "test", "metric": "c_index",
             **{k: m["splits"]["test"]["c_index"][k] for k in ("mean", "std", "ci_low", "ci_high")},
             "seeds": m["seeds"]} for name, m in metrics["models"].items()]
    payload = {"benchmark": "quickstart", "command": "python benchmarks/quickstart.py", "wall_seconds": round(wall, 1),
               "test_c_index": test, "robustness": metrics.get("robustness", {}),
               "comparisons": metrics.get("comparisons", []), "environment": environment()}
    write_json(RESULTS, payload)
    lines = ["# `polymodal quickstart` (scikit-survival breast cancer: genes + clinical -> survival)", "",
             f"Command: `{payload['command']}`. Wall time (fresh process and run folder): **{wall:.1f} s** on "
             f"{payload['environment']['cpu_count']} cores.", "",
             "| model | kind | test C-index (mean ± std over seeds) | 95% CI |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['kind']} | {r['mean']:.3f} ± {r['std']:.3f} | "
              f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] |" for r in test]
    lines += ["", "Paired differences (headline minus each model; the same bootstrap draws of test patients for "
              "every model; p two-sided, Holm-adjusted):", "", "| comparison | difference | 95% CI | p | p (Holm) |",
              "|---|---|---|---|---|"]
    lines += [f"| {c['model']} | {c['mean']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {c['p_value']:.3g} | "
              f"{c['p_adjusted']:.3g} |" for c in payload["comparisons"]]
    if previous is not None:
        lines += ["", "## Compared with the previous results file", "", *compare(previous["test_c_index"], test)]
    write_text(ROOT / "benchmarks" / "results" / "quickstart.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
