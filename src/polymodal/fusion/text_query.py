"""Text-as-query cross-attention over series patches (TextFusionHTS's fusion).

The pooled text embedding goes through an MLP and becomes the single query of a multi-head
attention whose keys and values are the series patch tokens; the output is one vector per sample.
When a sample has no visible text, a learned null query takes its place, so the same module is
the text-free model (the learned query is then plain attention pooling).

With ``residual=True`` (our default) the query is also added to the attention output. Without it
the text can only re-weight the patches: the output is a convex combination of patch values, so
a text saying "the next value jumps" cannot move the forecast at all.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from polymodal.data.schema import Tokens
from polymodal.fusion.base import masked_mean


class TextQueryFusion(nn.Module):
    """{"series": (B, P, D), "text": (B, K, D_txt)} -> (B, D).

    Args:
        series_dim: D, the patch token width (the output width too).
        text_dim: D_txt, the text token width.
        hidden: the text MLP's width (TextFusionHTS: 768).
        heads: attention heads (D must be divisible).
        residual: add the query to the attention output (TextFusionHTS: no).
        series_key, text_key: the modality names.
    """

    def __init__(self, series_dim: int, text_dim: int, hidden: int = 128, heads: int = 4,
                 residual: bool = True, series_key: str = "series", text_key: str = "text") -> None:
        super().__init__()
        if series_dim % heads:
            raise ValueError(f"series_dim {series_dim} not divisible by heads {heads}")
        self.series_key, self.text_key, self.heads, self.residual = series_key, text_key, heads, residual
        self.out_dim = series_dim
        # TextFusionHTS: Linear(d_txt, 768) then MLP(768 -> 768 -> 768), then the query projection.
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, hidden), nn.Linear(hidden, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden))
        self.query = nn.Linear(hidden, series_dim)
        self.null_query = nn.Parameter(torch.randn(series_dim) * 0.02)
        self.key = nn.Linear(series_dim, series_dim)
        self.value = nn.Linear(series_dim, series_dim)

    def forward(self, tokens: Mapping[str, Tokens]) -> torch.Tensor:
        series, text = tokens[self.series_key], tokens[self.text_key]
        b, p, d = series.values.shape
        q = self.query(self.text_mlp(masked_mean(text)))  # (B, D)
        q = torch.where(text.present.unsqueeze(-1), q, self.null_query.expand(b, d))  # (B, D)
        heads, dh = self.heads, d // self.heads
        query = q
        q = q.view(b, heads, 1, dh)  # (B, h, 1, dh)
        k = self.key(series.values).view(b, p, heads, dh).transpose(1, 2)  # (B, h, P, dh)
        v = self.value(series.values).view(b, p, heads, dh).transpose(1, 2)  # (B, h, P, dh)
        mask = series.mask[:, None, None, :]  # (B, 1, 1, P)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, 1, dh)
        out = out.reshape(b, d)  # (B, D)
        return out + query if self.residual else out
