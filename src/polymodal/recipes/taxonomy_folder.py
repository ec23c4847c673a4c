"""The taxonomy-classifier run folder: prepare, train, evaluate, report, and save the recipe model.

Layout of ``out_dir``::

    config.json  split.csv (id, split)  taxonomy.json  predictions.csv.gz  metrics.json
    metrics.csv  comparisons.csv  report.md  model/ (network weights, attribute encoder, class words)
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.data.paths import resolve_cache_dir, resolve_data_dir
from polymodal.evaluation.hierarchical_protocol import evaluate_hierarchical
from polymodal.io import atomic_path, write_json, write_text
from polymodal.recipes.taxonomy_features import AttributeEncoder, TaxonomyInputs, prepare_inputs
from polymodal.recipes.taxonomy_run import SETTINGS, run_taxonomy

RECIPE_MODEL = "transitional/all"
EXTRA_PAIRS = (("transitional/all-masked-name", "transitional/masked-name"),
               ("transitional/all", "transitional/name"),
               ("transitional/all", "transitional/image"))
HEADLINE = ("accuracy_masterCategory", "accuracy_subCategory", "accuracy_articleType", "macro_f1_articleType",
            "exact_match", "consistency", "hierarchical_f1")


def _cell(row: pd.Series) -> str:
    if pd.isna(row["ci_low"]):
        return f"{row['mean']:.4f}"
    return f"{row['mean']:.4f} ({row['ci_low']:.4f}-{row['ci_high']:.4f})"


def metrics_table(metrics: pd.DataFrame, split: str = "test", subset: str = "all",
                  columns: tuple[str, ...] = HEADLINE) -> str:
    """Markdown table: one row per model, seed mean (95% bootstrap CI) per metric."""
    sub = metrics[(metrics.split == split) & (metrics.subset == subset)]
    if sub.empty:
        return "(no rows)"
    head = "| model | kind | n | " + " | ".join(columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 3)]
    order = {"recipe": 0, "ablation": 1, "baseline": 2, "trivial": 3}
    models = sorted(sub.model.unique(), key=lambda m: (order.get(sub[sub.model == m].kind.iloc[0], 9), m))
    for m in models:
        rows = sub[sub.model == m].set_index("metric")
        cells = [_cell(rows.loc[c]) if c in rows.index else "" for c in columns]
        lines.append(f"| {m} | {rows.kind.iloc[0]} | {int(rows.n.iloc[0])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparisons_table(comp: pd.DataFrame, subset: str = "all") -> str:
    if comp.empty:
        return "(none)"
    sub = comp[comp.subset == subset]
    lines = ["| model | versus | metric | diff | 95% CI | p (Holm) | verdict | n |", "|" + "---|" * 8]
    for _, r in sub.iterrows():
        lines.append(f"| {r.model} | {r.versus} | {r.metric} | {r['diff']:+.4f} | {r.ci_low:+.4f} to {r.ci_high:+.4f} "
                     f"| {r.p_value:.3g} ({r.p_holm:.3g}) | {r.verdict} | {r.n} |")
    return "\n".join(lines)


def render_report(cfg: Any, inputs: TaxonomyInputs, metrics: pd.DataFrame, comp: pd.DataFrame,
                  info: dict[str, Any]) -> str:
    from polymodal.recipes.taxonomy_classifier import DEVIATIONS, PUBLISHED

    p = inputs.products
    counts = p.split.value_counts().to_dict()
    photos = {s: int(inputs.blocks["image"][1][inputs.rows(s)].sum()) for s in ("train", "valid", "test")}
    multi = inputs.taxonomy.multi_parent()
    sections = [
        "# taxonomy-classifier run",
        f"Products: {len(p)} (train {counts.get('train', 0)}, valid {counts.get('valid', 0)}, test "
        f"{counts.get('test', 0)}); with a usable photo: train {photos['train']}, valid {photos['valid']}, test "
        f"{photos['test']}. Seeds: {cfg.protocol.seeds}; bootstrap resamples: {cfg.protocol.n_boot}.",
        "Taxonomy (training split): " + ", ".join(f"{lv} {k}" for lv, k in zip(inputs.taxonomy.levels,
                                                                             inputs.taxonomy.sizes, strict=True))
        + " classes; labels with several parents: "
        + "; ".join(f"{lv}: {len(v)} ({', '.join(list(v)[:6])}{' ...' if len(v) > 6 else ''})"
                    for lv, v in multi.items() if v) + ".",
        f"Rare classes (< {cfg.rare_min_count} training examples) are kept; the 'rare' subset holds test products "
        "whose articleType is rare or unseen in training.",
        "## Test, all products\n\n" + metrics_table(metrics),
        "## Test, products with a photo\n\n" + metrics_table(metrics, subset="with_photo"),
        "## Test, products without a photo\n\n" + metrics_table(metrics, subset="without_photo"),
        "## Test, products of rare article types\n\n" + metrics_table(metrics, subset="rare"),
        "## Validation, all products\n\n" + metrics_table(metrics, split="valid"),
        "## Paired comparisons (test, all shared products)\n\n" + comparisons_table(comp),
        "## Paired comparisons (test, products with a photo)\n\n" + comparisons_table(comp, "with_photo"),
        "## Published / reference numbers (not the same data or protocol)\n\n"
        + "\n".join(f"- {r.model}: {r.metric} = {r.value} ({r.source}; {r.dataset_version})" for r in PUBLISHED),
        "## Deviations from the paper\n\n" + "\n".join(f"- {d}" for d in DEVIATIONS),
        "## Skipped and repaired source rows\n\n" + "\n".join(
            f"- {k}: {v['count']}" for k, v in inputs.data.skips.to_dict().items()),
        "## Baseline selection (validation accuracy per L2 penalty alpha)\n\n```\n"
        + json.dumps(info.get("baselines", {}), indent=1)
        + "\n```",
        "## Time\n\n" + "\n".join(f"- {k}: {v}" for k, v in {**inputs.timing, **info.get("seconds", {})}.items()),
    ]
    return "\n\n".join(sections) + "\n"


def save_model(out_dir: Path, inputs: TaxonomyInputs, model: torch.nn.Module, cfg: Any) -> None:
    """The recipe network (seed 0) and what featurises new products, for ``polymodal predict``."""
    folder = out_dir / "model"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "network.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    encoder = AttributeEncoder().fit(inputs.products[inputs.products.split == "train"])
    with atomic_path(folder / "attributes.pkl") as tmp, open(tmp, "wb") as fh:
        pickle.dump(encoder, fh)
    in_dims = {b: int(inputs.blocks[b][0].shape[1]) for b in SETTINGS[RECIPE_MODEL].blocks}
    write_json(folder / "model.json", {"setting": RECIPE_MODEL, "in_dims": in_dims,
                                       "head": SETTINGS[RECIPE_MODEL].head, "fusion": SETTINGS[RECIPE_MODEL].fusion,
                                       "dim": cfg.dim, "hidden": cfg.hidden, "dropout": cfg.dropout})


def run_to_folder(cfg: Any, *, data_dir: str | Path | None, out_dir: Path, cache_dir: str | Path | None = None,
                  image_encoder: Any = None, text_encoder: Any = None) -> dict[str, Any]:
    """Everything ``polymodal run taxonomy-classifier`` does; returns the metrics dict it writes.

    ``image_encoder`` / ``text_encoder`` replace the configured frozen encoders (tests use tiny ones).
    """
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", {"recipe": "taxonomy-classifier", **cfg.model_dump()})
    inputs = prepare_inputs(cfg, resolve_data_dir(data_dir), resolve_cache_dir(cache_dir),
                            image_encoder=image_encoder, text_encoder=text_encoder)
    inputs.products[["id", "split"]].to_csv(out_dir / "split.csv", index=False)
    write_json(out_dir / "taxonomy.json", inputs.taxonomy.to_dict())
    predictions, info = run_taxonomy(inputs, cfg, keep=(RECIPE_MODEL,))
    t = time.perf_counter()
    with atomic_path(out_dir / "predictions.csv.gz") as tmp:
        predictions.to_csv(tmp, index=False, compression="gzip")
    metrics, comp = evaluate_hierarchical(predictions, inputs.taxonomy, n_boot=cfg.protocol.n_boot,
                                          reference=RECIPE_MODEL if RECIPE_MODEL in cfg.settings else None,
                                          pairs=[p for p in EXTRA_PAIRS if set(p) <= set(cfg.settings)])
    info["seconds"]["evaluate"] = round(time.perf_counter() - t, 1)
    metrics.to_csv(out_dir / "metrics.csv", index=False)
    comp.to_csv(out_dir / "comparisons.csv", index=False)
    models = info.pop("models", {})
    if models.get(RECIPE_MODEL):
        save_model(out_dir, inputs, models[RECIPE_MODEL][0], cfg)
    info["seconds"]["total"] = round(time.perf_counter() - start, 1)
    result = {"recipe": "taxonomy-classifier", "rows": metrics.replace({np.nan: None}).to_dict("records"),
              "comparisons": comp.replace({np.nan: None}).to_dict("records"), "timing": inputs.timing,
              "seconds": info["seconds"], "baselines": info["baselines"], "fits": info["fits"],
              "skips": inputs.data.skips.to_dict(), "multi_parent": inputs.taxonomy.multi_parent()}
    write_json(out_dir / "metrics.json", result)
    write_text(out_dir / "report.md", render_report(cfg, inputs, metrics, comp, info))
    return result
