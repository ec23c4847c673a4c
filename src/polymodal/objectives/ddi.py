"""Losses for medication-set prediction: multi-label BCE + margin, set-text alignment, and the DDI penalty.

Every module maps ``(logits (B, L), targets (B, L), aux)`` to named scalar parts, like the other
objectives, so :class:`~polymodal.objectives.WeightedSum` can combine them. ``ControlledDdiLoss``
follows SafeDrug's controllable loss: when the batch's predicted DDI rate is above the target, the
weight moves from the accuracy terms to the DDI term in proportion to the excess.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ControlledDdiLoss", "MedicationObjective", "MultiLabelSetLoss", "SetAlignmentLoss", "batch_ddi_rate",
           "expected_ddi"]


def expected_ddi(probs: torch.Tensor, ddi: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum_ij p_i p_j A_ij: the expected number of interacting ordered pairs.

    Args:
        probs: (B, L) medication probabilities. ddi: (L, L) symmetric 0/1 adjacency.
    """
    return torch.einsum("bl,lm,bm->b", probs, ddi, probs).mean()


@torch.no_grad()
def batch_ddi_rate(probs: torch.Tensor, ddi: torch.Tensor, threshold: float = 0.5) -> float:
    """Share of predicted pairs (i < j) that interact, pooled over the batch (SafeDrug's ddi_rate_score)."""
    pred = (probs >= threshold).float()  # (B, L)
    pairs_ddi = torch.einsum("bl,lm,bm->", pred, torch.triu(ddi, diagonal=1), pred)
    k = pred.sum(dim=1)
    pairs = (k * (k - 1) / 2).sum()
    return float(pairs_ddi / pairs) if pairs > 0 else 0.0


class MultiLabelSetLoss(nn.Module):
    """SafeDrug's accuracy terms: ``bce_weight * BCE + (1 - bce_weight) * multilabel margin``."""

    def __init__(self, bce_weight: float = 0.95) -> None:
        super().__init__()
        self.bce_weight = bce_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, aux: dict | None = None) -> dict[str, torch.Tensor]:
        bce = F.binary_cross_entropy_with_logits(logits, targets)
        # multilabel_margin_loss wants, per row, the positive label indices then -1 padding.
        order = torch.argsort(targets, dim=1, descending=True, stable=True)  # (B, L) positives first
        idx = torch.where(torch.gather(targets, 1, order) > 0, order, torch.full_like(order, -1))
        margin = F.multilabel_margin_loss(torch.sigmoid(logits), idx)
        return {"bce": bce, "margin": margin,
                "set": self.bce_weight * bce + (1 - self.bce_weight) * margin}


class SetAlignmentLoss(nn.Module):
    """Patient-medication alignment: multi-positive InfoNCE over the medication vocabulary.

    For every visit, a softmax over the similarity of its patient representation to every
    medication representation, averaged over the visit's true medications (``aux["similarity"]``,
    (B, L), already divided by the temperature; falls back to the logits).
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, aux: dict | None = None) -> dict[str, torch.Tensor]:
        sim = (aux or {}).get("similarity", logits)  # (B, L)
        log_p = torch.log_softmax(sim, dim=1)
        pos = targets / targets.sum(dim=1, keepdim=True).clamp_min(1.0)
        return {"align": -(pos * log_p).sum(dim=1).mean()}


class ControlledDdiLoss(nn.Module):
    """SafeDrug's controllable combination of the set loss and the DDI penalty.

    ``loss = set`` while the batch DDI rate (at threshold 0.5) is at or below ``target``; above it,
    ``loss = beta * set + (1 - beta) * ddi_weight * expected_ddi`` with
    ``beta = max(0, 1 + (target - rate) / kp)``.

    Args:
        ddi: (L, L) adjacency (registered as a buffer).
        target: the DDI rate to stay under (SafeDrug: 0.06).
        kp: the proportional gain (SafeDrug: 0.05).
        ddi_weight: scale of the expected-DDI term (SafeDrug: 0.0005 on a summed, unnormalised term).
        bce_weight: BCE share of the set loss.
    """

    def __init__(self, ddi: torch.Tensor, target: float = 0.06, kp: float = 0.05, ddi_weight: float = 0.0005,
                 bce_weight: float = 0.95) -> None:
        super().__init__()
        self.register_buffer("ddi", ddi.float())
        self.target, self.kp, self.ddi_weight = target, kp, ddi_weight
        self.set_loss = MultiLabelSetLoss(bce_weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, aux: dict | None = None) -> dict[str, torch.Tensor]:
        parts = self.set_loss(logits, targets, aux)
        probs = torch.sigmoid(logits)
        penalty = expected_ddi(probs, self.ddi)
        rate = batch_ddi_rate(probs, self.ddi)
        beta = 1.0 if rate <= self.target else max(0.0, 1.0 + (self.target - rate) / self.kp)
        parts.update(ddi=penalty, ddi_rate=penalty.new_tensor(rate),
                     controlled=beta * parts["set"] + (1 - beta) * self.ddi_weight * penalty * probs.shape[0])
        return parts


class MedicationObjective(nn.Module):
    """The total loss of a medication recommender: controlled set + DDI loss, plus alignment.

    Unlike :class:`~polymodal.objectives.WeightedSum` (which adds every named part), only
    ``controlled`` and ``align`` enter ``loss``; the other parts are reported for logging.

    Args:
        ddi: (L, L) adjacency. align_weight: weight of :class:`SetAlignmentLoss` (0 turns it off).
        **ddi_kwargs: passed to :class:`ControlledDdiLoss` (``target``, ``kp``, ``ddi_weight``, ``bce_weight``).
    """

    def __init__(self, ddi: torch.Tensor, align_weight: float = 0.0, use_ddi: bool = True, **ddi_kwargs: float) -> None:
        super().__init__()
        self.controlled = ControlledDdiLoss(ddi, **ddi_kwargs)
        self.align = SetAlignmentLoss()
        self.align_weight, self.use_ddi = align_weight, use_ddi

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, aux: dict | None = None) -> dict[str, torch.Tensor]:
        parts = self.controlled(logits, targets, aux)
        loss = parts["controlled"] if self.use_ddi else parts["set"]
        if self.align_weight > 0:
            parts.update(self.align(logits, targets, aux))
            loss = loss + self.align_weight * parts["align"]
        parts["loss"] = loss
        return parts
