"""The protocol for hierarchical predictions: seed means, bootstrap CIs over products, paired differences.

Input: the long predictions table (one row per model, seed, split, id, level; see
:mod:`polymodal.recipes.taxonomy_run`). Each (model, split, subset) gets every metric of
:mod:`polymodal.evaluation.hierarchical` per seed (mean, std over seeds) and a percentile bootstrap CI
of the seed mean: each resample draws product ids once (a multinomial weight per product) and
applies them to every seed, so the interval describes test-set sampling and the std describes seeds.
The weighted metrics re-express the scikit-learn ones on weighted counts (a resample with a product
drawn k times equals weight k); ``tests/test_hierarchical_protocol.py`` checks them against
scikit-learn on an explicit resample. Paired comparisons use the same resamples for both models on
the products they share; p-values are two-sided bootstrap shares and Holm-adjusted per metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from polymodal.data.taxonomy import Taxonomy

SUBSETS = ("all", "with_photo", "without_photo", "rare")
COMPARED_METRICS = ("exact_match", "accuracy_articleType", "macro_f1_articleType", "consistency")


@dataclass
class _Block:
    """One (model, split) on a fixed id order: codes (S, n, L) for seeds, truth (n, L), extras."""

    ids: np.ndarray
    truth: np.ndarray  # (n, L) int codes
    pred: np.ndarray  # (S, n, L) int codes
    consistent: np.ndarray  # (S, n) bool
    h_counts: np.ndarray  # (S, n, 3): |P & T|, |P|, |T| of the ancestor closures
    has_image: np.ndarray  # (n,) bool
    rare: np.ndarray  # (n,) bool: true articleType rare in training


def _weighted_macro_f1(t: np.ndarray, p: np.ndarray, w: np.ndarray, k: int) -> float:
    eq = t == p
    tp = np.bincount(t[eq], weights=w[eq], minlength=k)
    n_true = np.bincount(t, weights=w, minlength=k)
    n_pred = np.bincount(p, weights=w, minlength=k)
    present = (n_true + n_pred) > 0
    f1 = np.divide(2 * tp, n_true + n_pred, out=np.zeros(k), where=present)
    return float(f1[present].mean()) if present.any() else float("nan")


def weighted_metrics(truth: np.ndarray, pred: np.ndarray, consistent: np.ndarray, h_counts: np.ndarray,
                     w: np.ndarray, levels: Sequence[str], n_classes: Sequence[int]) -> dict[str, float]:
    """Every metric of one seed under per-product weights ``w`` (n,); labels as int codes (n, L)."""
    total = w.sum()
    out: dict[str, float] = {}
    eq = truth == pred  # (n, L)
    for i, level in enumerate(levels):
        out[f"accuracy_{level}"] = float((w * eq[:, i]).sum() / total)
        out[f"macro_f1_{level}"] = _weighted_macro_f1(truth[:, i], pred[:, i], w, n_classes[i])
    out["exact_match"] = float((w * eq.all(1)).sum() / total)
    out["consistency"] = float((w * consistent).sum() / total)
    inter, n_p, n_t = (w[:, None] * h_counts).sum(0)
    hp, hr = inter / n_p, inter / n_t
    out["hierarchical_f1"] = float(2 * hp * hr / (hp + hr)) if hp + hr else 0.0
    return out


def _closure_counts(truth: np.ndarray, pred: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    cache: dict[tuple[int, str], frozenset] = {}

    def closure(path: Sequence[str]) -> set:
        nodes: set = set()
        for i, label in enumerate(path):
            key = (i, str(label))
            if key not in cache:
                cache[key] = frozenset({key} | taxonomy.ancestors(i, str(label)))
            nodes |= cache[key]
        return nodes

    out = np.zeros((len(truth), 3))
    for r, (t, p) in enumerate(zip(truth, pred, strict=True)):
        st, sp = closure(t), closure(p)
        out[r] = (len(st & sp), len(sp), len(st))
    return out


def _blocks(pred: pd.DataFrame, taxonomy: Taxonomy) -> tuple[dict[tuple[str, str], _Block], dict[str, Any]]:
    levels = list(taxonomy.levels)
    vocab = {lvl: pd.Index(sorted(set(pred.loc[pred.level == lvl, "y_true"].astype(str))
                                  | set(pred.loc[pred.level == lvl, "y_pred"].astype(str)))) for lvl in levels}
    wide_t = pred.pivot_table(index=["model", "split", "seed", "id"], columns="level", values="y_true", aggfunc="first")
    wide_p = pred.pivot_table(index=["model", "split", "seed", "id"], columns="level", values="y_pred", aggfunc="first")
    flags = pred[pred.level == "articleType"].set_index(["model", "split", "seed", "id"])[["has_image", "rare"]]
    blocks: dict[tuple[str, str], _Block] = {}
    for (model, split), frame_t in wide_t.groupby(level=["model", "split"]):
        frame_p = wide_p.loc[frame_t.index]
        seeds = sorted(frame_t.index.get_level_values("seed").unique())
        first = frame_t.xs(seeds[0], level="seed").sort_index()
        ids = first.index.get_level_values("id").to_numpy()
        truth_lab = first[levels].to_numpy(dtype=object)
        truth = np.stack([vocab[lv].get_indexer(truth_lab[:, i].astype(str)) for i, lv in enumerate(levels)], 1)
        preds, cons, hc = [], [], []
        for s in seeds:
            ps = frame_p.xs(s, level="seed").sort_index()[levels].to_numpy(dtype=object)
            preds.append(np.stack([vocab[lv].get_indexer(ps[:, i].astype(str)) for i, lv in enumerate(levels)], 1))
            cons.append(taxonomy.consistent(ps))
            hc.append(_closure_counts(truth_lab, ps, taxonomy))
        fl = flags.xs((model, split, seeds[0]), level=["model", "split", "seed"]).sort_index()
        blocks[(model, split)] = _Block(ids, truth, np.stack(preds), np.stack(cons), np.stack(hc),
                                        fl["has_image"].to_numpy(dtype=bool), fl["rare"].to_numpy(dtype=bool))
    return blocks, {"levels": levels, "n_classes": [len(vocab[lv]) for lv in levels]}


def _subset_mask(block: _Block, subset: str) -> np.ndarray:
    if subset == "all":
        return np.ones(len(block.ids), dtype=bool)
    if subset == "with_photo":
        return block.has_image
    if subset == "without_photo":
        return ~block.has_image
    if subset == "rare":
        return block.rare
    raise ValueError(f"unknown subset {subset!r}")


def _seed_mean(block: _Block, rows: np.ndarray, w: np.ndarray, meta: dict[str, Any]) -> list[dict[str, float]]:
    return [weighted_metrics(block.truth[rows], block.pred[s][rows], block.consistent[s][rows],
                             block.h_counts[s][rows], w, meta["levels"], meta["n_classes"])
            for s in range(block.pred.shape[0])]


def _mean_dicts(dicts: Sequence[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}


def evaluate_hierarchical(predictions: pd.DataFrame, taxonomy: Taxonomy, *, n_boot: int = 200, seed: int = 0,
                          reference: str | None = None, pairs: Sequence[tuple[str, str]] = (),
                          alpha: float = 0.05, subsets: Sequence[str] = SUBSETS,
                          compare: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metric rows and paired-comparison rows.

    ``subsets``: which of :data:`SUBSETS` to evaluate; ``compare=False`` skips the comparisons.

    Returns:
        metrics: columns model, kind, selection, subset, condition, split, metric, mean, std, ci_low, ci_high,
            per_seed, n (products).
        comparisons (test split): model, versus, subset, metric, diff (model - versus, seed means), ci_low,
            ci_high, p_value, p_holm, verdict, n (shared products).
    """
    blocks, meta = _blocks(predictions, taxonomy)
    kinds = predictions.groupby("model")["kind"].first().to_dict()
    rng = np.random.default_rng(seed)
    rows_out = []
    for (model, split), block in sorted(blocks.items()):
        for subset in subsets:
            rows = np.flatnonzero(_subset_mask(block, subset))
            if len(rows) == 0:
                continue
            per_seed = _seed_mean(block, rows, np.ones(len(rows)), meta)
            boot_df = None
            if split == "test":  # CIs where the headline numbers are; validation only guides selection
                weights = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=n_boot).astype(float)
                boot_df = pd.DataFrame([_mean_dicts(_seed_mean(block, rows, w, meta)) for w in weights])
            for metric in per_seed[0]:
                vals = [ps[metric] for ps in per_seed]
                lo, hi = (np.nanpercentile(boot_df[metric], [100 * alpha / 2, 100 * (1 - alpha / 2)])
                          if boot_df is not None else (np.nan, np.nan))
                rows_out.append({"model": model, "kind": kinds.get(model, ""), "selection": "valid", "subset": subset,
                                 "condition": "none", "split": split, "metric": metric, "mean": float(np.mean(vals)),
                                 "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                                 "ci_low": float(lo), "ci_high": float(hi), "per_seed": vals, "n": len(rows)})
    metrics = pd.DataFrame(rows_out)
    if not compare:
        return metrics, pd.DataFrame()
    all_pairs = list(pairs)
    if reference is not None:
        all_pairs = [(reference, m) for m in sorted(kinds) if m != reference] + all_pairs
    comparisons = _compare(blocks, meta, all_pairs, n_boot, rng, alpha)
    return metrics, comparisons


def _compare(blocks: dict[tuple[str, str], _Block], meta: dict[str, Any], pairs: Sequence[tuple[str, str]],
             n_boot: int, rng: np.random.Generator, alpha: float) -> pd.DataFrame:
    out = []
    for a, b in pairs:
        if (a, "test") not in blocks or (b, "test") not in blocks:
            continue
        ba, bb = blocks[(a, "test")], blocks[(b, "test")]
        _, ia, ib = np.intersect1d(ba.ids, bb.ids, return_indices=True)
        for subset in ("all", "with_photo"):
            keep = _subset_mask(ba, subset)[ia]
            ra, rb = ia[keep], ib[keep]
            if len(ra) == 0:
                continue
            point_a = _mean_dicts(_seed_mean(ba, ra, np.ones(len(ra)), meta))
            point_b = _mean_dicts(_seed_mean(bb, rb, np.ones(len(rb)), meta))
            weights = rng.multinomial(len(ra), np.full(len(ra), 1 / len(ra)), size=n_boot).astype(float)
            diffs = []
            for w in weights:
                ma, mb = _mean_dicts(_seed_mean(ba, ra, w, meta)), _mean_dicts(_seed_mean(bb, rb, w, meta))
                diffs.append({k: ma[k] - mb[k] for k in COMPARED_METRICS})
            diff_df = pd.DataFrame(diffs)
            for metric in COMPARED_METRICS:
                d = diff_df[metric].to_numpy()
                lo, hi = np.nanpercentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
                p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
                out.append({"model": a, "versus": b, "subset": subset, "metric": metric,
                            "diff": float(point_a[metric] - point_b[metric]), "ci_low": float(lo),
                            "ci_high": float(hi), "p_value": float(p), "n": len(ra)})
    comp = pd.DataFrame(out)
    if comp.empty:
        return comp
    comp["p_holm"] = comp.groupby(["subset", "metric"])["p_value"].transform(
        lambda p: multipletests(p, method="holm")[1])
    comp["verdict"] = np.where(comp.ci_low > 0, "better", np.where(comp.ci_high < 0, "worse", "no difference"))
    return comp
