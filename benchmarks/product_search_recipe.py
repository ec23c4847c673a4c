"""Product search on the fashion catalogue: towers vs baselines, cross-modal retrieval, exclusive matches.

Runs the ``product-search`` recipe through the one runner (frozen MiniLM + EfficientNet-Lite0 features
through the embedding cache; 3 seeds per tower; run folder ``--run``), then writes the headline tables
and the exclusive-match examples (OUT_exclusive.csv, with photo paths).

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
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    from polymodal.data.paths import resolve_cache_dir
    from polymodal.io import write_json, write_text
    from polymodal.recipes import get, product_search
    from polymodal.runs import run_recipe
    from polymodal.search.experiment import exclusive_matches
    from polymodal.search.queries import full_grade, relevance

    recipe = get("product-search")
    cfg = recipe.config_cls(seeds=args.seeds)
    t0 = time.perf_counter()
    metrics = run_recipe(recipe, cfg, out_dir=args.run, data_dir=args.data_dir, progress=False)
    wall = time.perf_counter() - t0
    prep, _ = product_search._prepared(str(args.data_dir.resolve()), str(resolve_cache_dir(None)), cfg.limit,
                                       cfg.query_seed)
    predictions = pd.read_csv(args.run / "predictions.csv", dtype={"id": str, "top10": str})
    by_text = {q.text: q for q in prep.queries["test"]}
    products = prep.products.assign(id=prep.products["id"].astype(str)).set_index("id", drop=False)

    def judge(text: str, pid: str) -> bool | None:
        q = by_text.get(text)
        return None if q is None else bool(relevance(q, products.loc[[pid]])[0] >= full_grade(q))

    ex = exclusive_matches(predictions, relevant=judge)
    ex = ex.merge(products[["id", "name", "image"]].rename(columns={"id": "product"}), on="product", how="left")
    # only the fully relevant exclusive matches (the whole list is ~8k rows, 1 MB)
    ex[ex["relevant"] == True].to_csv(args.out.with_name(args.out.name + "_exclusive.csv"), index=False)  # noqa: E712
    report = {"benchmark": "product_search_recipe", "command": " ".join(sys.argv), "machine": machine(),
              "wall_s": round(wall, 1), "config": cfg.model_dump(mode="json"), "dataset": metrics.get("dataset"),
              "models": metrics["models"], "subsets": metrics.get("subsets"),
              "comparisons": metrics.get("comparisons"), "by_query_kind": metrics.get("by_query_kind"),
              "timing": metrics.get("timing")}
    report["exclusive_matches"] = {
        "pairs": len(ex), "queries_with_any": int(ex["id"].nunique()) if len(ex) else 0,
        "fully_relevant_share": float(ex["relevant"].mean()) if len(ex) else None,
        "fully_relevant_by_kind": ex.groupby("query_kind")["relevant"].mean().to_dict() if len(ex) else {},
    }
    write_json(args.out.with_suffix(".json"), report)
    info = metrics.get("dataset") or {}
    lines = ["# Product search (fashion catalogue): towers vs baselines", "",
             f"Command: `{report['command']}`  ", f"Machine: {report['machine']}  ",
             f"Wall time: {report['wall_s']} s. Products: {info.get('n_products')}; queries: {info.get('n_queries')} "
             f"(by kind: {info.get('n_queries_by_kind')}).", "",
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
              f"{em['fully_relevant_by_kind']}. Examples (fully relevant, found only by mm-4tower):", "",
              "| query | product | name |", "|---|---|---|"]
    good = ex[ex["relevant"] == True].drop_duplicates("id").head(12) if len(ex) else ex  # noqa: E712
    for r in good.itertuples(index=False):
        lines.append(f"| {r.query} | {r.product} | {r.name} |")
    write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
