"""Rewrite the README's results section from the committed benchmark results files.

    python benchmarks/readme_results.py

Reads benchmarks/results/top_phase1.json and quickstart.json (written by top_phase1.py and
quickstart.py) and replaces the text between the README markers, so every number in the README
comes from a results file that a command in benchmarks/ wrote.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.io import write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _ci(s: dict) -> str:
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def top_section(payload: dict) -> list[str]:
    env = payload["environment"]
    lines = [f"**TOP phase I, test split** ({payload['seeds']} seeds; selection and thresholds on the temporal "
             "hold-out, never on test; mean [95% bootstrap CI]). From "
             f"`{payload['command']}` on {env['cpu_count']} CPU cores; details and the official-valid-split "
             "selection in `benchmarks/results/top_phase1.md`.", "",
             "| model | kind | ROC-AUC | PR-AUC | F1 |", "|---|---|---|---|---|"]
    for row in payload["tables"]["temporal"]:
        name = row["model"] if row["kind"] != "recipe" else f"{row['model']} ({row['variant']})"
        lines.append(f"| {name} | {row['kind']} | {_ci(row['roc_auc'])} | {_ci(row['pr_auc'])} | "
                     f"{row['f1']['mean']:.3f} |")
    lines += ["", "Published phase I numbers, on an earlier TOP release and split (context, not a like-for-like "
              "comparison): MEXA-CTP F1 0.713, PR-AUC 0.605, ROC-AUC 0.593 (MEXA-CTP README).", ""]
    for variant, res in payload["variants"].items():
        seconds = res["metrics"]["timing"]["train_seconds_per_seed"]
        lines.append(f"- `{variant}`: {res['wall_seconds']:.0f} s wall for the whole run ({payload['seeds']} seeds x "
                     f"{len(res['metrics']['selections'])} selections, baselines, robustness, report) from a warm "
                     f"cache; {sum(seconds) / len(seconds):.0f} s of training per seed.")
    lines.append(f"- Cold embedding of every phase I criteria statement and molecule: "
                 f"{payload['cold_embedding']['seconds']:.0f} s.")
    return lines


def quickstart_section(payload: dict) -> list[str]:
    lines = ["", f"**`polymodal quickstart`** ({payload['wall_seconds']:.0f} s wall, measured while other jobs loaded "
             "the machine; test C-index, mean "
             "[95% CI]; from `python benchmarks/quickstart.py`):", "",
             "| model | C-index |", "|---|---|"]
    lines += [f"| {r['model']} | {_ci(r)} |" for r in payload["test_c_index"]]
    return lines


def main() -> None:
    lines: list[str] = []
    top = RESULTS / "top_phase1.json"
    if top.exists():
        lines += top_section(json.loads(top.read_text()))
    quick = RESULTS / "quickstart.json"
    if quick.exists():
        lines += quickstart_section(json.loads(quick.read_text()))
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        sys.exit(f"README.md lacks the markers {START} / {END}")
    block = "\n".join([START, *lines, END])
    write_text(readme, re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    print(block)


if __name__ == "__main__":
    main()
