"""UMPSNet: one survival model for several cancers, with metadata as text and optimal-transport fusion.

Paper: "From Single-Cancer to Pan-cancer Prognosis: A Multi-modal Deep Learning Framework for
Survival Analysis with Robust Generalization Capability" (UMPSNet), arXiv 2501.07016.
Code: github.com/binging512/UMPSNet (only compiled .pyc files of the model are public; the config
gives 4 time bins, 10 experts, NLL + cross-entropy "data" loss, lr 2e-4, weight decay 1e-5,
20 epochs, effective batch 32). Data: TCGA (NIH GDC open access) through MCAT (GPL-3.0) and
UMPSNet's metadata and splits (no licence stated).

Faithful: genomic profiles encoded per functional family by self-normalising networks (MCAT); four
kinds of metadata (demographics, cancer type, treatments, diagnosis) rendered as text templates and
embedded by a frozen text encoder; optimal-transport attention between genomic family tokens and
the other modality's tokens (MOTCat, with POT); a guided soft mixture of experts (10 experts) whose
gate reads the cancer-type embedding and whose gate logits predict the cancer type (cross-entropy);
a discrete-time survival NLL over 4 quantile bins of event times; one model trained on every
cohort at once; the UMPSNet 5-fold splits.

Deviations (each also in docs/recipes/umpsnet.md):
  * no whole-slide images (patch features are not available here): the OT attention's context is
    the metadata sentences instead of slide patches; a pathology encoder of precomputed patch
    features can be plugged in as another context modality;
  * all-MiniLM-L6-v2 (offline package) instead of CLIP's text encoder;
  * treatments are left out of the headline (recorded after diagnosis: possibly leaky); the
    with-treatment model runs beside it and is labelled possibly leaky;
  * balanced entropic Sinkhorn by default (batched in POT) instead of MOTCat's unbalanced solver
    (``--ot-method unbalanced`` runs it, one problem per sample);
  * the GMoE's internals are our reading of the paper (the source is not public);
  * early stopping and checkpoint choice on an inner validation split of each training fold
    (upstream trains a fixed 20 epochs and reports the test fold);
  * learning rate 1e-3 instead of 2e-4, chosen on those inner validation splits; each fold's model is
    the ensemble of its seeds;
  * RNA-seq z-scores are transformed with arcsinh + a scaler fitted on training patients.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from polymodal.recipes.registry import REGISTRY, Paper, Recipe
from polymodal.recipes.umpsnet_parts import (
    DEVIATIONS,
    NAME,
    PUBLISHED,
    TEXT_MODALITIES,
    UMPSNetConfig,
    UMPSNetFeaturizer,
    _clinical_frame,
    _ordinal,
    build_snn,
    build_umpsnet,
    embed_templates,
)
from polymodal.recipes.umpsnet_zero_shot import UMPSNetPredictor, example_rows, zero_shot
from polymodal.runs.problem import Problem

__all__ = ["NAME", "TEXT_MODALITIES", "UMPSNetConfig", "UMPSNetFeaturizer", "UMPSNetPredictor", "build",
           "build_snn", "build_umpsnet", "embed_templates", "evaluate_tables"]
_ = (_clinical_frame, _ordinal)  # re-exported for tests and notebooks

SELECTION = "valid"


def build(cfg: UMPSNetConfig, *, data_dir: str | Path | None, cache_dir: str | Path | None = None) -> Problem:
    """Load the cohorts, fit a featuriser on each fold's inner training patients, and hand the runner one
    job per (fold, network, cohort, seed) plus one baseline job (Kaplan-Meier, clinical Cox) per fold."""
    from polymodal.data.paths import resolve_data_dir
    from polymodal.data.sources.tcga import load_cohorts
    from polymodal.runs.survival_cv import FitSettings, NetworkSpec, fold_manifest, make_folds, survival_cv_jobs
    from polymodal.tasks.survival import SurvivalTask

    data = load_cohorts(resolve_data_dir(data_dir), cfg.cohorts, n_folds=cfg.n_folds,
                        columns_also_in=cfg.genomic_columns_also_in)
    # Column harmonisation across cohorts happens in load_cohorts (the shared genomic columns) and, for a
    # cohort scored later, in umpsnet_zero_shot.harmonise_genomics: the call site for polymodal.data.harmonise.
    text = embed_templates(cfg, data.records, Path(cache_dir) if cache_dir else None)
    folds = make_folds(data.records, data.folds, partial(UMPSNetFeaturizer, data.genomics, data.groups, text),
                       inner_fraction=cfg.inner_valid_fraction, split_seed=cfg.split_seed)
    headline = ("cancer", "genomics", "metadata")
    umpsnet, snn = partial(build_umpsnet, cfg), partial(build_snn, cfg)
    networks = [NetworkSpec(NAME, "recipe", headline, umpsnet, robustness=cfg.protocol.robustness)]
    if cfg.with_treatment:
        networks.append(NetworkSpec("umpsnet+treatment (possibly leaky)", "baseline", (*headline, "treatment"),
                                    umpsnet, seeds=cfg.comparison_seeds))
    if cfg.per_cancer:
        networks.append(NetworkSpec("umpsnet-per-cancer", "baseline", headline, umpsnet, per_cohort=True,
                                    seeds=cfg.comparison_seeds))
    if cfg.genomic_only:
        networks.append(NetworkSpec("snn-genomic", "baseline", ("genomics",), snn, per_cohort=True))
    settings = FitSettings(n_bins=cfg.n_bins, loss=cfg.loss, alpha_surv=cfg.alpha_surv, group_weight=cfg.group_weight,
                           cox_penalizers=tuple(cfg.cox_penalizers), selection=SELECTION)
    cohorts = data.cohorts()
    published = [{"model": p.model, "metric": p.metric, "value": p.value, "source": p.source,
                  "dataset_version": p.dataset_version, "split": p.split} for p in PUBLISHED]
    columns = list(folds[0].featurizer.columns)
    return Problem(
        task=SurvivalTask(headline=NAME, selections=(SELECTION,), n_boot=cfg.protocol.n_boot, ensemble=True),
        jobs=survival_cv_jobs(folds, networks, settings, cfg.protocol.seeds),
        dataset={"description": (f"TCGA {' + '.join(cfg.cohorts)} (MCAT cohort files, UMPSNet metadata and 5-fold "
                                 "splits; the split's 'val' column is the held-out test fold), one patient per "
                                 "case_id."),
                 "version": "MCAT b9cca63b cohort files + UMPSNet 2e820c04 metadata/splits", "files": data.files,
                 "sizes": {c: sum(1 for r in data.records if r.meta["cohort"] == c) for c in cohorts},
                 "events": {c: int(sum(r.target[1] for r in data.records if r.meta["cohort"] == c)) for c in cohorts},
                 "folds": len(folds)},
        split_manifest=fold_manifest(folds),
        published=published,
        notes=[
            f"{NAME}: genomic family SNN tokens, projected MiniLM sentence tokens (demographics, diagnosis) and the "
            "cancer-type sentence; OT attention (genomics over sentences), three self-attended pooled streams, "
            "guided soft MoE; discrete-time NLL over 4 bins + cross-entropy on cancer type. No treatments.",
            "umpsnet+treatment adds the treatment sentence (Pharmaceutical / Radiation Therapy), recorded after "
            "diagnosis: it can reflect survival itself, so its number is possibly leaky.",
            "cox-clinical: lifelines Cox on age, sex, ordinal stage, T, N, M (one per cohort, L2 penalty chosen on "
            "the inner validation split); kaplan-meier: one constant risk (C-index 0.5).",
            "C-index per cohort: Harrell's (sksurv) of each fold's seed ensemble (the mean of the seeds' risks, each "
            "standardised on its inner validation split), then mean and std over the 5 folds; CI: bootstrap of "
            "patients within each (cohort, fold), stratified by event, the same draws for every model (paired). "
            "td_auc: sksurv cumulative_dynamic_auc at the 25/50/75% "
            "quantiles of test event times. KM plots: test risk centred on the fold's inner-validation median.",
        ],
        skips=data.skips.to_dict(),
        extra={"selection_descriptions": {SELECTION: (
            f"a stratified {cfg.inner_valid_fraction:.0%} of each training fold (early stopping, checkpoint, Cox "
            "penalty, risk-group threshold); the held-out fold is scored once")}},
        # what `polymodal predict` and zero-shot scoring need, as data (never a pickle)
        artifacts={"featurizer": {"folds": [f.featurizer.state() for f in folds]},
                   "example_input": {"rows": example_rows(folds[0].test, data.genomics, columns)}},
    )


def evaluate_tables(predictions: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """td-AUC and integrated Brier score per model and cohort from the saved tables (recomputed by eval)."""
    from polymodal.tasks.survival_time import time_dependent_metrics

    return time_dependent_metrics(predictions, tables, headline_selection=SELECTION)


def _zero_shot(run_dir: Path, *, cohort: str, data_dir: Path | None = None, cache_dir: Path | None = None
               ) -> tuple[dict[str, Any], Path]:
    return zero_shot(run_dir, cohort=cohort, data_dir=data_dir, cache_dir=cache_dir)


RECIPE = REGISTRY.register(
    Recipe(
        name=NAME,
        paper=Paper("From Single-Cancer to Pan-cancer Prognosis: A Multi-modal Deep Learning Framework for "
                    "Survival Analysis with Robust Generalization Capability (UMPSNet)", "2501.07016",
                    code_url="https://github.com/binging512/UMPSNet"),
        summary="Pan-cancer survival (TCGA BLCA + LUAD): genes by family + metadata as text, OT attention, guided MoE",
        config_cls=UMPSNetConfig,
        build=build,
        predictor=UMPSNetPredictor,
        evaluate_tables=evaluate_tables,
        data_licence="TCGA open access (NIH GDC) via MCAT (GPL-3.0); UMPSNet metadata and splits (no licence stated)",
        published=PUBLISHED,
        deviations=DEVIATIONS,
        extra={"zero_shot": _zero_shot},
    )
)
