"""Contrastive objectives: symmetric InfoNCE, and agreement between paired mode experts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of a (N, D) should match row i of b (N, D) among all rows."""
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = a @ b.T / temperature  # (N, N)
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class ExpertAgreementLoss(nn.Module):
    """``{"contrastive": ...}``: expert a->b and expert b->a of the same trial should agree.

    MEXA-CTP pairs the drug-disease with the disease-drug expert (and likewise for the other
    pairs) in an N-pair loss; here each pair is an in-batch InfoNCE over pooled expert outputs,
    using only samples where both modalities are present.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, aux: dict | None = None) -> dict[str, torch.Tensor]:
        total = logits.new_zeros(())
        for ab, ba, present in (aux or {}).get("expert_pairs", []):
            if int(present.sum()) >= 2:  # InfoNCE needs at least one negative
                total = total + info_nce(ab[present], ba[present], self.temperature)
        return {"contrastive": total}
