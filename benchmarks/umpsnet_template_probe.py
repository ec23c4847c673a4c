"""Probe: do UMPSNet's diagnosis and demographic sentences carry stage, T, N, M and age in a form the
frozen text encoder separates?

    python benchmarks/umpsnet_template_probe.py [--data-dir DIR]

For each clinical variable, a ridge regression (alpha chosen by inner CV) reads the variable from the
384-d MiniLM embedding of the one sentence that states it (diagnosis: stage/T/N/M; demographic:
age), scored by 5-fold cross-validated R^2 over the BLCA + LUAD patients that have the value. A high
R^2 means the information reaches the network linearly; what the network makes of it is the
benchmark's business (benchmarks/umpsnet.py). No survival outcome is used here.

Writes benchmarks/results/umpsnet_template_probe.json and .md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.data.paths import resolve_data_dir  # noqa: E402
from polymodal.data.sources.tcga import load_cohorts  # noqa: E402
from polymodal.encoders.templates import TEMPLATE_KINDS, render_templates  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.recipes.umpsnet import UMPSNetConfig, _clinical_frame, embed_templates  # noqa: E402

# variable -> the template kind whose sentence states it
SENTENCE = {"stage": "diagnosis", "t": "diagnosis", "n": "diagnosis", "m": "diagnosis", "age": "demographic"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    cfg = UMPSNetConfig()
    data = load_cohorts(resolve_data_dir(args.data_dir), cfg.cohorts)
    text = embed_templates(cfg, data.records, None)
    x = np.stack([text[r.id] for r in data.records])  # (N, 4, 384)
    clinical = _clinical_frame(data.records)
    rows = {}
    for var, kind in SENTENCE.items():
        y = clinical[var].to_numpy()
        ok = np.isfinite(y)
        r2 = cross_val_score(RidgeCV(alphas=np.logspace(-3, 3, 13)), x[ok, TEMPLATE_KINDS.index(kind)], y[ok],
                             cv=KFold(5, shuffle=True, random_state=0), scoring="r2")
        rows[var] = {"sentence": kind, "n": int(ok.sum()), "r2_mean": float(r2.mean()), "r2_std": float(r2.std())}
    example = render_templates(data.records[0].inputs["metadata"])
    payload = {"benchmark": "umpsnet_template_probe", "command": "python benchmarks/umpsnet_template_probe.py",
               "text_model": cfg.text_model, "probe": rows, "example": example,
               "seconds": round(time.perf_counter() - t0, 1), "environment": environment()}
    write_json(ROOT / "benchmarks" / "results" / "umpsnet_template_probe.json", payload)
    env = payload["environment"]
    lines = ["# UMPSNet templates: is stage / T / N / M / age linearly readable from the sentence embedding?", "",
             f"Command: `{payload['command']}`; {cfg.text_model}; {len(data.records)} BLCA + LUAD patients; "
             f"{payload['seconds']:.0f} s on {env['cpu_count']} cores ({env['processor']}).", "",
             "Ridge regression from the 384-d embedding of the sentence that states the variable; 5-fold CV R^2 "
             "(ordinal stage 1-4, T 1-4, N 0-3, M 0-1; patients with the value only).", "",
             "| variable | sentence | patients | CV R^2 |", "|---|---|---|---|"]
    lines += [f"| {v} | {r['sentence']} | {r['n']} | {r['r2_mean']:.3f} ± {r['r2_std']:.3f} |" for v, r in rows.items()]
    lines += ["", "Example sentences: " + "; ".join(f"{k}: \"{v}\"" for k, v in example.items())]
    write_text(ROOT / "benchmarks" / "results" / "umpsnet_template_probe.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
