"""Benchmark: MEXA-CTP and its baselines on TOP phase I under the polymodal protocol.

    python benchmarks/top_phase1.py --data-dir ../shared/data [--seeds 5] [--variant NAME ...]

For each variant (a set of recipe options) it runs `polymodal run mexa-ctp` from a warm
embedding cache and records test metrics with CIs, per-seed training time and the wall time.
The cold embedding time (a fresh cache: MiniLM over every criteria statement, Morgan over every
molecule) is measured once on its own. Writes benchmarks/results/top_phase1.json and .md,
with the machine it ran on.
"""

from __future__ import annotations

import argparse
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

SELECTION_FILE = ROOT / "benchmarks" / "results" / "select_variant.json"


def variants() -> dict[str, list[str]]:
    """The paper's defaults, plus the variant that benchmarks/select_variant.py chose on the
    temporal hold-out (never on test), plus the mode-experts variant with the same inputs."""
    out: dict[str, list[str]] = {"paper-defaults": []}
    if SELECTION_FILE.exists():
        selection = json.loads(SELECTION_FILE.read_text())
        chosen = selection["selected"]
        options = selection["variants"][chosen]["options"]
        out[f"selected:{chosen}"] = _as_cli(options)
        if options.get("fusion") == "concat":  # the same inputs through MEXA-CTP's mode experts
            out["same-inputs-mode-experts"] = _as_cli({k: v for k, v in options.items() if k != "fusion"})
    return out


def _as_cli(options: dict) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + key.replace("_", "-"))
        else:
            args += [flag, str(value)]
    return args
METRICS = ("roc_auc", "pr_auc", "f1")


def cold_embedding_seconds(data_dir: Path) -> dict[str, float]:
    """Featurise phase I once into an empty cache and time it."""
    from polymodal.data.paths import resolve_data_dir
    from polymodal.data.sources.top import load_top
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.recipes.mexa_ctp import MexaCtpConfig, make_featurizer

    cfg = MexaCtpConfig(max_inclusion=1000, max_exclusion=1000)
    splits = load_top(resolve_data_dir(data_dir), "I")
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp))
        featurizer = make_featurizer(cfg, resolve_data_dir(data_dir), cache).fit(splits.train)
        t0 = time.perf_counter()
        for _, records in splits.items():
            featurizer.transform(records)
        seconds = time.perf_counter() - t0
        return {"seconds": round(seconds, 1), **cache.stats.as_dict()}


def run_variant(name: str, options: list[str], data_dir: Path, seeds: int, out_root: Path) -> dict:
    out = out_root / name
    cmd = [sys.executable, "-m", "polymodal", "run", "mexa-ctp", "--data-dir", str(data_dir), "--seeds", str(seeds),
           "--out", str(out), "--json", *options]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-4000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"options": options, "wall_seconds": round(wall, 1), "metrics": metrics}


def summarise(results: dict, selection: str) -> list[dict]:
    rows = []
    for variant, res in results.items():
        models = res["metrics"]["selections"][selection]
        for model, m in models.items():
            if variant != next(iter(results)) and m.get("kind") != "recipe":
                continue  # baselines are identical across variants; show them once
            row = {"variant": variant if m.get("kind") == "recipe" else "-", "model": model, "kind": m.get("kind")}
            for metric in METRICS:
                s = m["splits"]["test"][metric]
                row[metric] = {k: s.get(k) for k in ("mean", "std", "ci_low", "ci_high")}
            row["valid_roc_auc"] = m["splits"]["valid"]["roc_auc"]["mean"]
            rows.append(row)
    return rows


def _per_seed(res: dict) -> float:
    seconds = res["metrics"]["timing"]["train_seconds_per_seed"]
    return sum(seconds) / max(len(seconds), 1)


def _cell(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def _drops(payload: dict) -> list[str]:
    first = next(iter(payload["variants"].values()))["metrics"]["robustness"]
    return sorted(k for k in first if k.startswith("drop:"))


def markdown(payload: dict) -> str:
    lines = [f"# TOP phase I: MEXA-CTP and baselines ({payload['seeds']} seeds)", "",
             f"Command: `{payload['command']}`", "",
             f"Machine: {payload['environment']['processor']}, {payload['environment']['cpu_count']} cores, "
             f"torch {payload['environment']['torch']}, Python {payload['environment']['python']}.", ""]
    for selection, rows in payload["tables"].items():
        lines += [f"## Selection on: {selection}", "",
                  "| variant | model | kind | test ROC-AUC [95% CI] | test PR-AUC [95% CI] | test F1 "
                  "| selection ROC-AUC |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['variant']} | {r['model']} | {r['kind']} | {_cell(r['roc_auc'])} | "
                         f"{_cell(r['pr_auc'])} | {r['f1']['mean']:.3f} | {r['valid_roc_auc']:.3f} |")
        lines.append("")
    lines += ["## Does each modality help? (test ROC-AUC with one modality dropped at test time)", "",
              "| variant | all modalities | " + " | ".join(_drops(payload)) + " |",
              "|---|---|" + "---|" * len(_drops(payload))]
    for variant, res in payload["variants"].items():
        robust = res["metrics"]["robustness"]
        cells = [f"{robust[k]['roc_auc']['mean']:.3f} [{robust[k]['roc_auc']['ci_low']:.3f}, "
                 f"{robust[k]['roc_auc']['ci_high']:.3f}]" for k in ("none", *_drops(payload))]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += ["", "## Time", "", f"- cold embedding of phase I (empty cache): {payload['cold_embedding']['seconds']} s",
              *[f"- `{v}`: {res['wall_seconds']} s wall for {payload['seeds']} seeds x "
                f"{len(res['metrics']['selections'])} selections from a warm cache "
                f"(training {sum(res['metrics']['timing']['train_seconds_per_seed']):.0f} s, "
                f"{_per_seed(res):.1f} s per seed and selection)"
                for v, res in payload["variants"].items()], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--variant", action="append", help="run only these variants (default: all)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "polymodal-bench")
    args = parser.parse_args()
    known = variants()
    chosen = args.variant or list(known)
    cold = cold_embedding_seconds(args.data_dir)
    # Warm the cache for the runs (the cold timing above used a throwaway cache).
    results = {name: run_variant(name, known[name], args.data_dir, args.seeds, args.out) for name in chosen}
    selections = next(iter(results.values()))["metrics"]["selections"]
    payload = {
        "benchmark": "top_phase1",
        "command": "python benchmarks/top_phase1.py --data-dir ../shared/data --seeds " + str(args.seeds),
        "seeds": args.seeds,
        "environment": environment(),
        "cold_embedding": cold,
        "tables": {sel: summarise(results, sel) for sel in selections},
        "variants": {name: {"options": r["options"], "wall_seconds": r["wall_seconds"],
                            "metrics": {k: r["metrics"][k] for k in ("selections", "robustness", "timing", "drift")}}
                     for name, r in results.items()},
    }
    out = ROOT / "benchmarks" / "results"
    write_json(out / "top_phase1.json", payload)
    write_text(out / "top_phase1.md", markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
