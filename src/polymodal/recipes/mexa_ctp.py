"""MEXA-CTP: Mode Experts Cross-Attention for Clinical Trial Outcome Prediction.

Paper: Yiqing Zhang, Xiaozhong Liu, Fabricio Murai, "MEXA-CTP: Mode Experts Cross-Attention for
Clinical Trial Outcome Prediction", SDM 2025, arXiv 2501.06823. Code: github.com/murai-lab/MEXA-CTP.
Data: TOP (futianfan/clinical-trial-outcome-prediction), non-commercial academic use only.

Predict whether a trial succeeds from its drugs (SMILES), diseases (ICD-10 codes) and eligibility
criteria (inclusion and exclusion statements).

Faithful to the paper and its code:
  * per-modality residual projection + self-attention stacks (2 layers, 2 heads, width 8);
  * a router per ordered modality pair gating the query tokens, re-masking tokens whose gate is
    below 0.2, and six cross-attention mode experts (drug-disease, drug-criteria, disease-criteria
    in both directions), then a shared "compensation" self-attention stack and a masked sum;
  * loss = weighted BCE + 0.05 * Cauchy loss on the gate probabilities (eps 0.5)
    + 0.01 * contrastive agreement of paired experts (temperature 0.2); batch 64, Adam;
  * criteria truncated to the first 8 inclusion and 5 exclusion statements, 5 codes, 5 drugs.

Deviations (each also in docs/recipes.md):
  * criteria statements: all-MiniLM-L6-v2 (384-d, offline package) instead of BioBERT (768-d);
  * molecules: RDKit Morgan fingerprints (radius 2, 1024 bits) instead of the authors' 15-d
    SMILES embedding; MiniMol where installed (``--molecule-encoder minimol``);
  * ICD codes: a trained embedding of each code and its ancestors (the hierarchy) instead of
    pretrained icd2vec-style 64-d vectors;
  * inclusion and exclusion statements are one "criteria" modality with an exclusion flag (the
    official code runs one shared stack over each separately);
  * expert tokens get a learned expert-type embedding instead of positions over the concatenation;
    the compensation stack also sees each modality's self-attended tokens (per-modality experts);
  * the contrastive term is in-batch InfoNCE over pooled expert outputs (upstream compares
    randomly shuffled token positions);
  * every attention stack is registered and trained (upstream keeps them in plain dicts, so the
    optimiser never updates them); attention never produces NaN when a modality is missing;
  * learning rate 1e-3 with AdamW (upstream 0.05 Adam), early stopping on the selection split;
  * model selection and thresholds on validation data only (upstream selects its checkpoint on
    the test split); the positive-class weight is computed from the training split.

Published (MEXA-CTP README, phase I/II/III test, TOP 2021 release with an earlier split):
  phase I F1 0.713, PR-AUC 0.605, ROC-AUC 0.593; phase II 0.695 / 0.635 / 0.538;
  phase III 0.857 / 0.771 / 0.693.
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from polymodal.config import ProtocolConfig, TrainConfig
from polymodal.data.collate import Collator, FeatureDataset
from polymodal.data.icd import IcdHierarchy
from polymodal.data.paths import resolve_cache_dir, resolve_data_dir
from polymodal.data.schema import Record
from polymodal.data.sources.top import load_top, parse_phase, read_top_csv
from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.molecule import MiniMolEncoder, MorganEncoder
from polymodal.encoders.text import SentenceTextEncoder
from polymodal.encoders.trainable import CodeAncestorEncoder, ProjectionEncoder, ResidualProjection
from polymodal.errors import DataError, MissingDataError
from polymodal.fusion.concat import ConcatFusion
from polymodal.fusion.mode_experts import ModeExpertsFusion
from polymodal.io import read_run_json
from polymodal.model import MultimodalModel
from polymodal.objectives import BinaryCrossEntropy, CauchyGateLoss, ExpertAgreementLoss, WeightedSum
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe
from polymodal.recipes.trial_features import TrialFeaturizer


class MexaCtpConfig(BaseModel):
    """MEXA-CTP defaults (official args where they exist); unknown keys are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: str = "I"
    text_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    molecule_encoder: Literal["morgan", "minimol"] = "morgan"
    fusion: Literal["mode-experts", "concat"] = "mode-experts"
    emb_size: int = 8  # official width; tiny, which is part of why it overfits slowly
    heads: int = 2
    layers: int = 2
    dropout: float = 0.005
    gate_threshold: float = 0.2  # tokens whose router probability is below this are masked
    cauchy_epsilon: float = 0.5
    cauchy_weight: float = 0.05  # rho1
    contrastive_weight: float = 0.01  # rho2
    temperature: float = 0.2
    weighted_bce: bool = True
    max_inclusion: int = 8
    max_exclusion: int = 5
    max_drugs: int = 5
    max_codes: int = 5
    # Beyond the paper (off by default): diseases as text (names, and each ICD code as the mean
    # embedding of its own and its ancestors' names) instead of trained code embeddings; drug
    # names as extra drug tokens (many TOP trials list more drugs than they have SMILES for).
    disease_text: bool = False
    drug_text: bool = False
    # One intra-op thread per seed, two seeds at once: the model is tiny, so per-op overhead
    # dominates, and intra-op threads only add synchronisation (several times slower with 2
    # threads on a busy 2-core machine), while whole seeds parallelise cleanly.
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_epochs=100, patience=10, batch_size=64,
                                                                   lr=1e-3, weight_decay=1e-4, threads=1,
                                                                   workers=2))
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)


DEVIATIONS = (
    "criteria statements are embedded with all-MiniLM-L6-v2 (384-d, offline package) instead of BioBERT (768-d)",
    "molecules are RDKit Morgan fingerprints (radius 2, 1024 bits) instead of the authors' 15-d SMILES embedding; "
    "MiniMol with --molecule-encoder minimol",
    "ICD codes use a trained embedding of each code and its ancestors instead of pretrained 64-d code vectors",
    "inclusion and exclusion statements form one criteria modality with an exclusion flag",
    "expert tokens get a learned expert-type embedding instead of positions over the concatenation, and the "
    "compensation stack also sees each modality's self-attended tokens",
    "the contrastive term is in-batch InfoNCE over pooled paired experts (upstream compares shuffled token positions)",
    "every attention stack is registered and trained (upstream keeps them in plain dicts, so they are never updated), "
    "and attention stays finite when a modality is missing",
    "AdamW at learning rate 1e-3 with early stopping on the selection split (upstream: Adam at 0.05, 100 epochs)",
    "checkpoint and thresholds are chosen on validation data only (upstream selects its checkpoint on the test split); "
    "the positive-class weight comes from the training split",
)

PUBLISHED = (
    PublishedResult("mexa-ctp", "f1", 0.713, "MEXA-CTP README, phase I", "TOP 2021 release, earlier split"),
    PublishedResult("mexa-ctp", "pr_auc", 0.605, "MEXA-CTP README, phase I", "TOP 2021 release, earlier split"),
    PublishedResult("mexa-ctp", "roc_auc", 0.593, "MEXA-CTP README, phase I", "TOP 2021 release, earlier split"),
    PublishedResult("HINT", "pr_auc", 0.741, "HINT README, phase I", "earlier TOP version, 1028/146/295 trials"),
    PublishedResult("HINT", "f1", 0.847, "HINT README, phase I", "earlier TOP version, 1028/146/295 trials"),
    PublishedResult("HINT", "roc_auc", 0.838, "HINT README, phase I", "earlier TOP version, 1028/146/295 trials"),
)
PUBLISHED_BY_PHASE = {
    "II": ((0.695, 0.635, 0.538),),
    "III": ((0.857, 0.771, 0.693),),
}


def make_featurizer(cfg: MexaCtpConfig, data_dir: Path, cache: EmbeddingCache) -> TrialFeaturizer:
    molecule = MiniMolEncoder() if cfg.molecule_encoder == "minimol" else MorganEncoder(radius=2, n_bits=1024)
    return TrialFeaturizer(
        SentenceTextEncoder(cfg.text_model), molecule, IcdHierarchy.from_data_dir(data_dir),
        cache, max_inclusion=cfg.max_inclusion, max_exclusion=cfg.max_exclusion,
        max_drugs=cfg.max_drugs, max_codes=cfg.max_codes, disease_text=cfg.disease_text, drug_text=cfg.drug_text,
    )


def build_model(cfg: MexaCtpConfig, featurizer: TrialFeaturizer) -> MultimodalModel:
    d = cfg.emb_size
    encoders = {
        "criteria": ProjectionEncoder(featurizer.criteria_dim, d, positional=True, dropout=cfg.dropout),
        "drugs": ProjectionEncoder(featurizer.drug_dim, d, dropout=cfg.dropout),
        "diseases": (ProjectionEncoder(featurizer.disease_dim, d, dropout=cfg.dropout) if featurizer.disease_text
                     else CodeAncestorEncoder(featurizer.code_vocab_size, d, dropout=cfg.dropout)),
    }
    fusion: nn.Module
    if cfg.fusion == "mode-experts":
        fusion = ModeExpertsFusion(list(encoders), d, heads=cfg.heads, layers=cfg.layers, dropout=cfg.dropout,
                                   gate_threshold=cfg.gate_threshold)
    else:
        fusion = ConcatFusion(list(encoders), d)
    return MultimodalModel(encoders, fusion, ResidualProjection(fusion.out_dim, 1))


def build_objective(cfg: MexaCtpConfig, y_train: np.ndarray) -> WeightedSum:
    n_pos = float(y_train.sum())
    pos_weight = (len(y_train) - n_pos) / max(n_pos, 1.0) if cfg.weighted_bce else None
    parts: dict[str, tuple[nn.Module, float]] = {"bce": (BinaryCrossEntropy(pos_weight), 1.0)}
    if cfg.fusion == "mode-experts":
        parts["cauchy"] = (CauchyGateLoss(cfg.cauchy_epsilon), cfg.cauchy_weight)
        parts["contrastive"] = (ExpertAgreementLoss(cfg.temperature), cfg.contrastive_weight)
    return WeightedSum(parts)


def trial_document(record: Record) -> str:
    """All text of a trial, for the TF-IDF baseline: criteria, disease and drug names."""
    inputs = record.inputs
    return " ".join([*inputs.get("inclusion", []), *[f"EXCL {s}" for s in inputs.get("exclusion", [])],
                     *inputs.get("diseases", []), *inputs.get("drug_names", [])])


def published_for(phase: str) -> list[dict[str, Any]]:
    if phase == "I":
        return [p.__dict__ for p in PUBLISHED]
    rows = []
    for f1, pr, roc in PUBLISHED_BY_PHASE.get(phase, ()):
        for metric, value in (("f1", f1), ("pr_auc", pr), ("roc_auc", roc)):
            rows.append(PublishedResult("mexa-ctp", metric, value, f"MEXA-CTP README, phase {phase}",
                                        "TOP 2021 release, earlier split").__dict__)
    return rows


def run(cfg: MexaCtpConfig, *, data_dir: str | Path | None, out_dir: str | Path,
        cache_dir: str | Path | None = None) -> dict[str, Any] | None:
    """Load TOP, train MEXA-CTP under the protocol for every seed, and write the run folder."""
    data_root = resolve_data_dir(data_dir)
    cache_root = resolve_cache_dir(cache_dir)
    phase = parse_phase(cfg.phase)
    splits = load_top(data_root, phase)
    cache = EmbeddingCache(cache_root / "embeddings")
    from polymodal.experiment import BinaryProblem, run_binary  # Lightning: imported only when a run starts

    problem = BinaryProblem(
        name="mexa-ctp",
        splits=splits,
        make_featurizer=lambda: make_featurizer(cfg, data_root, cache),
        build_model=partial(build_model, cfg),  # partials, not lambdas: seeds train in other processes
        build_objective=partial(build_objective, cfg),
        document=trial_document,
        published=published_for(phase),
        description=f"MEXA-CTP ({cfg.fusion}, width {cfg.emb_size})",
        cache_stats=lambda: cache.stats.as_dict(),
        notes=[
            "Published numbers used an earlier TOP split (and BioBERT embeddings); ours are on the "
            "files in the data directory, with selection on validation data only.",
        ],
    )
    return run_binary(problem, cfg.protocol, cfg.train, out_dir, config={"recipe": "mexa-ctp", **cfg.model_dump()})


def predict(run_dir: Path, input_path: Path, cache_dir: Path | None = None) -> pd.DataFrame:
    """Score new trials (a TOP-format CSV; label, status and phase optional) with a finished run.

    Uses the headline selection's fitted featuriser and every seed's model: the score is the mean
    sigmoid output over seeds, and the decision compares it with the mean of the seeds' thresholds
    (each chosen on that seed's selection-split scores only, never on test data). Unknown ICD codes
    and unparsable SMILES are dropped and counted (``frame.attrs["skips"]``), as in training.

    Returns:
        Columns ``id, score, decision`` (decision 0/1), one row per input trial, in file order.
    """
    from polymodal.training import predict_scores  # Lightning: imported only when needed

    run_dir = Path(run_dir)
    config = read_run_json(run_dir / "config.json")
    metrics = read_run_json(run_dir / "metrics.json")
    cfg = MexaCtpConfig.model_validate({k: v for k, v in config.items() if k != "recipe"})
    selection = str((metrics.get("selection") or {}).get("name") or cfg.protocol.selections[0])
    featurizer = _load_featurizer(run_dir / selection / "featurizer.pkl", cache_dir)
    threshold = _mean_threshold(metrics, run_dir / "metrics.json")
    records, skips = read_top_csv(input_path, require_label=False, icd=featurizer.icd)
    frame = pd.DataFrame({"id": [r.id for r in records], "score": np.zeros(len(records))})
    if records:
        features = featurizer.transform(records)
        dataset = FeatureDataset(features, np.zeros(len(features)))  # targets unused: outcomes unknown
        collator = Collator(featurizer.modalities, featurizer.max_len)
        seed_dirs = [run_dir / selection / f"seed_{seed}" for seed in range(cfg.protocol.seeds)]
        scores = [predict_scores(_load_model(cfg, featurizer, d / "model.pt"), dataset, collator) for d in seed_dirs]
        frame["score"] = np.mean(scores, axis=0)  # (N,)
    frame["decision"] = (frame["score"] >= threshold).astype(int)
    frame.attrs.update(skips=skips.to_dict(), threshold=threshold,
                       threshold_source=f"mean of {cfg.protocol.seeds} seeds' {selection}-selection thresholds")
    return frame


def _load_featurizer(path: Path, cache_dir: Path | None) -> TrialFeaturizer:
    if not path.is_file():
        raise MissingDataError(f"{path} not found: the run folder predates saved featurisers or is incomplete")
    with open(path, "rb") as fh:
        featurizer: TrialFeaturizer = pickle.load(fh)  # unpickling runs code: only use run folders you trust
    # New trials bring new statements and molecules: embed them into this machine's writable cache.
    featurizer.cache_dir = str(resolve_cache_dir(cache_dir) / "embeddings")
    return featurizer


def _load_model(cfg: MexaCtpConfig, featurizer: TrialFeaturizer, path: Path) -> MultimodalModel:
    if not path.is_file():
        raise MissingDataError(f"{path} not found: the run folder is incomplete")
    model = build_model(cfg, featurizer)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def _mean_threshold(metrics: dict[str, Any], path: Path) -> float:
    try:
        per_seed = metrics["models"]["mexa-ctp"]["threshold"]["per_seed"]
        return float(np.mean([float(t) for t in per_seed]))
    except (KeyError, TypeError, ValueError):
        raise DataError("no models['mexa-ctp'].threshold.per_seed", file=path, field="models") from None


RECIPE = REGISTRY.register(
    Recipe(
        name="mexa-ctp",
        paper=Paper("MEXA-CTP: Mode Experts Cross-Attention for Clinical Trial Outcome Prediction", "2501.06823",
                    "SDM 2025", "https://github.com/murai-lab/MEXA-CTP"),
        summary="Clinical-trial outcome from drugs, diseases and eligibility criteria (TOP benchmark)",
        config_cls=MexaCtpConfig,
        runner=run,
        predictor=predict,
        data_licence="TOP benchmark: non-commercial academic use only",
        published=PUBLISHED,
        deviations=DEVIATIONS,
    )
)
