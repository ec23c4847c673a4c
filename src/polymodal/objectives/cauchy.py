"""The Cauchy loss on router gate probabilities (MEXA-CTP)."""

from __future__ import annotations

import torch
from torch import nn


class CauchyGateLoss(nn.Module):
    """``{"cauchy": mean log(1 + (p / eps)^2)}`` over real tokens of every gate.

    The Cauchy (Lorentzian) penalty pushes router probabilities towards zero, but grows only
    logarithmically, so a gate that the task needs open is not forced shut: a robust sparsity
    prior on which tokens each mode expert listens to.

    Args:
        epsilon: scale of the Cauchy kernel (MEXA-CTP default 0.5).
    """

    def __init__(self, epsilon: float = 0.5) -> None:
        super().__init__()
        if epsilon <= 0:
            raise ValueError("epsilon must be positive")
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, aux: dict | None = None) -> dict[str, torch.Tensor]:
        gates = (aux or {}).get("gates", [])
        total = logits.new_zeros(())
        for prob, mask in gates:  # prob (B, T), mask (B, T)
            penalty = torch.log1p((prob / self.epsilon) ** 2)
            total = total + (penalty * mask).sum() / mask.sum().clamp(min=1)
        return {"cauchy": total}
