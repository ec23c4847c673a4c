"""Benchmark: the taxonomy-classifier recipe on the Myntra fashion products (all settings, 3 seeds).

    flock /tmp/pm-cpu.lock python benchmarks/fashion_features.py --data-dir ../shared/data   # cold features, once
    flock /tmp/pm-cpu.lock python benchmarks/taxonomy_classifier.py --data-dir ../shared/data [--seeds 3]

Runs the recipe with its defaults (the same code as ``polymodal run taxonomy-classifier``) from the
warm feature cache, timed end to end in this process: the number the issue's "< 10 minutes on 2
cores" refers to. The cold image-feature extraction is timed apart by benchmarks/fashion_features.py
(results/fashion_features.json). Writes benchmarks/results/taxonomy_classifier.json and .md (the run's
report, the timings and the machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.config import apply_overrides  # noqa: E402
from polymodal.data.paths import resolve_cache_dir, resolve_data_dir  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.recipes.taxonomy_classifier import RECIPE, TaxonomyClassifierConfig  # noqa: E402
from polymodal.recipes.taxonomy_features import prepare_inputs  # noqa: E402
from polymodal.runs import run_recipe  # noqa: E402
from polymodal.tasks.hierarchical import HierarchicalTask  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
HEADLINE = ("accuracy_masterCategory", "accuracy_subCategory", "accuracy_articleType", "macro_f1_articleType",
            "exact_match", "consistency", "hierarchical_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-products", type=int, default=0, help="0 = all (a smoke run uses a subset)")
    parser.add_argument("--max-id", type=int, default=0, help="0 = all; else only products with id <= this")
    parser.add_argument("--name", default="taxonomy_classifier")
    args = parser.parse_args()
    cfg = apply_overrides(TaxonomyClassifierConfig, {"max_products": args.max_products, "max_id": args.max_id},
                          protocol={"seeds": args.seeds})
    # First pass: fills any cache entries still missing (the masked names depend on the training split's
    # class words, so benchmarks/fashion_features.py cannot encode them); a no-op read on a warm cache.
    t = time.perf_counter()
    prepare_inputs(cfg, resolve_data_dir(args.data_dir), resolve_cache_dir(args.cache_dir))
    first_pass = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        t = time.perf_counter()
        metrics = run_recipe(RECIPE, cfg, out_dir=run_dir, data_dir=args.data_dir, cache_dir=args.cache_dir,
                             progress=True)
        seconds = time.perf_counter() - t
        report = (run_dir / "report.md").read_text()
    task = HierarchicalTask(**metrics["task_spec"])
    cold = RESULTS / "fashion_features.json"
    cold_info = json.loads(cold.read_text()) if cold.is_file() else None
    headline: dict = {}
    for subset, models in [("all", metrics["models"]), *(metrics.get("subsets") or {}).items()]:
        for model, res in models.items():
            test = res["splits"].get("test", {})
            headline.setdefault(subset, {})[model] = {
                m: {k: test[m][k] for k in ("mean", "std", "ci_low", "ci_high")} for m in HEADLINE if m in test}
            headline[subset][model]["n"] = res["n"].get("test")
    out = {
        "command": f"flock /tmp/pm-cpu.lock python benchmarks/taxonomy_classifier.py --seeds {args.seeds}"
                   + (f" --max-products {args.max_products}" if args.max_products else "")
                   + (f" --max-id {args.max_id}" if args.max_id else "") + f" --name {args.name}",
        "wall_seconds_warm": round(seconds, 1),
        "first_pass_prepare_seconds": round(first_pass, 1),
        "timing": metrics.get("timing"),
        "feature_timing": metrics.get("feature_timing"),
        "cold_feature_extraction": cold_info and {k: cold_info[k] for k in ("image_seconds", "images_encoded",
                                                                            "name_seconds", "names", "threads")},
        "config": cfg.model_dump(),
        "dataset": metrics.get("dataset"),
        "test": headline,
        "comparisons": metrics.get("comparisons"),
        "skips": metrics.get("skips"),
        "environment": environment(),
    }
    report += "\n" + "\n\n".join(task.report_sections(metrics)) + "\n"
    write_json(RESULTS / f"{args.name}.json", out)
    env = out["environment"]
    write_text(RESULTS / f"{args.name}.md",
               f"# taxonomy-classifier benchmark\n\nCommand: `{out['command']}`\n\n"
               f"Warm-cache wall time (this process, everything from loading to the report): {seconds:.0f} s "
               f"(a first feature pass before it, which encodes the masked names when cold: {first_pass:.0f} s). "
               f"Cold feature extraction (benchmarks/fashion_features.py): "
               + (f"{cold_info['image_seconds']} s for {cold_info['images_encoded']} photos, "
                  f"{cold_info['name_seconds']} s for {cold_info['names']} names "
                  f"({cold_info['threads']} threads)" if cold_info else "not measured")
               + f".\n\nMachine: {json.dumps(env)}\n\n" + report)
    print(f"done in {seconds:.0f} s")


if __name__ == "__main__":
    main()
