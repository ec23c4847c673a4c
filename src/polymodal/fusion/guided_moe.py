"""Guided soft mixture of experts (UMPSNet's GMoE): one model for several cancer types.

Every expert sees the fused multimodal vector; a soft gate (no top-k: all experts contribute)
weights them. The gate is *guided*: it reads the guide modality (the cancer-type sentence) beside
the fused vector, and an auxiliary classifier on the gate logits predicts the sample's group
(cancer type), trained with cross-entropy (UMPSNet's "data loss"), so experts specialise by
cancer type while sharing what cancers have in common. A cancer type never seen in training still
gets a gate, from the embedding of its name.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from polymodal.data.schema import Tokens
from polymodal.fusion.base import masked_mean

__all__ = ["GuidedMoEFusion", "GuidedSoftMoE"]


class GuidedSoftMoE(nn.Module):
    """x (B, F) and guide (B, G) -> (B, out_dim), with gate and group logits.

    Args:
        in_dim: size F of the fused vector.
        guide_dim: size G of the guide vector.
        out_dim: output size.
        n_experts: number of experts (UMPSNet: 10).
        n_groups: classes of the auxiliary group classifier (cancer types seen in training).
        dropout: dropout inside each expert.
    """

    def __init__(self, in_dim: int, guide_dim: int, out_dim: int, *, n_experts: int = 10, n_groups: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.out_dim, self.n_experts = out_dim, n_experts
        # All experts (Linear -> ReLU -> Dropout each) as one wide Linear: the same function as a list
        # of separate experts, in one matrix product instead of n_experts small ones.
        self.experts = nn.Linear(in_dim, n_experts * out_dim)
        for k in range(n_experts):  # each expert's block keeps nn.Linear's default init for its own fan-in
            block = nn.Linear(in_dim, out_dim)
            self.experts.weight.data[k * out_dim : (k + 1) * out_dim] = block.weight.data
            self.experts.bias.data[k * out_dim : (k + 1) * out_dim] = block.bias.data
        self.expert_dropout = nn.Dropout(dropout)
        self.gate = nn.Linear(in_dim + guide_dim, n_experts)
        self.group_head = nn.Linear(n_experts, n_groups)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gate_logits = self.gate(torch.cat([x, guide], dim=-1))  # (B, E)
        weights = torch.softmax(gate_logits, dim=-1)  # (B, E)
        outs = self.expert_dropout(torch.relu(self.experts(x))).view(len(x), self.n_experts, -1)  # (B, E, out_dim)
        mixed = (weights.unsqueeze(-1) * outs).sum(1)  # (B, out_dim)
        return mixed, {"gate": weights, "group_logits": self.group_head(gate_logits)}


class GuidedMoEFusion(nn.Module):
    """A base fusion followed by a :class:`GuidedSoftMoE` guided by one modality's mean token.

    Args:
        base: any fusion (dict of Tokens -> (B, base.out_dim)).
        guide: the guide modality (its tokens are mean-pooled; zeros when missing).
        guide_dim: token size of the guide modality.
        out_dim: output size.
        n_experts: experts of the mixture.
        n_groups: groups of the auxiliary classifier.
        dropout: dropout inside each expert.
    """

    def __init__(self, base: nn.Module, guide: str, guide_dim: int, out_dim: int, *, n_experts: int = 10,
                 n_groups: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.base, self.guide = base, guide
        self.moe = GuidedSoftMoE(base.out_dim, guide_dim, out_dim, n_experts=n_experts, n_groups=n_groups,
                                 dropout=dropout)
        self.out_dim = out_dim

    def forward_with_aux(self, tokens: Mapping[str, Tokens]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fused = self.base(tokens)  # (B, F)
        return self.moe(fused, masked_mean(tokens[self.guide]))

    def forward(self, tokens: Mapping[str, Tokens]) -> torch.Tensor:
        return self.forward_with_aux(tokens)[0]
