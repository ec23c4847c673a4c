"""Run folder of ``polymodal run medgrad-eclip``: data, cached features, experiment, explanations, report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data.schema import Record
from polymodal.data.sources.derm7pt import load_derm7pt
from polymodal.data.sources.ph2 import load_ph2
from polymodal.data.splits import SkipReport
from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.image import FrozenImageEncoder, ImageTransform, open_image
from polymodal.encoders.text import SentenceTextEncoder
from polymodal.evaluation import format_cell
from polymodal.explain import ImageTextScorer, gradcam_backend, mask_mass_share
from polymodal.explain.evaluate import compute_maps, evaluate_maps
from polymodal.explain.gallery import draw_gallery
from polymodal.recipes.derm_concepts import CRITERIA, CRITERION_NAMES
from polymodal.recipes.medgrad_eclip import PUBLISHED, MedGradEclipConfig, write_run
from polymodal.recipes.medgrad_pipeline import Features, compute_features, merge_skips, run_experiment, run_ph2_cv
from polymodal.training.image_text import FitOptions

KINDS = {"lit-zeroshot": "recipe", "lit-trained": "recipe", "concept-bottleneck": "recipe",
         "linear-probe": "baseline", "prior": "trivial"}
PH2_CRITERIA = [k for k, c in enumerate(CRITERIA) if c.ph2 is not None]


def _environment() -> dict[str, Any]:
    from polymodal.experiment import environment

    return environment()


def run_medgrad(cfg: MedGradEclipConfig, *, data_root: Path, cache_root: Path, out_dir: Path) -> dict[str, Any]:
    """Everything ``polymodal run medgrad-eclip`` does; returns the metrics dict it writes."""
    saved_threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        return _run(cfg, data_root, cache_root, out_dir)
    finally:
        torch.set_num_threads(saved_threads)


def prepare(cfg: MedGradEclipConfig, data_root: Path, cache_root: Path) -> dict[str, Any]:
    """Load the data and compute (or read) every image and text feature through the cache."""
    timing: dict[str, float] = {}
    start = time.perf_counter()
    splits = {kind: load_derm7pt(data_root, kind, on_bad_image=cfg.on_bad_image) for kind in cfg.splits}
    ph2, ph2_skips = load_ph2(data_root, on_bad_image=cfg.on_bad_image) if cfg.external_ph2 else ([], SkipReport())
    timing["load_seconds"] = time.perf_counter() - start
    cache = EmbeddingCache(cache_root / "embeddings")
    image_encoder = FrozenImageEncoder(cfg.image_backbone, ImageTransform(size=cfg.image_size, resize=cfg.image_resize))
    records = [r for s in splits.values() for _, part in s.items() for r in part] + list(ph2)
    t = time.perf_counter()
    feats = compute_features(records, image_encoder, SentenceTextEncoder(cfg.text_model), cache)
    timing["feature_seconds"] = time.perf_counter() - t
    return {"splits": splits, "ph2": list(ph2), "ph2_skips": ph2_skips, "cache": cache,
            "image_encoder": image_encoder, "features": feats, "timing": timing}


def _run(cfg: MedGradEclipConfig, data_root: Path, cache_root: Path, out_dir: Path) -> dict[str, Any]:
    start = time.perf_counter()
    prepared = prepare(cfg, data_root, cache_root)
    splits, ph2, feats = prepared["splits"], prepared["ph2"], prepared["features"]
    cache, image_encoder, timing = prepared["cache"], prepared["image_encoder"], prepared["timing"]

    options = FitOptions(dim=cfg.dim, hidden=cfg.hidden, dropout=cfg.dropout, lr=cfg.train.lr,
                         weight_decay=cfg.train.weight_decay, batch_size=cfg.train.batch_size,
                         max_epochs=cfg.train.max_epochs, patience=cfg.train.patience,
                         concept_weight=cfg.concept_weight)
    t = time.perf_counter()
    results, models = run_experiment(splits, list(ph2), feats, options, cfg.protocol.seeds, cfg.diagnosis_weight,
                                     cfg.protocol.n_boot, cfg.protocol.threshold_rule)
    timing["train_eval_seconds"] = time.perf_counter() - t
    if ph2 and cfg.ph2_cv_folds > 1:
        t = time.perf_counter()
        results["ph2_cross_validation"] = run_ph2_cv(ph2, feats, options, min(cfg.ph2_cv_seeds, cfg.protocol.seeds),
                                                     cfg.diagnosis_weight, cfg.ph2_cv_folds, cfg.protocol.n_boot)
        timing["ph2_cv_seconds"] = time.perf_counter() - t

    explanations: dict[str, Any] = {}
    if cfg.explain_images > 0:
        t = time.perf_counter()
        first = cfg.splits[0]
        explanations = explain_run(cfg, models[first][0], feats, splits[first].test, list(ph2), image_encoder,
                                   out_dir)
        explanations["model"] = f"lit-zeroshot, {first} split, seed 0"
        timing["explain_seconds"] = time.perf_counter() - t
    timing["total_seconds"] = time.perf_counter() - start

    headline = results[cfg.splits[0]]["derm7pt_test"]["models"]
    metrics: dict[str, Any] = {
        "recipe": "medgrad-eclip",
        "primary_metric": "roc_auc",
        "models": {m: {**r, "kind": KINDS.get(m, "recipe")} for m, r in headline.items()},
        "headline": f"Derm7pt+ {cfg.splits[0]} split, test",
        "splits": results,
        "explanations": explanations,
        "published": [p.__dict__ for p in PUBLISHED],
        "skips": merge_skips(*(s.skips for s in splits.values()), prepared["ph2_skips"]).to_dict(),
        "cache": cache.stats.as_dict(),
        "timing": timing,
        "environment": _environment(),
    }
    write_run(out_dir, cfg, metrics, render_report(metrics))
    return metrics


def _load(records: list[Record], transform: ImageTransform) -> tuple[torch.Tensor, np.ndarray, np.ndarray | None]:
    """Normalised pixels (N, 3, S, S), RGB uint8 (N, S, S, 3) and masks (N, S, S) when records have them."""
    pil = [open_image(r.inputs["image"]) for r in records]
    x = torch.stack([transform(p) for p in pil])
    rgb = np.stack([np.asarray(transform.geometry(p)) for p in pil])
    masks = None
    if records and "mask" in records[0].inputs:
        masks = np.stack([transform.mask(open_image(r.inputs["mask"], allow_grayscale=True)) for r in records])
    return x, rgb, masks


def _mean(values: np.ndarray) -> float:
    """Mean over defined values (an all-zero map has no mass share); NaN when none is defined."""
    known = values[~np.isnan(values)]
    return float(known.mean()) if known.size else float("nan")


def _spread(records: list[Record], n: int) -> list[Record]:
    """``n`` records evenly spaced in id order (deterministic, no look at scores)."""
    ordered = sorted(records, key=lambda r: r.id)
    idx = np.linspace(0, len(ordered) - 1, min(n, len(ordered))).round().astype(int)
    return [ordered[i] for i in idx]


def explain_run(cfg: MedGradEclipConfig, projector: Any, feats: Features, derm_test: list[Record],
                ph2: list[Record], image_encoder: FrozenImageEncoder, out_dir: Path) -> dict[str, Any]:
    """Explain the melanoma description (text 0) and each criterion text (1..K) on PH2 and Derm7pt test images."""
    texts = np.concatenate([feats.prompts.diagnosis[:1], feats.prompts.positive])  # (1 + K, Dt)
    scorer = ImageTextScorer(image_encoder.backbone, projector, torch.as_tensor(texts))
    transform = image_encoder.transform
    out: dict[str, Any] = {"explained_text": "melanoma description", "steps": cfg.explain_steps,
                           "block": cfg.explain_block, "gradcam_backend": gradcam_backend()}
    for name, records in (("ph2", ph2), ("derm7pt_test", derm_test)):
        if not records:
            continue
        chosen = _spread(records, cfg.explain_images)
        x, rgb, masks = _load(chosen, transform)
        maps = compute_maps(scorer, x, target=0)
        out[name] = {"n": len(chosen), "ids": [r.id for r in chosen],
                     "methods": evaluate_maps(scorer, x, maps, 0, masks, steps=cfg.explain_steps,
                                              block=cfg.explain_block)}
        if masks is not None:
            per_criterion: dict[str, Any] = {}
            crit_maps = {}
            for k in PH2_CRITERIA:
                crit_maps[CRITERION_NAMES[k]] = compute_maps(scorer, x, target=k + 1, methods=("gradcam", "medgrad"))
                per_criterion[CRITERION_NAMES[k]] = {
                    m: _mean(mask_mass_share(crit_maps[CRITERION_NAMES[k]][m], masks)) for m in ("gradcam", "medgrad")}
            out[name]["criterion_mask_mass"] = per_criterion
            g = _gallery_rows(chosen, cfg.gallery_images)
            titles = [f"{chosen[i].id} ({chosen[i].meta.get('diagnosis', '')})" for i in g]
            draw_gallery(rgb[g], {m: maps[m][g] for m in ("gradient", "gradcam", "eclip", "medgrad")},
                         out_dir / "gallery_methods.png", masks=masks[g], row_titles=titles)
            draw_gallery(rgb[g], {c.replace("_", " "): crit_maps[c]["medgrad"][g] for c in crit_maps},
                         out_dir / "gallery_criteria.png", masks=masks[g], row_titles=titles)
            out["gallery"] = ["gallery_methods.png", "gallery_criteria.png"]
    return out


def _gallery_rows(records: list[Record], n: int) -> list[int]:
    """Half melanomas, half others, in order of appearance."""
    mel = [i for i, r in enumerate(records) if r.target == 1.0]
    other = [i for i, r in enumerate(records) if r.target != 1.0]
    chosen = mel[: n // 2]
    return sorted(chosen + other[: n - len(chosen)])


# ----------------------------------------------------------------------------- report

TABLE_METRICS = ("roc_auc", "pr_auc", "balanced_accuracy", "f1")


def _model_table(models: dict[str, Any]) -> str:
    lines = ["| model | seeds | " + " | ".join(TABLE_METRICS) + " |", "|---|---|" + "---|" * len(TABLE_METRICS)]
    for name, result in models.items():
        test = result["splits"]["test"]
        cells = " | ".join(format_cell(test[m]) for m in TABLE_METRICS)
        lines.append(f"| {name} | {result['seeds']} | {cells} |")
    return "\n".join(lines)


def _concept_table(concepts: dict[str, Any]) -> str:
    names = [n for n in CRITERION_NAMES if any(n in c for c in concepts.values())]
    lines = ["| model | " + " | ".join(n.replace("_", " ") for n in names) + " |", "|---|" + "---|" * len(names)]
    for model, per in concepts.items():
        cells = [format_cell(per[n]) if n in per else "" for n in names]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _explain_table(section: dict[str, Any]) -> str:
    cols = [c for c in ("mask_mass", "pointing_game", "deletion_auc", "insertion_auc")
            if any(c in v for v in section["methods"].values() if isinstance(v, dict) and "deletion_auc" in v)]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for method, row in section["methods"].items():
        if not isinstance(row, dict) or "deletion_auc" not in row:
            continue
        lines.append(f"| {method} | " + " | ".join(format_cell(row[c]) for c in cols) + " |")
    area = section["methods"].get("mask_area_fraction")
    if area:
        lines.append(f"\nMask area fraction (a uniform map's mask mass): {area['mean']:.3f}.")
    return "\n".join(lines)


def render_report(metrics: dict[str, Any]) -> str:
    """The run's report.md."""
    out = ["# medgrad-eclip: MedGrad E-CLIP on Derm7pt+ and PH2", "",
           "Melanoma vs rest. Cells: mean ± std over seeds [95% bootstrap CI of the seed mean]. Selection, early "
           "stopping and thresholds use the Derm7pt validation split only; PH2 is scored by the same models "
           "(threshold from Derm7pt validation). `lit-zeroshot` never sees a diagnosis label: it is trained on "
           "criteria captions only and classifies by matching the melanoma and benign descriptions.", ""]
    for kind, res in metrics["splits"].items():
        if kind == "ph2_cross_validation":
            continue
        sizes = res["sizes"]
        out += [f"## Derm7pt+ {kind} split (train/valid/test {sizes['train']}/{sizes['valid']}/{sizes['test']})", "",
                "### Derm7pt test", "", _model_table(res["derm7pt_test"]["models"]), "",
                "Per-criterion ROC-AUC (Derm7pt test):", "", _concept_table(res["derm7pt_test"]["concept_auc"]), ""]
        if "ph2_external" in res:
            out += ["### PH2 as an external test set (200 images, models trained on this split)", "",
                    _model_table(res["ph2_external"]["models"]), "",
                    "Per-criterion ROC-AUC (PH2):", "", _concept_table(res["ph2_external"]["concept_auc"]), ""]
    cv = metrics["splits"].get("ph2_cross_validation")
    if cv:
        out += [f"## PH2 alone, {cv['folds']}-fold cross-validation ({cv['n']} images)", "",
                "ROC-AUC and PR-AUC of the pooled out-of-fold scores per seed (threshold-free); in each fold 20% "
                "of the training part is the validation split.", "", "| model | seeds | roc_auc | pr_auc |",
                "|---|---|---|---|"]
        out += [f"| {m} | {r['seeds']} | {format_cell(r['splits']['test']['roc_auc'])} | "
                f"{format_cell(r['splits']['test']['pr_auc'])} |" for m, r in cv["models"].items()]
        out += ["", "Per-criterion ROC-AUC (out-of-fold):", "", _concept_table(cv["concept_auc"]), ""]
    ex = metrics.get("explanations") or {}
    if ex:
        out += ["## Explanations", "",
                f"Model: {ex.get('model')}; explained text: the {ex['explained_text']}. Mask mass: share of the map "
                "inside the expert lesion mask; pointing game: the map's maximum inside the mask; deletion (lower is "
                f"better) and insertion (higher is better) AUCs of the image-text similarity, {ex['steps']} steps of "
                f"{ex['block']}x{ex['block']} px blocks replaced by the mean colour. `random` is uniform noise. "
                f"Grad-CAM implementation: {ex.get('gradcam_backend', 'not recorded')}.", ""]
        for name in ("ph2", "derm7pt_test"):
            if name in ex:
                out += [f"### {name} ({ex[name]['n']} images)", "", _explain_table(ex[name]), ""]
                crit = ex[name].get("criterion_mask_mass")
                if crit:
                    out += ["Mask mass per criterion text (mean over the same images):", "",
                            "| criterion | gradcam | medgrad |", "|---|---|---|"]
                    out += [f"| {c.replace('_', ' ')} | {v['gradcam']:.3f} | {v['medgrad']:.3f} |"
                            for c, v in crit.items()]
                    out.append("")
        for png in ex.get("gallery", []):
            out += [f"![{png}]({png})", ""]
    out += ["## Reference numbers", "", "| model | metric | value | source | data |", "|---|---|---|---|---|"]
    out += [f"| {p['model']} | {p['metric']} | {p['value']:.3f} | {p['source']} | {p['dataset_version']} |"
            for p in metrics["published"]]
    out += ["", "## Skipped inputs", "", str(metrics["skips"] or "none"), "", "## Timing (s)", ""]
    out += [f"- {k}: {v:.1f}" for k, v in metrics["timing"].items()]
    out += ["", "## Environment", "", *[f"- {k}: {v}" for k, v in metrics["environment"].items()], ""]
    return "\n".join(out)
