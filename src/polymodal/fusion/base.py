"""The fusion contract and helpers shared by operators."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import torch

from polymodal.data.schema import Tokens


@runtime_checkable
class Fusion(Protocol):
    """``forward(tokens) -> (B, out_dim)``; every modality may be missing for any sample.

    Operators that produce auxiliary outputs for their objectives (gate probabilities, paired
    expert summaries) also implement ``forward_with_aux(tokens) -> (fused, aux)``.
    """

    out_dim: int

    def __call__(self, tokens: Mapping[str, Tokens]) -> torch.Tensor: ...


def masked_mean(tokens: Tokens) -> torch.Tensor:
    """(B, T, D) -> (B, D) mean over real tokens; zeros where the modality is missing."""
    weights = tokens.mask.unsqueeze(-1).to(tokens.values.dtype)  # (B, T, 1)
    return (tokens.values * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def masked_sum(tokens: Tokens) -> torch.Tensor:
    """(B, T, D) -> (B, D) sum over real tokens; zeros where the modality is missing."""
    return (tokens.values * tokens.mask.unsqueeze(-1).to(tokens.values.dtype)).sum(1)
