"""Training LiT-style projection heads on cached features (plain PyTorch: the model is tiny).

A Lightning loop costs more per step than these heads do, so this is a short explicit loop with
early stopping on a validation score; nothing here sees test data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from polymodal.encoders.image_text import ImageTextProjector
from polymodal.objectives.image_text import clip_loss, masked_bce, prompt_pair_logits
from polymodal.training.best_weights import BestWeights


@dataclass
class ImageTextSet:
    """One split as arrays.

    Attributes:
        image: (N, Di) frozen image features.
        caption_ids: (N,) row of each image's caption in :attr:`PromptBank.captions`.
        concepts: (N, K) concept labels, NaN where unannotated.
        melanoma: (N,) 0/1 diagnosis labels.
    """

    image: np.ndarray
    caption_ids: np.ndarray
    concepts: np.ndarray
    melanoma: np.ndarray


@dataclass
class PromptBank:
    """Frozen text features of every prompt: captions (C, Dt), criterion pairs (K, Dt) x 2, diagnoses (2, Dt)."""

    captions: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    diagnosis: np.ndarray  # row 0: melanoma description, row 1: benign description


@dataclass(frozen=True)
class FitOptions:
    """Hyper-parameters of :func:`fit_image_text`."""

    dim: int = 256
    hidden: int = 0
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 20
    concept_weight: float = 1.0
    diagnosis_weight: float = 0.0  # 0: the diagnosis is never a training signal (zero-shot matching)
    select: Literal["concepts", "melanoma"] = "concepts"


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


@torch.no_grad()
def score_image_text(model: ImageTextProjector, image: np.ndarray, prompts: PromptBank) -> dict[str, np.ndarray]:
    """Description-matching scores.

    Returns:
        ``concept_logits`` (N, K): positive-vs-negative prompt logit per criterion;
        ``melanoma_logit`` (N,): melanoma-vs-benign description logit.
    """
    model.eval()
    img = model.embed_image(_t(image))
    concept = prompt_pair_logits(img, model.embed_text(_t(prompts.positive)), model.embed_text(_t(prompts.negative)),
                                 model.scale)
    diag = model.embed_text(_t(prompts.diagnosis))
    mel = prompt_pair_logits(img, diag[:1], diag[1:], model.scale)[:, 0]
    return {"concept_logits": concept.numpy(), "melanoma_logit": mel.numpy()}


def mean_concept_auc(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean ROC-AUC over criteria with both classes among annotated samples (NaN if none)."""
    aucs = []
    for k in range(labels.shape[1]):
        known = ~np.isnan(labels[:, k])
        y = labels[known, k]
        if y.size and 0 < y.sum() < y.size:
            aucs.append(roc_auc_score(y, logits[known, k]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _selection_score(model: ImageTextProjector, valid: ImageTextSet, prompts: PromptBank, select: str) -> float:
    scores = score_image_text(model, valid.image, prompts)
    if select == "melanoma":
        return float(roc_auc_score(valid.melanoma, scores["melanoma_logit"]))
    return mean_concept_auc(valid.concepts, scores["concept_logits"])


def fit_image_text(train: ImageTextSet, valid: ImageTextSet, prompts: PromptBank, options: FitOptions,
                   seed: int) -> tuple[ImageTextProjector, dict[str, object]]:
    """Train the projection heads; keep the epoch with the best validation score.

    Loss = CLIP loss on (image, caption) + ``concept_weight`` x BCE of criterion prompt matching
    + ``diagnosis_weight`` x BCE of diagnosis description matching.

    Returns:
        The best model (eval mode) and a history dict (best epoch, validation scores).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ImageTextProjector(train.image.shape[1], prompts.captions.shape[1], options.dim, options.hidden,
                               options.dropout)
    image, concepts, melanoma = _t(train.image), _t(train.concepts), _t(train.melanoma)
    model.set_image_stats(image.mean(dim=0), image.std(dim=0))
    optimiser = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    caption_ids = torch.as_tensor(train.caption_ids, dtype=torch.long)
    captions, pos, neg, diag = (_t(prompts.captions), _t(prompts.positive), _t(prompts.negative),
                                _t(prompts.diagnosis))
    tracker = BestWeights(model, options.patience)
    for epoch in range(options.max_epochs):
        model.train()
        order = rng.permutation(len(image))
        for start in range(0, len(order), options.batch_size):
            idx = torch.as_tensor(order[start : start + options.batch_size])
            if len(idx) < 2:
                continue  # InfoNCE needs a negative
            img = model.project_image(image[idx])  # (b, d)
            loss = clip_loss(img, model.text_head(captions[caption_ids[idx]]), model.scale, caption_ids[idx])
            if options.concept_weight:
                logits = prompt_pair_logits(img, model.text_head(pos), model.text_head(neg), model.scale)  # (b, K)
                loss = loss + options.concept_weight * masked_bce(logits, concepts[idx])
            if options.diagnosis_weight:
                d = model.text_head(diag)
                mel = prompt_pair_logits(img, d[:1], d[1:], model.scale)[:, 0]  # (b,)
                loss = loss + options.diagnosis_weight * masked_bce(mel[:, None], melanoma[idx, None])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if tracker.update(_selection_score(model, valid, prompts, options.select), epoch):
            break
    tracker.restore().eval()
    return model, {"best_epoch": tracker.best_epoch, "best_valid": float(tracker.best), "epochs": len(tracker.history),
                   "select": options.select}
