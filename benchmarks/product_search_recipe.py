"""Product search on the fashion catalogue: towers vs baselines, cross-modal retrieval, exclusive matches.

Runs :func:`polymodal.search.pipeline.run_product_search_folder` (frozen MiniLM + EfficientNet-Lite0
features through the embedding cache; 3 seeds per tower), then writes the headline tables.

    flock /tmp/pm-cpu.lock python benchmarks/product_search_recipe.py --data-dir /work/shared/data \
        --run runs/product-search --out benchmarks/results/product_search_recipe
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from product_search_scale import machine


def fmt(stats: dict) -> str:
    return f"{stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--run", type=Path, default=Path("runs/product-search"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/product_search_recipe"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--max-epochs", type=int, default=20)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()

    import torch

    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.io import write_json, write_text
    from polymodal.search.pipeline import run_product_search_folder
    from polymodal.search.towers import TrainConfig

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg = TrainConfig(max_epochs=args.max_epochs, patience=3)
    metrics = run_product_search_folder(args.data_dir, args.run, EmbeddingCache.default(),
                                        seeds=[int(s) for s in args.seeds.split(",")], cfg=cfg, limit=args.limit)
    wall = time.perf_counter() - t0
    import json

    info = json.loads((args.run / "info.json").read_text())
    selected = json.loads((args.run / "search" / "selected.json").read_text())
    report = {"benchmark": "product_search_recipe", "command": " ".join(sys.argv), "machine": machine(),
              "wall_s": round(wall, 1), "train_config": cfg.__dict__, "info": info, "selected": selected,
              "models": metrics["models"], "subsets": metrics.get("subsets"),
              "comparisons": metrics.get("comparisons"), "by_query_kind": metrics.get("by_query_kind")}
    ex = pd.read_csv(args.run / "exclusive_matches.csv")
    report["exclusive_matches"] = {
        "pairs": len(ex), "queries_with_any": int(ex["id"].nunique()) if len(ex) else 0,
        "fully_relevant_share": float(ex["relevant"].mean()) if len(ex) and ex["relevant"].notna().any() else None,
        "fully_relevant_by_kind": ex.groupby("query_kind")["relevant"].mean().to_dict() if len(ex) else {},
    }
    write_json(args.out.with_suffix(".json"), report)

    lines = ["# Product search (fashion catalogue): towers vs baselines", "",
             f"Command: `{report['command']}`  ", f"Machine: {report['machine']}  ",
             f"Wall time: {report['wall_s']} s. Products: {info['n_products']}; queries: {info['n_queries']}.", "",
             "Test split, mean over seeds with 95% bootstrap CI over queries (queries of both kinds):", "",
             "| model | kind | seeds | recall@10 | ndcg@10 | mrr | valid ndcg@10 |", "|---|---|---|---|---|---|---|"]
    for name, m in metrics["models"].items():
        t = m["splits"]["test"]
        v = m["splits"].get("valid", {}).get("ndcg@10", {}).get("mean")
        lines.append(f"| {name} | {m['kind']} | {m['seeds']} | {fmt(t['recall@10'])} | {fmt(t['ndcg@10'])} "
                     f"| {fmt(t['mrr'])} | {'' if v is None else f'{v:.3f}'} |")
    lines += ["", "By query kind (test, mean over seeds and queries):", "",
              "| kind | model | recall@10 | ndcg@10 | mrr |", "|---|---|---|---|---|"]
    for kind, models in (metrics.get("by_query_kind") or {}).items():
        for name, vals in models.items():
            lines.append(f"| {kind} | {name} | {vals['recall@10']:.3f} | {vals['ndcg@10']:.3f} | {vals['mrr']:.3f} |")
    lines += ["", "Paired differences on test (A - B, bootstrap over queries, Holm-adjusted p):", "",
              "| comparison | metric | diff | 95% CI | p (Holm) |", "|---|---|---|---|---|"]
    for c in metrics.get("comparisons") or []:
        lines.append(f"| {c['model']} | {c['metric']} | {c['mean']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] "
                     f"| {c['p_adjusted']:.3g} |")
    for subset in ("name-to-photo", "photo-to-name"):
        models = (metrics.get("subsets") or {}).get(subset) or {}
        if not models:
            continue
        lines += ["", f"Cross-modal {subset} (test products, the product's own photo/name is the one match):", "",
                  "| model | recall@10 | mrr |", "|---|---|---|"]
        for name, m in models.items():
            t = m["splits"]["test"]
            lines.append(f"| {name} | {fmt(t['recall@10'])} | {fmt(t['mrr'])} |")
    em = report["exclusive_matches"]
    lines += ["", f"Exclusive matches (mm-4tower top-10 minus text-tower top-10, seed 0): {em['pairs']} products over "
              f"{em['queries_with_any']} queries; share fully relevant: {em['fully_relevant_share']}; by kind: "
              f"{em['fully_relevant_by_kind']}.", "",
              f"Selected tower for the index (validation ndcg@10): {selected['tower']} ({selected['valid_ndcg@10']})."]
    write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
