"""Partial fine-tuning of EfficientNet's last blocks on cached prefix maps (randomly initialised net, no weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from polymodal.encoders.image import ImageBackbone
from polymodal.training.cnn_finetune import FinetuneOptions, TailClassifier, fit_tail, predict_tail, prefix_backbone

efficientnet_lite = pytest.importorskip("efficientnet_lite_pytorch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _backbone() -> ImageBackbone:
    from polymodal.encoders.image import _EfficientNetTrunk

    torch.manual_seed(0)
    net = efficientnet_lite.EfficientNet.from_name("efficientnet-lite0").eval()
    return ImageBackbone(_EfficientNetTrunk(net), 1280, "efficientnet-lite0:random").eval()


def test_prefix_then_tail_reproduces_the_pooled_features() -> None:
    backbone = _backbone()
    prefix, shape = prefix_backbone(backbone, tail_blocks=2, size=64)
    assert shape == (192, 2, 2)  # block 13's output at stride 32
    x = torch.rand(3, 3, 64, 64)
    tail = TailClassifier(backbone, 2, shape).eval()
    with torch.no_grad():
        h = prefix(x).view(-1, *shape)
        for block in tail.blocks:
            h = block(h)
        pooled = tail.act(tail.bn1(tail.conv_head(h))).mean(dim=(2, 3))
        assert torch.allclose(pooled, backbone(x), atol=1e-5)


def test_fit_tail_finds_a_planted_channel_signal() -> None:
    backbone = _backbone()
    shape = (192, 2, 2)
    rng = np.random.default_rng(0)

    def planted(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random(n) < 0.3).astype(float)
        x = rng.normal(size=(n, *shape)).astype(np.float32)
        x[y == 1, :16] += 1.5  # melanoma-like maps: the first 16 channels brighter everywhere
        return x.reshape(n, -1), y

    (xtr, ytr), (xva, yva), (xte, yte) = planted(120), planted(60), planted(60)
    options = FinetuneOptions(tail_blocks=2, max_epochs=6, patience=3, lr_tail=1e-3)
    model, history = fit_tail(backbone, shape, xtr, ytr, xva, yva, options, seed=0)
    assert history["best_valid_roc_auc"] > 0.9
    assert roc_auc_score(yte, predict_tail(model, xte)) > 0.9
    # Batch-norm statistics stay ImageNet's (here: the random init's) while training.
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"tail_blocks must be in 1\.\.16"):
        prefix_backbone(_backbone(), tail_blocks=17, size=64)
    other = ImageBackbone(nn.Conv2d(3, 4, 8, 8), 4, "tiny")
    with pytest.raises(ValueError, match="needs the efficientnet-lite0 backbone"):
        prefix_backbone(other, tail_blocks=1)
