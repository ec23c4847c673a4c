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

from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
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
from polymodal.errors import DataError
from polymodal.fusion.concat import ConcatFusion
from polymodal.fusion.mode_experts import ModeExpertsFusion
from polymodal.io import read_run_json
from polymodal.model import MultimodalModel
from polymodal.objectives import BinaryCrossEntropy, CauchyGateLoss, ExpertAgreementLoss, WeightedSum
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe
from polymodal.recipes.trial_features import TrialFeaturizer
from polymodal.runs.problem import Problem
from polymodal.runs.record_binary import SELECTION_TEXT
from polymodal.tasks.binary import BinaryTask


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
    return make_featurizer_from_icd(cfg, IcdHierarchy.from_data_dir(data_dir), cache)


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


def build(cfg: MexaCtpConfig, *, data_dir: str | Path | None, cache_dir: str | Path | None = None) -> Problem:
    """Load TOP, fit a featuriser per selection split on its training trials, and hand the runner
    one job per (selection, seed) plus one baseline job per selection."""
    from polymodal.evaluation import drift_summary
    from polymodal.runs.record_binary import RecordBinarySpec, make_fold, record_binary_jobs, selection_manifest

    data_root = resolve_data_dir(data_dir)
    cache = EmbeddingCache(resolve_cache_dir(cache_dir) / "embeddings")
    phase = parse_phase(cfg.phase)
    splits = load_top(data_root, phase)
    folds = [make_fold(splits, selection, cfg.protocol, partial(make_featurizer, cfg, data_root, cache))
             for selection in cfg.protocol.selections]
    spec = RecordBinarySpec("mexa-ctp", partial(build_model, cfg), partial(build_objective, cfg), trial_document,
                            robustness=cfg.protocol.robustness, baselines=cfg.protocol.baselines)
    task = BinaryTask(headline="mexa-ctp", selections=cfg.protocol.selections, n_boot=cfg.protocol.n_boot,
                      threshold_rule=cfg.protocol.threshold_rule, unit="trial")
    return Problem(
        task=task,
        jobs=record_binary_jobs(spec, folds, cfg.protocol.seeds),
        dataset={"description": splits.description, "version": splits.description, "sizes": splits.sizes(),
                 "files": splits.files},
        split_manifest=selection_manifest(folds),
        published=published_for(phase),
        notes=["Published numbers used an earlier TOP split (and BioBERT embeddings); ours are on the files in "
               "the data directory, with selection on validation data only."],
        skips=splits.skips.to_dict(),
        extra={"drift": drift_summary(dict(splits.items()), order_key=cfg.protocol.order_key),
               "embedding_cache": cache.stats.as_dict(),
               "selection_descriptions": {f.name: SELECTION_TEXT.get(f.name, f.name) for f in folds}},
        # what `polymodal predict` needs, as data (never a pickle): the fitted code vocabulary per
        # selection and the ICD-10 table it was fitted with
        artifacts={"featurizer": {"selections": {f.name: {"vocab": f.featurizer.vocab_} for f in folds},
                                  "icd": folds[0].featurizer.icd.to_json()},
                   "example_input": {"rows": _example_rows(splits.files["test"])}},
    )


def _example_rows(test_file: str, n: int = 5) -> list[dict[str, Any]]:
    """The first test trials as the input format shows them, outcome removed (for --example-input)."""
    frame = pd.read_csv(test_file, nrows=n, dtype=str, keep_default_na=False)
    return frame.drop(columns=[c for c in ("label", "status", "why_stop") if c in frame.columns]).to_dict("records")


class TrialPredictor:
    """Scores new trials (TOP-format CSV; label, status and phase optional) with a finished run.

    Uses the headline selection's fitted vocabulary and every seed's model: the score is the mean
    sigmoid output over seeds, and the decision compares it with the mean of the seeds' thresholds
    (each chosen on that seed's selection-split scores only, never on test data). Unknown ICD codes
    and unparsable SMILES are dropped and counted, as in training.
    """

    def __init__(self, run_dir: Path, cache_dir: Path | None = None) -> None:
        self.run_dir = Path(run_dir)
        config = read_run_json(self.run_dir / "config.json")
        self.metrics = read_run_json(self.run_dir / "metrics.json")
        self.cfg = MexaCtpConfig.model_validate(config["options"])
        self.selection = str((self.metrics.get("selection") or {}).get("name") or self.cfg.protocol.selections[0])
        state = read_run_json(self.run_dir / "artifacts" / "featurizer.json")
        cache = EmbeddingCache(resolve_cache_dir(cache_dir) / "embeddings")
        self.featurizer = make_featurizer_from_icd(self.cfg, IcdHierarchy.from_json(state["icd"]), cache)
        try:
            self.featurizer.vocab_ = {str(k): int(v) for k, v in state["selections"][self.selection]["vocab"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"no vocabulary for selection {self.selection!r}",
                            file=self.run_dir / "artifacts" / "featurizer.json", field="selections") from None
        self.threshold = _mean_threshold(self.metrics, self.run_dir / "metrics.json")
        self.skips: dict[str, Any] = {}

    def read_input(self, path: Path) -> list[Record]:
        records, skips = read_top_csv(Path(path), require_label=False, icd=self.featurizer.icd)
        self.skips = skips.to_dict()
        return records

    def predict(self, records: Any) -> pd.DataFrame:
        from polymodal.training import predict_scores  # Lightning: imported only when needed

        if isinstance(records, pd.DataFrame):  # a frame in the input format: validated like a file
            records = self._records_from_frame(records)
        frame = pd.DataFrame({"id": [r.id for r in records], "score": np.zeros(len(records))})
        if records:
            features = self.featurizer.transform(records)
            dataset = FeatureDataset(features, np.zeros(len(features)))  # targets unused: outcomes unknown
            collator = Collator(self.featurizer.modalities, self.featurizer.max_len)
            scores = [predict_scores(self._model(seed), dataset, collator) for seed in range(self.cfg.protocol.seeds)]
            frame["score"] = np.mean(scores, axis=0)  # (N,)
        frame["decision"] = (frame["score"] >= self.threshold).astype(int)
        return frame

    def example_input(self, n: int = 5) -> pd.DataFrame:
        rows = read_run_json(self.run_dir / "artifacts" / "example_input.json")
        return pd.DataFrame(rows["rows"] if isinstance(rows, dict) else rows).head(n)

    def _records_from_frame(self, frame: pd.DataFrame) -> list[Record]:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "input.csv"
            frame.to_csv(path, index=False)
            return self.read_input(path)

    def _model(self, seed: int) -> MultimodalModel:
        from polymodal.io import load_torch_file

        path = self.run_dir / "jobs" / self.selection / f"seed_{seed}" / "mexa-ctp" / "model.pt"
        model = build_model(self.cfg, self.featurizer)
        model.load_state_dict(load_torch_file(path))
        return model


def make_featurizer_from_icd(cfg: MexaCtpConfig, icd: IcdHierarchy, cache: EmbeddingCache) -> TrialFeaturizer:
    molecule = MiniMolEncoder() if cfg.molecule_encoder == "minimol" else MorganEncoder(radius=2, n_bits=1024)
    return TrialFeaturizer(
        SentenceTextEncoder(cfg.text_model), molecule, icd, cache, max_inclusion=cfg.max_inclusion,
        max_exclusion=cfg.max_exclusion, max_drugs=cfg.max_drugs, max_codes=cfg.max_codes,
        disease_text=cfg.disease_text, drug_text=cfg.drug_text,
    )


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
        build=build,
        predictor=TrialPredictor,
        data_licence="TOP benchmark: non-commercial academic use only",
        published=PUBLISHED,
        deviations=DEVIATIONS,
    )
)
