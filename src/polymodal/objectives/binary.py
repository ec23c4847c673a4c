"""Binary cross-entropy on logits, optionally weighted for class imbalance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BinaryCrossEntropy(nn.Module):
    """``{"bce": loss}`` from logits (B,) and targets (B,) in {0, 1}.

    Args:
        pos_weight: weight of positive examples; MEXA-CTP's "weighted" mode uses n_neg / n_pos
            of the training split (computed from data, not hard-coded per phase as upstream).
    """

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, aux: dict | None = None) -> dict[str, torch.Tensor]:
        weight = None if self.pos_weight is None else logits.new_tensor(self.pos_weight)
        return {"bce": F.binary_cross_entropy_with_logits(logits, targets.float(), pos_weight=weight)}
