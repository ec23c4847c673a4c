"""Attention blocks that stay finite when every key of a sample is masked (a missing modality)."""

from __future__ import annotations

import torch
from torch import nn


class MaskedAttentionBlock(nn.Module):
    """Post-norm attention + feed-forward block with a learned "null" key.

    A learned null key/value is appended to every memory, so a query always has something to
    attend to: when the memory modality is missing the block returns a learned "nothing here"
    update instead of NaN (nn.MultiheadAttention yields NaN for an all-masked key row).

    Args:
        dim: token size D.
        heads: attention heads (D must divide by it).
        dropout: dropout on attention weights and residual branches.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.null = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm1 = nn.LayerNorm(dim)
        hidden = max(1, dim // 2)  # MEXA-CTP's feed-forward halves the width
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """queries (B, Tq, D), memory (B, Tm, D), memory_mask (B, Tm) True = real -> (B, Tq, D)."""
        b = memory.shape[0]
        keys = torch.cat([memory, self.null.expand(b, 1, -1)], dim=1)  # (B, Tm+1, D)
        key_real = torch.cat([memory_mask, memory_mask.new_ones(b, 1)], dim=1)  # (B, Tm+1)
        attended, _ = self.attn(queries, keys, keys, key_padding_mask=~key_real, need_weights=False)
        x = self.norm1(queries + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ffn(x)))
