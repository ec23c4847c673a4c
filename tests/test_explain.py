"""Explanation maps (planted locality, entropy weights, Grad-CAM library parity) and their metrics."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import polymodal.explain.maps as maps_module
from polymodal.encoders.image import ImageBackbone
from polymodal.encoders.image_text import ImageTextProjector
from polymodal.explain import (
    METHODS,
    ImageTextScorer,
    channel_entropy_weights,
    deletion_insertion,
    eclip_map,
    explain,
    gradcam_backend,
    gradcam_map,
    mask_mass_share,
    pointing_game,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mask_mass_share_and_pointing_game_by_hand() -> None:
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0], maps[0, 3, 3] = 3.0, 1.0  # 3/4 of the mass at (0, 0)
    maps[1] = 1.0  # uniform
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[:, :2, :2] = True  # a quarter of the image
    assert mask_mass_share(maps, masks) == pytest.approx([0.75, 0.25])
    assert pointing_game(maps, masks).tolist() == [True, True]  # uniform: argmax is the first pixel
    maps[0, 0, 0] = 0.0
    assert pointing_game(maps, masks).tolist() == [False, True]
    assert np.isnan(mask_mass_share(np.zeros((1, 4, 4)), masks[:1]))[0]


def test_deletion_insertion_rewards_the_true_region() -> None:
    def score(x: torch.Tensor) -> torch.Tensor:  # depends only on the top-left 16x16 block
        return x[:, :, :16, :16].mean(dim=(1, 2, 3))

    image = torch.ones(3, 32, 32)
    good = torch.zeros(32, 32)
    good[:16, :16] = 1.0
    right = deletion_insertion(score, image, good, steps=4, block=16)
    wrong = deletion_insertion(score, image, 1 - good, steps=4, block=16)
    # Curves at fractions 0, 1/4 ... 1 (trapezoids by hand): deleting the true block first gives
    # 1, 0, 0, 0, 0 -> 0.125; last gives 1, 1, 1, 1, 0 -> 0.875. Insertion mirrors it.
    assert right["deletion_auc"] == pytest.approx(0.125)
    assert wrong["deletion_auc"] == pytest.approx(0.875)
    assert right["insertion_auc"] == pytest.approx(0.875) and wrong["insertion_auc"] == pytest.approx(0.125)


def test_entropy_weights_favour_focused_channels() -> None:
    fmap = torch.zeros(1, 3, 4, 4)
    fmap[0, 0, 1, 2] = 5.0  # one location: entropy 0 -> weight 1
    fmap[0, 1] = 1.0  # uniform: entropy 1 -> weight 0
    w = channel_entropy_weights(fmap)  # channel 2 is empty -> 0
    assert w[0].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)


def _planted_scorer() -> ImageTextScorer:
    torch.manual_seed(0)
    # No bias and a ReLU: a zero image region gives zero features and zero gradients there.
    trunk = nn.Sequential(nn.Conv2d(3, 8, kernel_size=4, stride=4, bias=False), nn.ReLU())
    backbone = ImageBackbone(trunk, 8, "planted")
    for p in backbone.parameters():
        p.requires_grad_(False)
    projector = ImageTextProjector(8, 5, dim=4, dropout=0.0)
    return ImageTextScorer(backbone, projector, torch.randn(2, 5))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_stays_inside_the_planted_lesion(method: str) -> None:
    scorer = _planted_scorer()
    x = torch.zeros(3, 3, 32, 32)
    x[:, :, 8:16, 8:16] = torch.rand(3, 3, 8, 8) + 0.5  # the only non-zero region
    maps = explain(scorer, x, 0, method).numpy()
    assert maps.shape == (3, 32, 32) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    mask = np.zeros((3, 32, 32), dtype=bool)
    mask[:, 4:20, 4:20] = True  # the lesion plus the reach of bilinear upsampling
    share = mask_mass_share(maps, mask)
    assert (share[~np.isnan(share)] > 0.95).all()


def test_medgrad_without_entropy_is_eclip(monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = _planted_scorer()
    x = torch.rand(2, 3, 32, 32)
    monkeypatch.setattr("polymodal.explain.maps.channel_entropy_weights", lambda f: torch.ones(f.shape[:2]))
    assert torch.allclose(eclip_map(scorer, x, 1, entropy=True), eclip_map(scorer, x, 1))


def test_gradcam_matches_pytorch_grad_cam_when_installed() -> None:
    pytest.importorskip("pytorch_grad_cam")
    scorer = _planted_scorer()
    x = torch.rand(2, 3, 32, 32)
    ours = gradcam_map(scorer, x, 0, use_library=False)
    theirs = gradcam_map(scorer, x, 0, use_library=True)
    assert np.corrcoef(ours.flatten(), theirs.flatten())[0, 1] > 0.95


def test_gradcam_falls_back_when_torchvision_is_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A CUDA torchvision wheel on a CPU torch fails at import with RuntimeError, not ImportError.
    fake = tmp_path / "pytorch_grad_cam"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pytorch_grad_cam", raising=False)
    monkeypatch.setattr(maps_module, "_GRADCAM_LIBRARY", None)
    scorer = _planted_scorer()
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(gradcam_map(scorer, x, 0), gradcam_map(scorer, x, 0, use_library=False))
    assert "RuntimeError: operator torchvision::nms does not exist" in gradcam_backend()


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown explanation method"):
        explain(_planted_scorer(), torch.rand(1, 3, 32, 32), 0, "lime")
