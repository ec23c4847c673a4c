"""The generic multimodal model: per-modality encoders -> fusion -> head -> one logit per sample."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

from polymodal.data.schema import Tokens


class ModelOutput(NamedTuple):
    logits: torch.Tensor  # (B,) or (B, K)
    aux: dict[str, object]  # what the fusion exposes for auxiliary objectives


class MultimodalModel(nn.Module):
    """A plain nn.Module: it receives dimensions and parts, never datasets.

    Args:
        encoders: modality -> Encoder (Tokens -> Tokens with ``out_dim``).
        fusion: Fusion ((dict of Tokens) -> (B, fusion.out_dim)).
        head: (B, fusion.out_dim) -> (B, out) logits; out == 1 is squeezed to (B,).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.head = head

    @property
    def modalities(self) -> list[str]:
        return sorted(self.encoders.keys())

    def forward(self, features: Mapping[str, Tokens]) -> ModelOutput:
        missing = [m for m in self.modalities if m not in features]
        if missing:
            raise KeyError(f"batch lacks modalities {missing}; pass Tokens with an all-False mask instead")
        tokens = {m: self.encoders[m](features[m]) for m in self.modalities}
        if hasattr(self.fusion, "forward_with_aux"):
            fused, aux = self.fusion.forward_with_aux(tokens)
        else:
            fused, aux = self.fusion(tokens), {}
        logits = self.head(fused)  # (B, out)
        if logits.shape[-1] == 1:
            logits = logits.squeeze(-1)  # (B,)
        return ModelOutput(logits, aux)
