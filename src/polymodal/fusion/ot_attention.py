"""Optimal-transport attention (MOTCat / UMPSNet) and a fusion that pools OT-guided token streams.

MOTCat (Xu and Chen, ICCV 2023) replaces co-attention weights by an optimal-transport plan between
the query tokens (genomic families) and the context tokens (slide patches; here also metadata
sentences): the cost is the squared distance of the two sets' features, the plan is solved with
entropic (Sinkhorn) or unbalanced entropic regularisation, and each query token becomes the
plan-weighted mean of the context tokens. As in MOTCat the plan is computed on detached features
(it is a matching, not a path for gradients); the values carry the gradient.

Solvers come from POT: ``ot.batch.solve_batch`` (batched log-domain Sinkhorn, the default) and
``ot.unbalanced.sinkhorn_unbalanced`` (one problem per sample; slower).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import ot
import ot.batch
import torch
from torch import nn

from polymodal.data.schema import Tokens
from polymodal.fusion.layers import MaskedAttentionBlock

__all__ = ["OTAttention", "OTAttentionFusion", "transport_plan"]


def transport_plan(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, reg: float = 0.1,
                   method: Literal["entropic", "unbalanced"] = "entropic", reg_m: float = 0.5,
                   max_iter: int = 100) -> torch.Tensor:
    """Batched OT plans (no gradient): cost (B, N, M), marginals a (B, N) and b (B, M) -> (B, N, M).

    Marginals may hold zeros (padding); each row of ``a`` and ``b`` must sum to 1.
    """
    cost, a, b = cost.detach().double(), a.detach().double(), b.detach().double()
    if method == "entropic":
        plan = ot.batch.solve_batch(cost, reg=reg, a=a, b=b, max_iter=max_iter, method="log_sinkhorn",
                                    grad="detach").plan
    elif method == "unbalanced":
        plan = torch.stack([
            ot.unbalanced.sinkhorn_unbalanced(a[i], b[i], cost[i], reg=reg, reg_m=reg_m, numItermax=max_iter)
            for i in range(cost.shape[0])
        ])
    else:
        raise ValueError(f"method must be 'entropic' or 'unbalanced', got {method!r}")
    return torch.nan_to_num(plan, nan=0.0).float()


class OTAttention(nn.Module):
    """query Tokens (B, Nq, D) over context Tokens (B, Nc, D) -> (B, Nq, D) transport-weighted context.

    Args:
        dim: token size D.
        reg: entropic regularisation (relative to a cost normalised to max 1 per sample).
        method: ``"entropic"`` (balanced Sinkhorn) or ``"unbalanced"`` (KL-relaxed marginals, MOTCat).
        reg_m: marginal relaxation of the unbalanced problem (MOTCat's ``ot_tau``).
        max_iter: Sinkhorn iterations.
    """

    def __init__(self, dim: int, *, reg: float = 0.1, method: Literal["entropic", "unbalanced"] = "entropic",
                 reg_m: float = 0.5, max_iter: int = 100) -> None:
        super().__init__()
        self.reg, self.method, self.reg_m, self.max_iter = reg, method, reg_m, max_iter
        self.value = nn.Linear(dim, dim)

    def forward_with_plan(self, query: Tokens, context: Tokens) -> tuple[Tokens, torch.Tensor]:
        """Returns the attended tokens (mask: query present and context present) and the plan (B, Nq, Nc)."""
        qm, cm = query.mask.float(), context.mask.float()  # (B, Nq), (B, Nc)
        ok = query.present & context.present  # (B,)
        # An absent side gets a dummy uniform marginal so the solver stays well posed; its rows are masked below.
        a = torch.where(ok[:, None], qm, torch.ones_like(qm))
        b = torch.where(ok[:, None], cm, torch.ones_like(cm))
        a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
        cost = torch.cdist(query.values.float(), context.values.float()) ** 2  # (B, Nq, Nc)
        cost = cost / cost.detach().amax(dim=(1, 2), keepdim=True).clamp(min=1e-8)
        plan = transport_plan(cost, a, b, reg=self.reg, method=self.method, reg_m=self.reg_m, max_iter=self.max_iter)
        plan = plan * (qm[:, :, None] * cm[:, None, :])  # (B, Nq, Nc)
        weights = plan / plan.sum(-1, keepdim=True).clamp(min=1e-12)  # rows sum to 1 (attention weights)
        out = weights @ self.value(context.values.float())  # (B, Nq, D)
        mask = query.mask & ok[:, None]
        return Tokens(out * mask.unsqueeze(-1), mask), plan

    def forward(self, query: Tokens, context: Tokens) -> Tokens:
        return self.forward_with_plan(query, context)[0]


class _AttentionPool(nn.Module):
    """Gated attention pooling (MCAT's ``Attn_Net_Gated``) over real tokens: (B, T, D) -> (B, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, 1)

    def forward(self, t: Tokens) -> torch.Tensor:
        score = self.c(torch.tanh(self.a(t.values)) * torch.sigmoid(self.b(t.values))).squeeze(-1)  # (B, T)
        # A finite fill keeps softmax (and its gradient) defined on an all-masked row; padded values are
        # zero, so such a row pools to zeros.
        score = score.masked_fill(~t.mask, torch.finfo(score.dtype).min)
        w = torch.softmax(score, dim=-1)  # (B, T)
        return (w.unsqueeze(-1) * t.values * t.mask.unsqueeze(-1)).sum(1)  # (B, D)


class OTAttentionFusion(nn.Module):
    """MOTCat-style fusion over three streams: the query tokens, the query tokens OT-attended over the
    context, and the context tokens themselves; each is self-attended and pooled, and
    ``[pooled, present]`` of the three are concatenated -> (B, 3 (D + 1)).

    The context stream keeps the context's information when the query modality is missing (MOTCat
    has no such case: it always has both slides and genes).

    Args:
        query: the query modality (genomic families).
        context: modalities whose tokens are concatenated into the context (slides, sentences).
        dim: token size D shared by all modalities.
        heads: heads of the self-attention layer of each stream.
        dropout: dropout in the self-attention layers.
        **ot_kwargs: :class:`OTAttention` options (``reg``, ``method``, ``reg_m``, ``max_iter``).
    """

    def __init__(self, query: str, context: Sequence[str], dim: int, *, heads: int = 2, dropout: float = 0.1,
                 **ot_kwargs: object) -> None:
        super().__init__()
        self.query, self.context = query, sorted(context)
        self.ot = OTAttention(dim, **ot_kwargs)  # type: ignore[arg-type]
        self.self_attn = nn.ModuleList(MaskedAttentionBlock(dim, heads, dropout) for _ in range(3))
        self.pools = nn.ModuleList(_AttentionPool(dim) for _ in range(3))
        self.out_dim = 3 * (dim + 1)

    def forward(self, tokens: Mapping[str, Tokens]) -> torch.Tensor:
        q = tokens[self.query]
        ctx = Tokens(torch.cat([tokens[m].values for m in self.context], 1),
                     torch.cat([tokens[m].mask for m in self.context], 1))
        parts = []
        for k, stream in enumerate((q, self.ot(q, ctx), ctx)):
            x = self.self_attn[k](stream.values, stream.values, stream.mask)  # (B, Nq, D)
            s = Tokens(x * stream.mask.unsqueeze(-1), stream.mask)
            parts += [self.pools[k](s), s.present.unsqueeze(-1).float()]  # (B, D), (B, 1)
        return torch.cat(parts, dim=-1)  # (B, 3 (D + 1))
