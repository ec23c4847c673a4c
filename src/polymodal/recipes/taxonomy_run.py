"""Every model row of the taxonomy-classifier recipe, as long-format predictions.

:func:`run_taxonomy` trains each setting (a network on chosen feature blocks with one head and one
fusion) for every seed, fits the baselines once (they are deterministic), and returns one row per
(model, seed, split, product, level)::

    model, kind, selection, fold, seed, condition, subset, split, id,
    level, y_true, y_pred, confidence, has_image, rare

``confidence`` is the predicted class's probability; ``has_image`` lets the task report products
with and without photos apart; ``rare`` marks a true class with fewer than ``rare_min_count``
training examples (decided on the training split only). Only train and valid rows ever reach a
fit or a selection (early stopping, the baselines' C); test rows are only predicted.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.preprocessing import StandardScaler

from polymodal.data.sources.fashion import LEVELS
from polymodal.recipes.taxonomy_features import TaxonomyInputs
from polymodal.training.hierarchical import FitOptions, fit_network, predict_log_probs

PREDICTION_COLUMNS = ("model", "kind", "selection", "fold", "seed", "condition", "subset", "split", "id",
                      "level", "y_true", "y_pred", "confidence", "has_image", "rare")


@dataclass(frozen=True)
class Setting:
    """One network model row: which feature blocks, which head and fusion, which products."""

    model: str
    kind: str
    blocks: tuple[str, ...]
    head: str = "transitional"
    fusion: str = "concat"
    photos_only: bool = False


SETTINGS: dict[str, Setting] = {s.model: s for s in (
    Setting("transitional/all", "recipe", ("image", "name", "tabular")),
    Setting("flat/all", "ablation", ("image", "name", "tabular"), head="flat"),
    Setting("top-down/all", "ablation", ("image", "name", "tabular"), head="top-down"),
    Setting("transitional/all/attention", "ablation", ("image", "name", "tabular"), fusion="attention"),
    Setting("transitional/image", "ablation", ("image",), photos_only=True),
    Setting("transitional/name", "ablation", ("name",)),
    Setting("transitional/masked-name", "ablation", ("masked_name",)),
    Setting("transitional/all-masked-name", "ablation", ("image", "masked_name", "tabular")),
)}
BASELINES = ("majority", "tfidf-logreg/name", "tfidf-logreg/masked-name", "linear-probe/image")


def _frame(inputs: TaxonomyInputs, rows: np.ndarray, preds: Sequence[np.ndarray], conf: Sequence[np.ndarray],
           model: str, kind: str, seed: int, split: str, rare_min_count: int) -> pd.DataFrame:
    """Long rows for one (model, seed, split): preds[l] (n,) labels, conf[l] (n,) probabilities."""
    p = inputs.products.iloc[rows]
    has_image = inputs.blocks["image"][1][rows]
    parts = []
    for i, level in enumerate(LEVELS):
        rare = inputs.taxonomy.rare(i, rare_min_count)
        truth = p[level].astype(str).to_numpy()
        parts.append(pd.DataFrame({
            "id": p["id"].to_numpy(), "level": level, "y_true": truth, "y_pred": np.asarray(preds[i], dtype=object),
            "confidence": np.asarray(conf[i], dtype=float), "has_image": has_image,
            # A class unseen in training is rarer still.
            "rare": np.array([t in rare or t not in inputs.taxonomy.counts[i] for t in truth]),
        }))
    out = pd.concat(parts, ignore_index=True)
    meta = {"model": model, "kind": kind, "selection": "valid", "fold": 0, "seed": seed, "condition": "none",
            "subset": "all", "split": split}
    for key, value in meta.items():
        out.insert(0, key, value)
    return out[list(PREDICTION_COLUMNS)]


def _network_rows(inputs: TaxonomyInputs, setting: Setting, seed: int, options: FitOptions, splits: Sequence[str],
                  rare_min_count: int) -> tuple[list[pd.DataFrame], dict[str, Any], torch.nn.Module]:
    tax = inputs.taxonomy
    keep = inputs.blocks["image"][1] if setting.photos_only else np.ones(len(inputs.products), dtype=bool)

    def part(split: str) -> np.ndarray:
        rows = inputs.rows(split)
        return rows[keep[rows]]

    def blocks(rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {b: (inputs.blocks[b][0][rows], inputs.blocks[b][1][rows]) for b in setting.blocks}

    tr, va = part("train"), part("valid")
    opts = FitOptions(**{**options.__dict__, "head": setting.head, "fusion": setting.fusion})
    model, info = fit_network(blocks(tr), inputs.targets[tr], blocks(va), inputs.targets[va], tax.sizes,
                              [tax.transition(i) for i in range(len(LEVELS) - 1)], opts, seed)
    frames = []
    for split in splits:
        rows = part(split)
        lps = predict_log_probs(model, blocks(rows))
        preds = [tax.decode(i, lp.argmax(1)) for i, lp in enumerate(lps)]
        conf = [np.exp(lp.max(1)) for lp in lps]
        frames.append(_frame(inputs, rows, preds, conf, setting.model, setting.kind, seed, split, rare_min_count))
    return frames, info, model


def _select_logistic(x_train: Any, y_train: np.ndarray, x_valid: Any, y_valid: np.ndarray,
                     alpha_grid: Sequence[float], max_iter: int) -> tuple[SGDClassifier, dict[str, float]]:
    """L2 logistic regression (one-vs-rest, fitted by SGD) with its penalty chosen on validation accuracy.

    SGD rather than lbfgs: a multinomial lbfgs fit on 31k TF-IDF rows and 143 classes took over 100 s per C
    on this 2-core machine; the SGD fit takes seconds. Ties go to the larger penalty (stronger regularisation).
    """
    best: tuple[float, SGDClassifier] | None = None
    scores = {}
    for alpha in sorted(alpha_grid, reverse=True):
        clf = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=max_iter, tol=1e-4, random_state=0, n_jobs=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a capped epoch budget is part of the baseline
            clf.fit(x_train, y_train)
        score = float(np.mean(clf.predict(x_valid) == y_valid))
        scores[str(alpha)] = score
        if best is None or score > best[0]:
            best = (score, clf)
    assert best is not None
    return best[1], scores


def _baseline_rows(inputs: TaxonomyInputs, name: str, cfg: Any, splits: Sequence[str]
                   ) -> tuple[dict[str, tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]], dict[str, Any]]:
    """Predictions per split for one baseline: (rows, labels per level, confidence per level)."""
    p = inputs.products
    has = inputs.blocks["image"][1]
    photos_only = name == "linear-probe/image"

    def part(split: str) -> np.ndarray:
        rows = inputs.rows(split)
        return rows[has[rows]] if photos_only else rows

    tr, va = part("train"), part("valid")
    out: dict[str, tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]] = {
        s: (part(s), [], []) for s in splits}
    info: dict[str, Any] = {}
    if name == "majority":
        for level in LEVELS:
            counts = p.iloc[tr][level].value_counts()
            top, share = counts.index[0], counts.iloc[0] / counts.sum()
            for rows, preds, conf in out.values():
                preds.append(np.full(len(rows), top, dtype=object))
                conf.append(np.full(len(rows), share))
        return out, info
    if name.startswith("tfidf-logreg/"):
        column = "name" if name.endswith("/name") else "masked_name"
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x = {"train": vec.fit_transform(p.iloc[tr][column])}
        x_of = {s: vec.transform(p.iloc[out[s][0]][column]) for s in splits}
        x_valid = vec.transform(p.iloc[va][column])
        grid = cfg.tfidf_alpha_grid
    else:
        scaler = StandardScaler().fit(inputs.blocks["image"][0][tr])
        x = {"train": scaler.transform(inputs.blocks["image"][0][tr])}
        x_of = {s: scaler.transform(inputs.blocks["image"][0][out[s][0]]) for s in splits}
        x_valid = scaler.transform(inputs.blocks["image"][0][va])
        grid = cfg.probe_alpha_grid
    for level in LEVELS:
        clf, scores = _select_logistic(x["train"], p.iloc[tr][level].to_numpy(), x_valid, p.iloc[va][level].to_numpy(),
                                       grid, cfg.logreg_max_iter)
        info[level] = {"alpha": float(clf.alpha), "valid_accuracy_by_alpha": scores}
        for split, (_, preds, conf) in out.items():
            proba = clf.predict_proba(x_of[split])
            preds.append(clf.classes_[proba.argmax(1)])
            conf.append(proba.max(1))
    return out, info


def run_taxonomy(inputs: TaxonomyInputs, cfg: Any, *, settings: Sequence[str] | None = None,
                 baselines: Sequence[str] | None = None, splits: Sequence[str] = ("valid", "test"),
                 keep: Sequence[str] = (), progress: Any = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train every setting for every seed and fit the baselines; long-format predictions and an info dict.

    Args:
        inputs: from :func:`~polymodal.recipes.taxonomy_features.prepare_inputs`.
        cfg: the recipe config (seeds, training options, penalty grids, rare_min_count).
        settings: names from :data:`SETTINGS` (default ``cfg.settings``).
        baselines: names from :data:`BASELINES` (default ``cfg.baselines``).
        splits: which splits to predict.
        keep: settings whose trained networks (one per seed) are returned in ``info["models"]``.
        progress: optional ``callable(message)``.
    """
    settings = list(cfg.settings if settings is None else settings)
    baselines = list(cfg.baselines if baselines is None else baselines)
    for s in settings:
        if s not in SETTINGS:
            raise ValueError(f"unknown setting {s!r}; known: {', '.join(SETTINGS)}")
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"unknown baseline {b!r}; known: {', '.join(BASELINES)}")
    options = fit_options(cfg)
    seeds = list(range(cfg.protocol.seeds))
    frames: list[pd.DataFrame] = []
    info: dict[str, Any] = {"fits": {}, "baselines": {}, "seconds": {}, "models": {}}
    saved_threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        for name in settings:
            t = time.perf_counter()
            for seed in seeds:
                part, fit_info, model = _network_rows(inputs, SETTINGS[name], seed, options, splits,
                                                      cfg.rare_min_count)
                frames.extend(part)
                if name in keep:
                    info["models"].setdefault(name, []).append(model)
                info["fits"][f"{name}/seed{seed}"] = fit_info
            info["seconds"][name] = round(time.perf_counter() - t, 1)
            if progress:
                progress(f"{name}: {info['seconds'][name]} s")
        for name in baselines:
            t = time.perf_counter()
            out, b_info = _baseline_rows(inputs, name, cfg, splits)
            kind = "trivial" if name == "majority" else "baseline"
            for seed in seeds:  # deterministic: the same predictions under every seed, for paired comparisons
                for split, (rows, preds, conf) in out.items():
                    frames.append(_frame(inputs, rows, preds, conf, name, kind, seed, split, cfg.rare_min_count))
            info["baselines"][name] = b_info
            info["seconds"][name] = round(time.perf_counter() - t, 1)
            if progress:
                progress(f"{name}: {info['seconds'][name]} s")
    finally:
        torch.set_num_threads(saved_threads)
    return pd.concat(frames, ignore_index=True), info


# --------------------------------------------------------------------------- jobs for the one runner


def network_job(ctx: Any, *, inputs: TaxonomyInputs, setting: str, options: FitOptions, splits: Sequence[str],
                rare_min_count: int, save: bool = False) -> Any:
    """One (setting, seed): train, predict valid and test; ``save`` writes the weights to the job folder."""
    from polymodal.runs.problem import JobResult

    saved = torch.get_num_threads()
    if ctx.train.threads:
        torch.set_num_threads(ctx.train.threads)
    try:
        frames, info, model = _network_rows(inputs, SETTINGS[setting], ctx.seed, options, splits, rare_min_count)
    finally:
        torch.set_num_threads(saved)
    if save:
        from polymodal.io import atomic_path

        with atomic_path(Path(ctx.dir) / "network.pt") as tmp:
            torch.save(model.state_dict(), tmp)
    return JobResult(pd.concat(frames, ignore_index=True), info=info)


def baseline_job(ctx: Any, *, inputs: TaxonomyInputs, name: str, cfg: Any, splits: Sequence[str], seeds: int) -> Any:
    """One deterministic baseline, its rows repeated under every seed (so comparisons pair seed by seed)."""
    from polymodal.runs.problem import JobResult

    out, info = _baseline_rows(inputs, name, cfg, splits)
    kind = "trivial" if name == "majority" else "baseline"
    frames = [_frame(inputs, rows, preds, conf, name, kind, seed, split, cfg.rare_min_count)
              for seed in range(seeds) for split, (rows, preds, conf) in out.items()]
    return JobResult(pd.concat(frames, ignore_index=True), info={"selection": info})


def fit_options(cfg: Any) -> FitOptions:
    return FitOptions(dim=cfg.dim, hidden=cfg.hidden, dropout=cfg.dropout, lr=cfg.train.lr,
                      weight_decay=cfg.train.weight_decay, batch_size=cfg.train.batch_size,
                      max_epochs=cfg.train.max_epochs, patience=cfg.train.patience)
