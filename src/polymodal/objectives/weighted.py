"""A weighted sum of named loss parts."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class WeightedSum(nn.Module):
    """Calls every objective, keeps each named part, and adds ``loss`` = sum of weight * part.

    Args:
        objectives: name -> (loss module, weight). A loss module maps (logits, targets, aux) to a
            dict of named scalar parts.
    """

    def __init__(self, objectives: Mapping[str, tuple[nn.Module, float]]) -> None:
        super().__init__()
        self.losses = nn.ModuleDict({name: module for name, (module, _) in objectives.items()})
        self.weights = {name: float(weight) for name, (_, weight) in objectives.items()}

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, aux: dict | None = None) -> dict[str, torch.Tensor]:
        parts: dict[str, torch.Tensor] = {}
        total = logits.new_zeros(())
        for name, module in self.losses.items():
            for part, value in module(logits, targets, aux).items():
                parts[part] = value
                total = total + self.weights[name] * value
        parts["loss"] = total
        return parts
