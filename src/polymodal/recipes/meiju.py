"""meiju: joint emotion and intent classification in low-resource settings with pseudo-labels.

Paper: Li, Zhong, Huang, Yang, "Fitting Different Interactive Information: Joint Classification of
Emotion and Intention", arXiv 2501.06215 (first place, ICASSP 2025 MEIJU challenge, Track I: low
resource). Their system: a shared multimodal encoder (video, audio, text), task representations
that interact through attention heads with a gate (intent, the easier task, helps emotion, the
harder one), and pseudo-labels for unlabelled samples predicted with confidence above 0.99, added
over rounds. Published: joint score 0.5532 on the challenge's own test set (MEIJU25, Track I
Mandarin: TV-series video, audio and Chinese text), which is not available here.

The challenge's joint score is the harmonic mean of the weighted F1 of emotion and of intent
(official baseline, AI-S2-Lab/MEIJU2025-baseline, ``train_baseline.py``; see
``polymodal.evaluation.multitask``). We report it as ``meiju_score`` for whichever two tasks a case has.

What we run instead (text only; audio and video are absent from these copies):
* paired-label case: MELD emotion (7) + sentiment (3) on the same Friends utterances — the
  closest analogue of MEIJU's emotion + intent pair; sentiment (3 classes) plays the easier task;
* unpaired case: MELD emotion + MIntRec2.0 intent (30) in one model, each sample carrying only its
  own corpus's label (missing labels masked in the loss and metrics); intent helps emotion;
* encoders: frozen all-MiniLM-L6-v2 embeddings (through the embedding cache) of the utterance and of
  its preceding dialogue context; the modality set is a config choice (``modalities``); audio or
  video vectors would be further modalities of the same model;
* low resource: k% of the training labels kept (seeded, stratified), the rest treated as unlabelled;
  pseudo-labelling rounds at the paper's 0.99 and at a threshold chosen on validation.

Deviations: see :data:`DEVIATIONS` (also in docs/recipes.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEVIATIONS", "MeijuConfig"]

DEVIATIONS = (
    "Text only: MELD and MIntRec2.0 transcripts; the challenge's video and audio are absent, so the paper's "
    "modality fusion reduces to utterance + dialogue-context vectors (audio/video plug in as further modalities).",
    "English sitcom data (MELD, MIntRec2.0) instead of the challenge's MEIJU25 data; no dataset has both emotion "
    "and intent labels, hence the paired (emotion + sentiment) and unpaired (emotion + intent) cases.",
    "Frozen all-MiniLM-L6-v2 sentence vectors with a trained head instead of fine-tuned large encoders.",
    "Context vector = mean of the earlier utterances' embeddings (context='pooled') by default, not an encoder "
    "pass over the joined context string (context='joined', available), to keep the cold embedding short on CPU.",
    "Cross-task interaction written from the paper's description (gated multi-head attention of the harder "
    "task's vector over [harder, easier]); the authors' exact layer sizes are not reproduced.",
    "Label budgets (5/10/25/100%) are simulated by hiding labels of the official training split.",
    "Pseudo-labels are redrawn each round by the newest model; the validation-chosen threshold is picked at "
    "round 1 from a grid by validation joint score.",
)


class MeijuConfig(BaseModel):
    """Configuration of the meiju recipe (defaults: the paper's where it states them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case: Literal["paired", "unpaired"] = Field(
        "paired", description="paired: MELD emotion + sentiment on the same utterances; unpaired: MELD emotion + "
        "MIntRec2.0 intent, each sample carrying only its own label")
    modalities: tuple[str, ...] = Field(
        ("context", "text"), description="input vectors: 'text' (the utterance) and 'context' (earlier utterances "
        "of the dialogue); 'audio'/'video' are not in these text-only data")
    context: Literal["pooled", "joined"] = Field(
        "pooled", description="context vector: mean of earlier utterances' embeddings, or an encoder pass over the "
        "joined context string")
    context_turns: int = Field(8, ge=0, description="earlier utterances of the dialogue used as context")
    mintrec_version: Literal[1, 2] = Field(2, description="MIntRec version of the unpaired case (2 has dialogues)")
    budgets: tuple[float, ...] = Field((0.05, 0.10, 0.25, 1.0), description="kept shares of the training labels")
    seeds: int = Field(3, ge=1, description="training seeds (each also redraws the kept labels)")
    cross_task: bool = Field(True, description="cross-task attention (easier task helps the harder one)")
    ablation: bool = Field(True, description="also train the no-cross-task ablation (without pseudo-labels)")
    rounds: int = Field(2, ge=0, description="pseudo-labelling rounds (0: none)")
    threshold: float = Field(0.99, gt=0, le=1, description="the paper's pseudo-label confidence threshold")
    threshold_grid: tuple[float, ...] = Field(
        (0.7, 0.9, 0.99), description="candidates of the validation-chosen threshold (empty: skip that variant)")
    hidden: int = Field(128, ge=8, description="width of the shared encoder and task vectors")
    heads: int = Field(4, ge=1, description="attention heads of the cross-task layer")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout in encoder, attention and heads")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    batch_size: int = Field(256, ge=1, description="samples per step")
    max_epochs: int = Field(30, ge=1, description="epoch cap per fit")
    patience: int = Field(4, ge=1, description="epochs without a better validation joint score before stopping")
    baselines: bool = Field(True, description="majority and TF-IDF logistic regression per task")
    tfidf_cs: tuple[float, ...] = Field((0.1, 1.0, 10.0, 100.0), description="C grid of the TF-IDF baseline (dev)")
    n_boot: int = Field(200, ge=10, description="bootstrap resamples (dialogue clusters) for CIs")
    threads: int = Field(1, ge=1, description="torch intra-op threads (1 is fastest for these tiny models)")
