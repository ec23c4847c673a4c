"""Cross-task attention: one task's representation attends over the task representations (arXiv 2501.06215).

The MEIJU 2025 Track I winner (Li et al., "Fitting Different Interactive Information: Joint
Classification of Emotion and Intention") found intent the easier task and let the tasks interact
through attention heads over a shared encoder, with a gated merge. Here, written from the paper's
description (no code of theirs): the *target* (harder) task's vector is the query; the keys and values
are the target's and the *helper* (easier) task's vectors; a sigmoid gate computed from the query and
the attended vector decides how much of it is added to the query (a gated residual), so the helper can
only add information and the layer can learn to ignore it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CrossTaskAttention"]


class CrossTaskAttention(nn.Module):
    """Gated multi-head attention of a target task's vector over [target, helper] task vectors.

    Args:
        dim: width H of each task vector.
        heads: attention heads (``dim`` must be divisible by it).
        dropout: dropout on the attention weights.
    """

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.gate = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, target: torch.Tensor, helper: torch.Tensor) -> torch.Tensor:
        """Return the target vector enriched by the helper.

        Args:
            target: (B, H) the harder task's representation (query).
            helper: (B, H) the easier task's representation.

        Returns:
            (B, H) the updated target representation.
        """
        query = target.unsqueeze(1)  # (B, 1, H)
        memory = torch.stack([target, helper], dim=1)  # (B, 2, H)
        attended, _ = self.attn(query, memory, memory, need_weights=False)  # (B, 1, H)
        attended = attended.squeeze(1)  # (B, H)
        gate = torch.sigmoid(self.gate(torch.cat([target, attended], dim=-1)))  # (B, H)
        return self.norm(target + gate * attended)
