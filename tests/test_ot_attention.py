"""OT attention, the guided mixture of experts and the SNN genomic encoder: contracts and planted cases."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from polymodal.data.schema import Tokens
from polymodal.encoders.genomics import GroupSNNEncoder
from polymodal.fusion.guided_moe import GuidedMoEFusion, GuidedSoftMoE
from polymodal.fusion.ot_attention import OTAttention, OTAttentionFusion, transport_plan


def _tokens(b: int, t: int, d: int, lengths: list[int], seed: int = 0) -> Tokens:
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    return Tokens(torch.randn(b, t, d, generator=g) * mask.unsqueeze(-1), mask)


def test_entropic_plan_matches_pot_sinkhorn_and_marginals() -> None:
    torch.manual_seed(0)
    cost = torch.rand(3, 4, 5)
    a = torch.full((3, 4), 0.25)
    b = torch.tensor([[0.2] * 5, [0.25, 0.25, 0.25, 0.25, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]])
    plan = transport_plan(cost, a, b, reg=0.1, max_iter=500)
    assert torch.allclose(plan.sum(2), a, atol=1e-4) and torch.allclose(plan.sum(1), b, atol=1e-4)
    ref = ot.sinkhorn(a[0].double().numpy(), b[0].double().numpy(), cost[0].double().numpy(), reg=0.1,
                      numItermax=5000, stopThr=1e-9)
    assert np.allclose(plan[0].numpy(), ref, atol=1e-4)
    assert (plan[1, :, 4] == 0).all() and (plan[2, :, 2:] == 0).all()  # padding gets no mass


def test_unbalanced_plan_matches_pot_per_sample() -> None:
    torch.manual_seed(1)
    cost = torch.rand(2, 3, 4)
    a, b = torch.full((2, 3), 1 / 3), torch.full((2, 4), 0.25)
    plan = transport_plan(cost, a, b, reg=0.1, method="unbalanced", reg_m=0.5, max_iter=200)
    ref = ot.unbalanced.sinkhorn_unbalanced(a[1].double(), b[1].double(), cost[1].double(), reg=0.1, reg_m=0.5,
                                            numItermax=200)
    assert torch.allclose(plan[1], ref.float(), atol=1e-6)
    assert not torch.allclose(plan.sum(2), a, atol=1e-3)  # marginals are relaxed
    with pytest.raises(ValueError, match="entropic"):
        transport_plan(cost, a, b, method="exact")  # type: ignore[arg-type]


def test_ot_attention_matches_each_query_to_its_twin() -> None:
    """Queries equal to a permutation of the context: a sharp plan is that permutation."""
    ctx = torch.eye(4).unsqueeze(0) * 3.0  # (1, 4, 4): four well separated tokens
    perm = torch.tensor([2, 0, 3, 1])
    layer = OTAttention(4, reg=0.01, max_iter=500)
    out, plan = layer.forward_with_plan(Tokens(ctx[:, perm], torch.ones(1, 4, dtype=torch.bool)),
                                        Tokens(ctx, torch.ones(1, 4, dtype=torch.bool)))
    assert (plan[0].argmax(1) == perm).all()
    expected = layer.value(ctx)[:, perm]
    assert torch.allclose(out.values, expected, atol=1e-3)


def test_ot_attention_ignores_padding_and_survives_missing_context() -> None:
    layer = OTAttention(8)
    q = _tokens(3, 5, 8, [5, 3, 0])
    c = _tokens(3, 4, 8, [4, 0, 2], seed=1)
    out = layer(q, c)
    assert out.values.shape == (3, 5, 8) and torch.isfinite(out.values).all()
    assert out.mask.tolist() == [[True] * 5, [False] * 5, [False] * 5]  # no context / no query -> masked
    assert (out.values[1:] == 0).all()
    noisy = Tokens(c.values + 100.0 * (~c.mask).unsqueeze(-1), c.mask)  # change only padded values
    assert torch.allclose(layer(q, noisy).values, out.values, atol=1e-5)


@pytest.mark.parametrize("missing", [None, "genes", "text", "both"])
def test_ot_fusion_contract_with_missing_modalities(missing: str | None) -> None:
    fusion = OTAttentionFusion("genes", ["text"], 8, heads=2)
    tokens = {"genes": _tokens(4, 6, 8, [6, 6, 6, 6]), "text": _tokens(4, 3, 8, [3, 2, 3, 1], seed=2)}
    for m in ("genes", "text"):
        if missing in (m, "both"):
            tokens[m] = tokens[m].drop()
    out = fusion(tokens)
    assert out.shape == (4, fusion.out_dim) == (4, 27) and torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in fusion.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_guided_moe_gate_and_group_logits() -> None:
    moe = GuidedSoftMoE(6, 3, 5, n_experts=4, n_groups=2)
    out, aux = moe(torch.randn(7, 6), torch.randn(7, 3))
    assert out.shape == (7, 5) and aux["gate"].shape == (7, 4) and aux["group_logits"].shape == (7, 2)
    assert torch.allclose(aux["gate"].sum(1), torch.ones(7))
    base = OTAttentionFusion("genes", ["cancer"], 8)
    fusion = GuidedMoEFusion(base, "cancer", 8, 8, n_experts=3, n_groups=2)
    tokens = {"genes": _tokens(2, 6, 8, [6, 6]), "cancer": _tokens(2, 1, 8, [1, 0])}
    fused, aux = fusion.forward_with_aux(tokens)
    assert fused.shape == (2, fusion.out_dim) and torch.isfinite(fused).all()


def test_guided_moe_learns_group_specific_experts() -> None:
    """Two groups with opposite x -> y maps: the guided gate lets one mixture fit both."""
    torch.manual_seed(0)
    x = torch.randn(256, 1)
    group = torch.randint(0, 2, (256,))
    guide = torch.nn.functional.one_hot(group, 2).float()
    y = torch.where(group[:, None] == 0, x, -x)  # (256, 1)
    moe = GuidedSoftMoE(1, 2, 8, n_experts=4, n_groups=2, dropout=0.0)
    head = torch.nn.Linear(8, 1)
    opt = torch.optim.Adam([*moe.parameters(), *head.parameters()], lr=0.03)
    for _ in range(300):
        out, aux = moe(x, guide)
        loss = torch.nn.functional.mse_loss(head(out), y) + torch.nn.functional.cross_entropy(aux["group_logits"],
                                                                                              group)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # without the guide the best possible MSE is var(y) ~ 1 (y = +x or -x, equally likely)
    assert torch.nn.functional.mse_loss(head(moe(x, guide)[0]), y).item() < 0.2


def test_group_snn_encoder_gives_one_token_per_family() -> None:
    enc = GroupSNNEncoder({"a": [0, 1], "b": [1, 2, 3], "c": [4]}, out_dim=6, hidden=8)
    feats = Tokens(torch.randn(3, 1, 5), torch.tensor([[True], [False], [True]]))
    out = enc(feats)
    assert out.values.shape == (3, 3, 6) and out.mask.tolist() == [[True] * 3, [False] * 3, [True] * 3]
    assert (out.values[1] == 0).all()
    with pytest.raises(ValueError, match="at least one feature"):
        GroupSNNEncoder({"a": []}, 4)
