"""Benchmark: wall time and results of `polymodal quickstart` on a fresh run folder.

    python benchmarks/quickstart.py

Runs the quickstart exactly as a user would (a subprocess, fresh output folder, no data
directory) and writes benchmarks/results/quickstart.json and .md with the machine it ran on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quickstart"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "polymodal", "quickstart", "--out", str(out), "--json"],
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-4000:])
        rows = json.loads(proc.stdout)["rows"]
        metrics = json.loads((out / "metrics.json").read_text())
    test = [r for r in rows if r["split"] == "test" and r["metric"] == "c_index"]
    payload = {"benchmark": "quickstart", "command": "python benchmarks/quickstart.py", "wall_seconds": round(wall, 1),
               "test_c_index": test, "robustness": metrics.get("robustness", {}), "environment": environment()}
    write_json(ROOT / "benchmarks" / "results" / "quickstart.json", payload)
    lines = ["# `polymodal quickstart` (scikit-survival breast cancer: genes + clinical -> survival)", "",
             f"Command: `{payload['command']}`. Wall time (fresh process and run folder): **{wall:.1f} s** on "
             f"{payload['environment']['cpu_count']} cores.", "",
             "| model | test C-index (mean ± std over seeds) | 95% CI |", "|---|---|---|"]
    lines += [f"| {r['model']} | {r['mean']:.3f} ± {r['std']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] |"
              for r in test]
    write_text(ROOT / "benchmarks" / "results" / "quickstart.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
