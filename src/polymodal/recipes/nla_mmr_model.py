"""The NLA-MMR model and its options (the recipe, :mod:`polymodal.recipes.nla_mmr`, assembles the run).

Kept apart from the recipe so that the predictor (:mod:`polymodal.recipes.nla_mmr_predict`) can
rebuild a saved model without importing the recipe: imports flow recipe -> predictor -> model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from polymodal.config import ProtocolConfig, TrainConfig
from polymodal.encoders.trainable import ResidualProjection
from polymodal.fusion.layers import MaskedAttentionBlock
from polymodal.io import atomic_path
from polymodal.tasks.medication import MedicationViews, VisitBatch

__all__ = ["DROPPABLE", "FROZEN_BUFFERS", "NlaMmrConfig", "NlaMmrModel", "save_weights"]

DROPPABLE = ("procedures", "drug_structure", "drug_text")


class NlaMmrConfig(BaseModel):
    """NLA-MMR defaults; unknown keys are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["mimic3", "mimic4"] = "mimic3"
    mimic_dir: str | None = None  # default: DATA_DIR/mimic_iii_demo_1.4 (mimic3) or DATA_DIR (mimic4)
    # folder holding safedrug_drug_tables/ and drug_vocab_ethos/; default DATA_DIR if it has them, else
    # $POLYMODAL_DATA (so `--source mimic4 --data-dir MIMIC_IV_DIR` finds the shared drug tables)
    drug_dir: str | None = None
    text_model: str = "sentence-transformers/all-MiniLM-L6-v2"  # or "hashing" (model-free, for tests)
    dim: int = 64
    heads: int = 4
    dropout: float = 0.2
    temperature: float = 0.1  # of the patient-medication cosine similarity
    align_weight: float = 0.1
    # SafeDrug's controllable loss. None: the DDI rate of the training visits' true sets (SafeDrug
    # fixes 0.06 for full MIMIC-III; with a target below the clinicians' own rate the controller
    # turns the accuracy terms off for most batches, and the demo's true rate is about 0.075).
    target_ddi: float | None = None
    kp: float = 0.05
    max_visits: int = 10
    # SafeDrug's frequency filters, fitted on each training fold (never on its test patients)
    top_meds: int = 300
    top_diagnoses: int = 2000
    drug_fallbacks: bool = True  # map NDCs missing from the NDC table by GSN, then drug name
    cohorts: tuple[Literal["safedrug", "all-admissions"], ...] = ("safedrug", "all-admissions")
    # which trained NLA-MMR models the run folder keeps for `polymodal predict` (about 3 MB each, mostly the
    # 1024-bit structure projection, beside the fold's vocabularies and medication views): "first-seed" = one
    # per fold and repeat (5 per cohort by default), "all" = every seed too, "none" = predict is unavailable
    save_models: Literal["first-seed", "all", "none"] = "first-seed"
    folds: int = Field(5, ge=3)  # patient-level folds per repeat (test fold, next fold = validation)
    # repeated CV with reshuffled patients; 1 by default so that `polymodal run nla-mmr` (3 seeds x
    # 5 folds x 2 cohorts x 3 neural models) stays under 10 minutes on 2 busy cores; --repeats 2 doubles it
    repeats: int = Field(1, ge=1)
    # One intra-op thread: the models are tiny, so more threads only add synchronisation on a busy
    # 2-core machine. Early stopping on validation PR-AUC (visit-averaged).
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_epochs=40, patience=8, batch_size=16,
                                                                   lr=2e-3, weight_decay=1e-4, threads=1))
    # seeds, n_boot, baselines and robustness are used; selection is always on the validation fold and
    # the threshold maximises validation Jaccard (threshold_rule, selections and temporal_* do not apply).
    protocol: ProtocolConfig = Field(default_factory=lambda: ProtocolConfig(seeds=3, selections=("valid",)))


class NlaMmrModel(nn.Module):
    """Patient view (code texts -> visits -> history) aligned with the medication view (structure + text).

    Args:
        code_text: (C + 1, T) frozen text embedding of each code id (row 0 = padding, zeros).
        views: frozen medication features in label order.
        dim: width D. heads: attention heads. dropout: dropout rate. temperature: of the similarity.
    """

    def __init__(self, code_text: np.ndarray, views: MedicationViews, dim: int = 64, heads: int = 4,
                 dropout: float = 0.2, temperature: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("code_text", torch.as_tensor(code_text, dtype=torch.float32))  # (C+1, T)
        self.register_buffer("med_structure", torch.as_tensor(views.structure, dtype=torch.float32))  # (L, F)
        self.register_buffer("has_structure", torch.as_tensor(views.has_structure, dtype=torch.float32))  # (L,)
        self.register_buffer("med_text", torch.as_tensor(views.text, dtype=torch.float32))  # (L, T)
        self.code_proj = nn.Linear(self.code_text.shape[1], dim)
        self.code_type = nn.Embedding(2, dim)  # diagnosis / procedure
        self.visit_query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.visit_pool = MaskedAttentionBlock(dim, heads, dropout)
        self.history = nn.GRU(dim, dim, batch_first=True)
        self.patient_out = ResidualProjection(dim, dim, dropout)
        self.structure_proj = ResidualProjection(self.med_structure.shape[1], dim, dropout)
        self.text_proj = ResidualProjection(self.med_text.shape[1], dim, dropout)
        self.bias = nn.Parameter(torch.zeros(self.med_text.shape[0]))
        self.dropout = nn.Dropout(dropout)
        self.temperature = temperature

    def patient(self, batch: VisitBatch, drop: frozenset[str] = frozenset()) -> torch.Tensor:
        """(B, D) patient representation at each sample's last visit."""
        proc = torch.zeros_like(batch.proc) if "procedures" in drop else batch.proc
        ids = torch.cat([batch.diag, proc], dim=2)  # (B, V, T)
        kind = torch.cat([torch.zeros_like(batch.diag), torch.ones_like(proc)], dim=2)
        b, v, t = ids.shape
        tokens = self.code_proj(self.code_text[ids]) + self.code_type(kind)  # (B, V, T, D)
        tokens = self.dropout(tokens).reshape(b * v, t, -1)
        real = (ids > 0).reshape(b * v, t)
        # attention says which codes matter together; the masked sum keeps how many are present
        # (a softmax average alone dilutes one decisive code among many)
        pooled = self.visit_pool(self.visit_query.expand(b * v, 1, -1), tokens, real).squeeze(1)  # (B*V, D)
        summed = (tokens * real[..., None]).sum(dim=1)  # (B*V, D)
        visits = (pooled + summed).reshape(b, v, -1)  # (B, V, D)
        h, _ = self.history(visits)  # (B, V, D); left-aligned, so padding comes after the last visit
        last = batch.visit_mask.long().sum(dim=1).clamp_min(1) - 1
        return self.patient_out(h[torch.arange(b), last])  # (B, D)

    def medications(self, drop: frozenset[str] = frozenset()) -> torch.Tensor:
        """(L, D): the mean of the available views of each medication."""
        w_struct = self.has_structure * (0.0 if "drug_structure" in drop else 1.0)  # (L,)
        w_text = torch.full_like(w_struct, 0.0 if "drug_text" in drop else 1.0)
        total = (w_struct + w_text).clamp_min(1.0)[:, None]
        return (w_struct[:, None] * self.structure_proj(self.med_structure)
                + w_text[:, None] * self.text_proj(self.med_text)) / total

    def forward(self, batch: VisitBatch, drop: frozenset[str] = frozenset()) -> tuple[torch.Tensor, dict]:
        patient = F.normalize(self.patient(batch, drop), dim=-1)  # (B, D)
        meds = F.normalize(self.medications(drop), dim=-1)  # (L, D)
        similarity = patient @ meds.T / self.temperature  # (B, L)
        return similarity + self.bias, {"similarity": similarity}


# Frozen inputs of NlaMmrModel: rebuilt from the fold's medications.npz and code texts, so not in the saved weights
FROZEN_BUFFERS = ("code_text", "med_structure", "has_structure", "med_text")


def save_weights(model: nn.Module, path: Path) -> None:
    """The trained weights of a model without its frozen inputs, as a state dict (atomically)."""
    state = {k: v for k, v in model.state_dict().items() if k not in FROZEN_BUFFERS}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
