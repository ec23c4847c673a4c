"""Loss parts against hand-computed values."""

from __future__ import annotations

import math

import torch

from polymodal.objectives import BinaryCrossEntropy, CauchyGateLoss, ExpertAgreementLoss, WeightedSum, info_nce


def test_cauchy_gate_loss_hand_computed_and_ignores_padding() -> None:
    prob = torch.tensor([[0.5, 0.25, 0.9]])
    mask = torch.tensor([[True, True, False]])  # the 0.9 is padding
    out = CauchyGateLoss(epsilon=0.5)(torch.zeros(1), torch.zeros(1), {"gates": [(prob, mask)]})
    expected = (math.log(1 + 1.0) + math.log(1 + 0.25)) / 2  # (0.5/0.5)^2 = 1, (0.25/0.5)^2 = 0.25
    assert math.isclose(out["cauchy"].item(), expected, rel_tol=1e-6)


def test_bce_pos_weight_hand_computed() -> None:
    logits, y = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])
    out = BinaryCrossEntropy(pos_weight=3.0)(logits, y)["bce"].item()
    assert math.isclose(out, (3 * math.log(2) + math.log(2)) / 2, rel_tol=1e-6)


def test_info_nce_prefers_matched_pairs() -> None:
    a = torch.eye(4)
    assert info_nce(a, a, 0.1) < info_nce(a, a.roll(1, dims=0), 0.1)
    # perfectly matched one-hot rows: loss = log(1 + 3 e^{-10})
    assert math.isclose(info_nce(a, a, 0.1).item(), math.log(1 + 3 * math.exp(-10)), rel_tol=1e-3)  # float32


def test_expert_agreement_skips_samples_missing_a_modality() -> None:
    ab = torch.eye(3)
    present = torch.tensor([True, True, False])
    out = ExpertAgreementLoss(0.1)(torch.zeros(3), torch.zeros(3), {"expert_pairs": [(ab, ab, present)]})
    assert math.isclose(out["contrastive"].item(), info_nce(ab[:2], ab[:2], 0.1).item(), rel_tol=1e-6)


def test_weighted_sum_keeps_parts_and_weights_them() -> None:
    objective = WeightedSum({"bce": (BinaryCrossEntropy(), 1.0), "cauchy": (CauchyGateLoss(0.5), 0.5)})
    prob = torch.tensor([[0.5]])
    parts = objective(torch.zeros(1), torch.ones(1), {"gates": [(prob, torch.ones(1, 1, dtype=torch.bool))]})
    assert set(parts) == {"bce", "cauchy", "loss"}
    assert math.isclose(parts["loss"].item(), math.log(2) + 0.5 * math.log(2), rel_tol=1e-6)
