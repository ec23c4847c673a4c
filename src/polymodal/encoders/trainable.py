"""Trainable encoders: features of one modality (B, T, F) -> Tokens (B, T, D)."""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from polymodal.data.schema import Tokens


@runtime_checkable
class Encoder(Protocol):
    """The encoder contract: ``forward(Tokens) -> Tokens`` with ``out_dim`` features per token."""

    out_dim: int

    def __call__(self, features: Tokens) -> Tokens: ...


class ResidualProjection(nn.Module):
    """x -> MLP(x) + shortcut(x); the projection MEXA-CTP puts on every modality and on its head."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = max(1, (in_dim + out_dim) // 2)
        self.main = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )
        self.shortcut = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)  # (..., out_dim)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) fixed sinusoidal position codes (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim + dim % 2)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)
    return table[:, :dim]


class ProjectionEncoder(nn.Module):
    """Frozen-feature tokens -> trainable D-dim tokens, with optional positions.

    Args:
        in_dim: feature size F of the frozen embeddings (384 for MiniLM, 1024 for Morgan bits).
        out_dim: token size D.
        positional: add sinusoidal position codes (for ordered sets such as criteria statements).
        dropout: dropout inside the projection.
    """

    def __init__(self, in_dim: int, out_dim: int, *, positional: bool = False, dropout: float = 0.0,
                 max_positions: int = 512) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.proj = ResidualProjection(in_dim, out_dim, dropout)
        self.norm = nn.LayerNorm(out_dim)
        self.register_buffer(
            "positions", sinusoidal_positions(max_positions, out_dim) if positional else torch.zeros(0),
            persistent=False,
        )

    def forward(self, features: Tokens) -> Tokens:
        x = self.proj(features.values.float())  # (B, T, D)
        if self.positions.numel():
            x = x + self.positions[: x.shape[1]].unsqueeze(0)
        x = self.norm(x) * features.mask.unsqueeze(-1)  # padding stays exactly zero
        return Tokens(x, features.mask)


class CodeAncestorEncoder(nn.Module):
    """Medical codes with their ancestors: (B, T, A) ids -> (B, T, D) tokens.

    Each code token is the mean of the embeddings of the code and its ancestors (id 0 is padding),
    so rare leaf codes borrow strength from their categories, as in GRAM/HINT-style encoders.

    Args:
        vocab_size: number of distinct codes and ancestors, plus 1 for padding id 0.
        out_dim: token size D.
    """

    def __init__(self, vocab_size: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.embedding = nn.Embedding(vocab_size, out_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, features: Tokens) -> Tokens:
        ids = features.values.long()  # (B, T, A)
        present = (ids > 0).float().unsqueeze(-1)  # (B, T, A, 1)
        emb = self.embedding(ids) * present  # (B, T, A, D)
        x = emb.sum(dim=2) / present.sum(dim=2).clamp(min=1.0)  # (B, T, D)
        x = self.norm(self.dropout(x)) * features.mask.unsqueeze(-1)
        return Tokens(x, features.mask)
