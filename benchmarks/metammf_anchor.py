"""metammf anchor check: popularity on ml-latest-small's per-user random 80/10/10 split (seconds, CPU).

    python benchmarks/metammf_anchor.py --data-dir /work/shared/data

Runs the metammf recipe through the one runner with only the popularity model (deterministic: one
seed; item features are not used by it, so hashed text stands in for MiniLM to skip encoding) and
writes benchmarks/results/metammf_anchor.{json,md}: test Recall@10 / NDCG@10 with 95% bootstrap
CIs over users beside issue 15's anchor (0.070 / 0.103), and the cost of full ranking.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/shared/data")
    parser.add_argument("--run-dir", default="/tmp/pm-metammf-anchor")
    args = parser.parse_args()

    from polymodal.config import TrainConfig
    from polymodal.recipes.metammf import RECIPE, MetaMMFConfig, RankingProtocol
    from polymodal.runs.runner import run_recipe

    cfg = MetaMMFConfig(models=("popularity",), modalities=("genres", "year"), text_model="hashing",
                        protocol=RankingProtocol(seeds=1), train=TrainConfig(workers=1, threads=1, progress=False))
    t0 = time.perf_counter()
    metrics = run_recipe(RECIPE, cfg, out_dir=args.run_dir, data_dir=Path(args.data_dir), overwrite=True,
                         progress=False)
    seconds = time.perf_counter() - t0
    test = metrics["models"]["popularity"]["splits"]["test"]
    keep = ("recall@10", "ndcg@10", "precision@10", "hr@10", "recall@20", "ndcg@20")
    out = {"command": "python benchmarks/metammf_anchor.py --data-dir /work/shared/data",
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "seconds": round(seconds, 1),
           "dataset": {k: metrics["dataset"][k] for k in ("users", "items", "interactions")},
           "split_seed": cfg.split_seed, "anchor": {"recall@10": 0.070, "ndcg@10": 0.103},
           "popularity_test": {k: {s: test[k][s] for s in ("mean", "ci_low", "ci_high")} for k in keep},
           "n_test_users": metrics["models"]["popularity"]["n"]["test"],
           "ranking_cost": metrics["ranking_cost"]["popularity"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "metammf_anchor.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# metammf anchor: popularity on ml-latest-small (per-user random 80/10/10, split seed 0)", "",
             f"Command: `{out['command']}` ({out['seconds']} s on {out['machine']['platform']}, "
             f"{out['machine']['cpus']} shared CPUs). {out['n_test_users']} test users; full ranking over "
             f"{out['dataset']['items']} items minus each user's training items.", "",
             "| metric | ours | 95% CI (users) | issue 15 anchor |", "|---|---|---|---|"]
    for k in keep:
        s = out["popularity_test"][k]
        anchor = out["anchor"].get(k)
        lines.append(f"| {k} | {s['mean']:.4f} | [{s['ci_low']:.4f}, {s['ci_high']:.4f}] | "
                     f"{anchor if anchor is not None else ''} |")
    c = out["ranking_cost"]
    lines += ["", f"Full ranking (score, mask training items, top-20, all users): {c['rank_seconds']:.3f} s, "
              f"{c['rank_pairs_per_second']:.3g} users x items per second."]
    (RESULTS / "metammf_anchor.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
