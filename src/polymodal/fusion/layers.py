"""Attention blocks that stay finite when every key of a sample is masked (a missing modality)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedAttentionBlock(nn.Module):
    """Post-norm multi-head attention + feed-forward block with a learned "null" key/value.

    The null slot is appended to every memory, so a query always has something to attend to:
    when the memory modality is missing the block returns a learned "nothing here" update
    instead of NaN (softmax over an all-masked row is undefined). It calls
    ``scaled_dot_product_attention`` directly: with tokens this small the cost is per-op overhead,
    and this does a third of the operator calls of ``nn.MultiheadAttention``.

    Args:
        dim: token size D (divisible by ``heads``).
        heads: attention heads.
        dropout: dropout on attention weights and residual branches.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.dropout_p = dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.null = nn.Parameter(torch.zeros(1, 1, 2 * dim))
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        hidden = max(1, dim // 2)  # MEXA-CTP's feed-forward halves the width
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """queries (B, Tq, D), memory (B, Tm, D), memory_mask (B, Tm) True = real -> (B, Tq, D)."""
        b, tq, d = queries.shape
        h, dh = self.heads, d // self.heads
        q = self.query(queries).view(b, tq, h, dh).transpose(1, 2)  # (B, H, Tq, dh)
        kv = torch.cat([self.key_value(memory), self.null.expand(b, 1, -1)], dim=1)  # (B, Tm+1, 2D)
        k, v = kv.view(b, -1, 2, h, dh).permute(2, 0, 3, 1, 4)  # each (B, H, Tm+1, dh)
        real = torch.cat([memory_mask, memory_mask.new_ones(b, 1)], dim=1)  # (B, Tm+1)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=real[:, None, None, :], dropout_p=self.dropout_p if self.training else 0.0
        )  # (B, H, Tq, dh)
        attended = self.out(attended.transpose(1, 2).reshape(b, tq, d))  # (B, Tq, D)
        x = self.norm1(queries + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ffn(x)))
