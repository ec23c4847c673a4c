"""The MedGrad E-CLIP experiment: features once, LiT variants x seeds per Derm7pt split, PH2 external test.

Kept apart from the recipe file so that file stays a short assembly (config, registration). Every
choice uses the Derm7pt validation split only; the Derm7pt test split and PH2 are scored once per
trained model and never influence anything.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from polymodal.baselines import EmbeddingLogisticBaseline, PriorBaseline
from polymodal.data.schema import Record
from polymodal.data.splits import DatasetSplits, SkipReport
from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.image import FrozenImageEncoder, encode_image_files
from polymodal.encoders.text import SentenceTextEncoder
from polymodal.evaluation import BINARY_METRICS, bootstrap_ci, evaluate_binary
from polymodal.recipes.derm_concepts import (
    BENIGN_DESCRIPTION,
    CRITERIA,
    CRITERION_NAMES,
    MELANOMA_DESCRIPTION,
    caption,
    concept_matrix,
    criterion_texts,
)
from polymodal.training.image_text import FitOptions, ImageTextSet, PromptBank, fit_image_text, score_image_text

# C grid of every logistic regression here (probe, concept probe, bottleneck), chosen on validation
# ROC-AUC. The library default (0.01 ... 10) left both Derm7pt splits' probes at C = 0.01, the
# grid's edge, so the grid extends two decades lower (benchmarks/medgrad_probe_preprocessing.md).
PROBE_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _logistic() -> EmbeddingLogisticBaseline:
    return EmbeddingLogisticBaseline(C_grid=PROBE_C_GRID)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


@dataclass
class Features:
    """Frozen features of every image and prompt, computed once through the cache."""

    image: dict[str, np.ndarray]  # record id -> (Di,)
    captions: list[str]
    prompts: PromptBank

    def dataset(self, records: Sequence[Record]) -> ImageTextSet:
        concepts = concept_matrix(records)
        index = {c: i for i, c in enumerate(self.captions)}
        return ImageTextSet(
            image=np.stack([self.image[r.id] for r in records]),  # (N, Di)
            caption_ids=np.array([index[caption(row)] for row in concepts]),
            concepts=concepts,
            melanoma=np.array([r.target for r in records], dtype=np.float32),
        )


def compute_features(records: Sequence[Record], image_encoder: FrozenImageEncoder,
                     text_encoder: SentenceTextEncoder, cache: EmbeddingCache) -> Features:
    """Image features of ``records`` and text features of all captions and prompts (cached)."""
    unique = {r.id: r for r in records}
    recs = list(unique.values())
    vectors = encode_image_files(cache, image_encoder, [r.inputs["image"] for r in recs])  # (N, Di)
    captions = sorted({caption(row) for row in concept_matrix(recs)})
    positive, negative = criterion_texts()
    texts = captions + positive + negative + [MELANOMA_DESCRIPTION, BENIGN_DESCRIPTION]
    emb = cache.encode(text_encoder, texts)  # (T, Dt)
    c, k = len(captions), len(CRITERIA)
    prompts = PromptBank(captions=emb[:c], positive=emb[c : c + k], negative=emb[c + k : c + 2 * k],
                         diagnosis=emb[c + 2 * k :])
    return Features({r.id: v for r, v in zip(recs, vectors, strict=True)}, captions, prompts)


def concept_results(labels: np.ndarray, probs_per_seed: list[np.ndarray], n_boot: int) -> dict[str, Any]:
    """Per-criterion test ROC-AUC: mean, std over seeds, bootstrap CI of the seed mean; NaN criteria skipped."""
    out: dict[str, Any] = {}
    for k, name in enumerate(CRITERION_NAMES):
        known = ~np.isnan(labels[:, k])
        y = labels[known, k]
        if not y.size or y.min() == y.max():
            continue
        seeds = [p[known, k] for p in probs_per_seed]
        aucs = [BINARY_METRICS["roc_auc"](y, s) for s in seeds]
        low, high = bootstrap_ci(BINARY_METRICS["roc_auc"], y, seeds, n_boot=n_boot)
        out[name] = {"mean": float(np.mean(aucs)), "std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
                     "ci_low": low, "ci_high": high, "per_seed": aucs, "n": int(y.size), "positives": int(y.sum())}
    return out


def _concept_probe(train: ImageTextSet, valid: ImageTextSet, targets: list[np.ndarray]) -> list[np.ndarray]:
    """One validation-selected logistic regression per criterion on the image features."""
    outs = [np.full((len(t), len(CRITERIA)), 0.5) for t in targets]
    for k in range(len(CRITERIA)):
        ytr, yva = train.concepts[:, k], valid.concepts[:, k]
        if np.isnan(ytr).any() or ytr.min() == ytr.max() or yva.min() == yva.max():
            continue
        probe = _logistic().fit(train.image, ytr, valid.image, yva)
        for out, x in zip(outs, targets, strict=True):
            out[:, k] = probe.predict_proba(x)[:, 1]
    return outs


def run_split(splits: DatasetSplits, ph2: Sequence[Record], feats: Features, options: FitOptions, seeds: int,
              diagnosis_weight: float, n_boot: int, threshold_rule: str) -> tuple[dict[str, Any], list[Any]]:
    """Train every variant for ``seeds`` seeds on one Derm7pt split; evaluate on its test split and PH2.

    Returns:
        The split's results (``derm7pt_test`` and ``ph2_external`` model tables, concept AUCs,
        training histories) and the seed-0 concept-trained projector (for explanations).
    """
    train, valid, test = (feats.dataset(splits.train), feats.dataset(splits.valid), feats.dataset(splits.test))
    ext = feats.dataset(ph2) if ph2 else None
    targets = {"valid": valid, "test": test, **({"ph2": ext} if ext is not None else {})}
    scores: dict[str, dict[str, list[np.ndarray]]] = {}
    concepts: dict[str, dict[str, list[np.ndarray]]] = {}
    histories: dict[str, list[Any]] = {"lit-zeroshot": [], "lit-trained": []}
    explain_model = None
    for seed in range(seeds):
        zs, hist_zs = fit_image_text(train, valid, feats.prompts, options, seed)
        trained_opts = replace(options, diagnosis_weight=diagnosis_weight, select="melanoma")
        tr, hist_tr = fit_image_text(train, valid, feats.prompts, trained_opts, seed)
        histories["lit-zeroshot"].append(hist_zs)
        histories["lit-trained"].append(hist_tr)
        if seed == 0:
            explain_model = zs
        out_zs = {n: score_image_text(zs, s.image, feats.prompts) for n, s in {"train": train, **targets}.items()}
        out_tr = {n: score_image_text(tr, s.image, feats.prompts) for n, s in targets.items()}
        for n in targets:
            scores.setdefault("lit-zeroshot", {}).setdefault(n, []).append(_sigmoid(out_zs[n]["melanoma_logit"]))
            scores.setdefault("lit-trained", {}).setdefault(n, []).append(_sigmoid(out_tr[n]["melanoma_logit"]))
            concepts.setdefault("lit-zeroshot", {}).setdefault(n, []).append(_sigmoid(out_zs[n]["concept_logits"]))
            concepts.setdefault("lit-trained", {}).setdefault(n, []).append(_sigmoid(out_tr[n]["concept_logits"]))
        # Concept bottleneck: diagnosis from the concept-trained model's criterion scores only.
        cbm = _logistic().fit(out_zs["train"]["concept_logits"], train.melanoma,
                                              out_zs["valid"]["concept_logits"], valid.melanoma)
        for n in targets:
            scores.setdefault("concept-bottleneck", {}).setdefault(n, []).append(
                cbm.predict_proba(out_zs[n]["concept_logits"])[:, 1])
    # Deterministic baselines: one fit, reported as one "seed".
    probe = _logistic().fit(train.image, train.melanoma, valid.image, valid.melanoma)
    prior = PriorBaseline().fit(train.image, train.melanoma)
    for n, s in targets.items():
        scores.setdefault("linear-probe", {})[n] = [probe.predict_proba(s.image)[:, 1]]
        scores.setdefault("prior", {})[n] = [prior.predict_proba(s.image)[:, 1]]
    probe_concepts = _concept_probe(train, valid, [s.image for s in targets.values()])
    concepts["concept-probe"] = {n: [p] for n, p in zip(targets, probe_concepts, strict=True)}

    result: dict[str, Any] = {"sizes": splits.sizes(), "files": splits.files, "histories": histories,
                              "linear_probe_C": probe.best_C_,
                              "probe_C_grid": list(PROBE_C_GRID)}
    for part, name in (("test", "derm7pt_test"), ("ph2", "ph2_external")):
        if part not in targets:
            continue
        y = targets[part].melanoma
        result[name] = {
            "models": {m: evaluate_binary(valid.melanoma, s["valid"], y, s[part], threshold_rule=threshold_rule,
                                          n_boot=n_boot) for m, s in scores.items()},
            "concept_auc": {m: concept_results(targets[part].concepts, c[part], n_boot) for m, c in concepts.items()},
        }
    return result, [explain_model, train]


def run_ph2_cv(ph2: Sequence[Record], feats: Features, options: FitOptions, seeds: int, diagnosis_weight: float,
               folds: int, n_boot: int) -> dict[str, Any]:
    """PH2 alone by stratified k-fold cross-validation (the paper's second protocol).

    In each fold, 20% of the training part (stratified, seeded) is the validation split for early
    stopping and the probe's C; the held-out fold is scored once. ROC-AUC and PR-AUC are computed
    on the pooled out-of-fold scores of each seed (threshold-free, so no fold needs a threshold).
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    data = feats.dataset(ph2)
    y = data.melanoma.astype(int)
    oof: dict[str, list[np.ndarray]] = {"lit-zeroshot": [], "lit-trained": [], "linear-probe": []}
    oof_concepts: list[np.ndarray] = []
    trained_opts = replace(options, diagnosis_weight=diagnosis_weight, select="melanoma")
    for seed in range(seeds):
        scores = {m: np.zeros(len(y)) for m in oof}
        concepts = np.zeros(data.concepts.shape)
        for fold, (fit_idx, test_idx) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed)
                                                   .split(np.zeros(len(y)), y)):
            tr_idx, va_idx = train_test_split(fit_idx, test_size=0.2, stratify=y[fit_idx], random_state=seed)
            part = {n: ImageTextSet(data.image[i], data.caption_ids[i], data.concepts[i], data.melanoma[i])
                    for n, i in (("train", tr_idx), ("valid", va_idx), ("test", test_idx))}
            zs, _ = fit_image_text(part["train"], part["valid"], feats.prompts, options, seed * 100 + fold)
            tr, _ = fit_image_text(part["train"], part["valid"], feats.prompts, trained_opts, seed * 100 + fold)
            out_zs = score_image_text(zs, part["test"].image, feats.prompts)
            scores["lit-zeroshot"][test_idx] = _sigmoid(out_zs["melanoma_logit"])
            concepts[test_idx] = _sigmoid(out_zs["concept_logits"])
            scores["lit-trained"][test_idx] = _sigmoid(score_image_text(tr, part["test"].image,
                                                                        feats.prompts)["melanoma_logit"])
            if seed == 0:  # the probe is deterministic given the folds of seed 0
                probe = _logistic().fit(part["train"].image, part["train"].melanoma,
                                                        part["valid"].image, part["valid"].melanoma)
                scores["linear-probe"][test_idx] = probe.predict_proba(part["test"].image)[:, 1]
        for m in oof:
            if m != "linear-probe" or seed == 0:
                oof[m].append(scores[m])
        oof_concepts.append(concepts)
    models = {}
    for m, per_seed in oof.items():
        row = {}
        for metric in ("roc_auc", "pr_auc"):
            values = [BINARY_METRICS[metric](y, s) for s in per_seed]
            low, high = bootstrap_ci(BINARY_METRICS[metric], y, per_seed, n_boot=n_boot)
            row[metric] = {"mean": float(np.mean(values)),
                           "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                           "ci_low": low, "ci_high": high, "per_seed": values}
        models[m] = {"splits": {"test": row}, "seeds": len(per_seed)}
    return {"folds": folds, "n": len(y), "models": models,
            "concept_auc": {"lit-zeroshot": concept_results(data.concepts, oof_concepts, n_boot)}}


def run_experiment(splits_by_kind: dict[str, DatasetSplits], ph2: list[Record], feats: Features,
                   options: FitOptions, seeds: int, diagnosis_weight: float, n_boot: int,
                   threshold_rule: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every split; returns results per split and the explanation models per split."""
    results, models = {}, {}
    for kind, splits in splits_by_kind.items():
        start = time.perf_counter()
        results[kind], models[kind] = run_split(splits, ph2, feats, options, seeds, diagnosis_weight, n_boot,
                                                threshold_rule)
        results[kind]["train_seconds"] = time.perf_counter() - start
    return results, models


def merge_skips(*reports: SkipReport) -> SkipReport:
    total = SkipReport()
    for r in reports:
        total.merge(r)
    return total


__all__ = ["Features", "compute_features", "concept_results", "merge_skips", "run_experiment", "run_ph2_cv",
           "run_split"]
