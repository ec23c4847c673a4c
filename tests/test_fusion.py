"""The fusion contract, checked over every operator: shapes, masks, missing modalities, gradients."""

from __future__ import annotations

import pytest
import torch

from polymodal.data.schema import Tokens
from polymodal.fusion.concat import ConcatFusion
from polymodal.fusion.mode_experts import ModeExpertsFusion
from polymodal.objectives import CauchyGateLoss, ExpertAgreementLoss

MODALITIES = ["codes", "criteria", "drugs"]
DIM = 8

FUSIONS = {
    "concat": lambda: ConcatFusion(MODALITIES, DIM),
    "mode-experts": lambda: ModeExpertsFusion(MODALITIES, DIM, heads=2, layers=2),
    "mode-experts-gated": lambda: ModeExpertsFusion(MODALITIES, DIM, gate_threshold=0.5, self_experts=False),
}


def make_tokens(batch: int = 4, seed: int = 0) -> dict[str, Tokens]:
    g = torch.Generator().manual_seed(seed)
    lengths = {"codes": 3, "criteria": 6, "drugs": 2}
    tokens = {}
    for m, t in lengths.items():
        mask = torch.ones(batch, t, dtype=torch.bool)
        mask[0, 1:] = False  # a sample with a single token
        tokens[m] = Tokens(torch.randn(batch, t, DIM, generator=g), mask)
    return tokens


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_shape_and_backward(name: str) -> None:
    fusion = FUSIONS[name]()
    tokens = {m: Tokens(t.values.requires_grad_(), t.mask) for m, t in make_tokens().items()}
    out = fusion(tokens)
    assert out.shape == (4, fusion.out_dim)
    out.sum().backward()
    for m in MODALITIES:
        assert tokens[m].values.grad is not None and torch.isfinite(tokens[m].values.grad).all()


@pytest.mark.parametrize("name", sorted(FUSIONS))
@pytest.mark.parametrize("missing", MODALITIES)
def test_missing_modality_is_finite_and_ignores_padding(name: str, missing: str) -> None:
    torch.manual_seed(0)
    fusion = FUSIONS[name]().eval()
    tokens = make_tokens()
    tokens[missing] = tokens[missing].drop()
    out = fusion(tokens)
    assert torch.isfinite(out).all()
    # Values behind a False mask must not matter: replace them with garbage, output unchanged.
    noisy = dict(tokens)
    noisy[missing] = Tokens(tokens[missing].values * 1000 + 7, tokens[missing].mask)
    torch.testing.assert_close(fusion(noisy), out)


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_modality_order_does_not_matter(name: str) -> None:
    torch.manual_seed(0)
    fusion = FUSIONS[name]().eval()
    tokens = make_tokens()
    reordered = {m: tokens[m] for m in reversed(MODALITIES)}
    torch.testing.assert_close(fusion(reordered), fusion(tokens))


def test_every_mode_expert_parameter_gets_a_gradient() -> None:
    """The official MEXA-CTP code kept experts in plain dicts, so some were never trained."""
    fusion = ModeExpertsFusion(MODALITIES, DIM)
    fused, aux = fusion.forward_with_aux(make_tokens())
    loss = fused.pow(2).mean() + CauchyGateLoss()(fused, fused, aux)["cauchy"]
    loss = loss + ExpertAgreementLoss()(fused, fused, aux)["contrastive"]
    loss.backward()
    no_grad = [n for n, p in fusion.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    assert len(aux["gates"]) == 6 and len(aux["expert_pairs"]) == 3
