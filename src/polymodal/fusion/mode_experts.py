"""Mode-experts cross-attention fusion (MEXA-CTP, arXiv 2501.06823).

For every ordered pair of modalities (a, b) a router scores each token of a; the gated tokens of
a query the tokens of b through cross-attention ("the a-b expert"). Optional per-modality
self-attention experts join them; a shared self-attention stack ("compensation") mixes all
expert tokens, and a masked sum pools them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import permutations

import torch
from torch import nn

from polymodal.data.schema import Tokens
from polymodal.encoders.trainable import ResidualProjection
from polymodal.fusion.base import masked_mean, masked_sum
from polymodal.fusion.layers import MaskedAttentionBlock


class ModeExpertsFusion(nn.Module):
    """dict of M modality Tokens (B, T_m, D) -> (B, D).

    Args:
        modalities: modality names (sorted internally, so the order of the dict never matters).
        dim: token size D (every encoder must output D).
        heads: attention heads.
        layers: depth of each self-, cross- and compensation stack.
        dropout: attention and residual dropout.
        gate_threshold: tokens whose router probability is below it are masked out of their
            expert (MEXA-CTP's re-masking); 0 disables it. The gates stay differentiable because
            they also scale the queries.
        self_experts: also pass each modality's self-attended tokens to the compensation stack.
    """

    def __init__(self, modalities: Sequence[str], dim: int, *, heads: int = 2, layers: int = 2,
                 dropout: float = 0.0, gate_threshold: float = 0.0, self_experts: bool = True) -> None:
        super().__init__()
        self.modalities = sorted(modalities)
        if len(self.modalities) < 2:
            raise ValueError("mode experts need at least two modalities")
        self.out_dim = dim
        self.gate_threshold = gate_threshold
        self.self_experts = self_experts
        self.pairs = list(permutations(self.modalities, 2))

        def stack() -> nn.ModuleList:
            return nn.ModuleList(MaskedAttentionBlock(dim, heads, dropout) for _ in range(layers))

        # ModuleDicts so every expert is registered and trained (the official code kept the
        # attention stacks in plain dicts, so the optimiser never saw them).
        self.self_attention = nn.ModuleDict({m: stack() for m in self.modalities})
        self.cross_attention = nn.ModuleDict({self._key(a, b): stack() for a, b in self.pairs})
        self.routers = nn.ModuleDict({self._key(a, b): ResidualProjection(dim, 1) for a, b in self.pairs})
        n_experts = len(self.pairs) + (len(self.modalities) if self_experts else 0)
        self.expert_embedding = nn.Parameter(torch.zeros(n_experts, dim))
        nn.init.normal_(self.expert_embedding, std=0.02)
        self.compensation = stack()

    @staticmethod
    def _key(a: str, b: str) -> str:
        return f"{a}__{b}"

    def forward(self, tokens: Mapping[str, Tokens]) -> torch.Tensor:
        return self.forward_with_aux(tokens)[0]

    def forward_with_aux(self, tokens: Mapping[str, Tokens]) -> tuple[torch.Tensor, dict[str, object]]:
        """Returns the fused (B, D) and ``aux``: ``gates`` [(prob (B,T), mask (B,T))] for the
        Cauchy gate loss, ``expert_pairs`` [(pooled_ab (B,D), pooled_ba (B,D), both_present (B,))]
        for the expert-agreement contrastive loss."""
        encoded: dict[str, Tokens] = {}
        for m in self.modalities:
            x, mask = tokens[m].values, tokens[m].mask
            for block in self.self_attention[m]:
                x = block(x, x, mask)  # (B, T_m, D)
            encoded[m] = Tokens(x * mask.unsqueeze(-1), mask)

        experts: dict[tuple[str, str], Tokens] = {}
        gates: list[tuple[torch.Tensor, torch.Tensor]] = []
        for a, b in self.pairs:
            key = self._key(a, b)
            prob = torch.sigmoid(self.routers[key](encoded[a].values)).squeeze(-1)  # (B, T_a)
            gates.append((prob, encoded[a].mask))
            query_mask = encoded[a].mask
            if 0.0 < self.gate_threshold < 1.0:
                query_mask = query_mask & (prob >= self.gate_threshold)
            q = encoded[a].values * prob.unsqueeze(-1)  # (B, T_a, D)
            for block in self.cross_attention[key]:
                q = block(q, encoded[b].values, encoded[b].mask)
            experts[(a, b)] = Tokens(q, query_mask)

        all_tokens = list(experts.values()) + (list(encoded.values()) if self.self_experts else [])
        values = torch.cat(
            [t.values + self.expert_embedding[i] for i, t in enumerate(all_tokens)], dim=1
        )  # (B, sum T, D)
        mask = torch.cat([t.mask for t in all_tokens], dim=1)  # (B, sum T)
        for block in self.compensation:
            values = block(values, values, mask)
        fused = masked_sum(Tokens(values, mask))  # (B, D)

        expert_pairs = []
        for a, b in self.pairs:
            if a < b:
                ab, ba = experts[(a, b)], experts[(b, a)]
                expert_pairs.append((masked_mean(ab), masked_mean(ba), ab.present & ba.present))
        return fused, {"gates": gates, "expert_pairs": expert_pairs}
