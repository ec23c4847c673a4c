"""Late fusion by concatenation of per-modality masked means, with a presence flag each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from polymodal.data.schema import Tokens
from polymodal.fusion.base import masked_mean


class ConcatFusion(nn.Module):
    """[mean(tokens_m), present_m for m in sorted modalities] -> (B, M * (D + 1)).

    The presence flag lets the head tell "missing" apart from "present with a zero mean".

    Args:
        modalities: the modality names it expects (sorted internally).
        dim: token size D shared by every modality.
    """

    def __init__(self, modalities: Sequence[str], dim: int) -> None:
        super().__init__()
        self.modalities = sorted(modalities)
        self.out_dim = len(self.modalities) * (dim + 1)

    def forward(self, tokens: Mapping[str, Tokens]) -> torch.Tensor:
        parts = []
        for m in self.modalities:
            t = tokens[m]
            parts.append(masked_mean(t))  # (B, D)
            parts.append(t.present.unsqueeze(-1).to(t.values.dtype))  # (B, 1)
        return torch.cat(parts, dim=-1)  # (B, M*(D+1))
