"""Image-only fine-tuning of the last blocks of a pretrained EfficientNet on cached intermediate maps.

Fine-tuning the whole EfficientNet-Lite0 on 2 CPU cores costs about three forward passes per image
and epoch (see benchmarks/medgrad_finetune_cnn.py for the measured cost), so only the tail is
trained: the frozen prefix (stem and the first blocks) runs once per image, its (C, 7, 7) output is
cached like any frozen feature (:class:`PrefixBackbone` under its own cache key), and the last
``tail_blocks`` MBConv blocks, the 1x1 head convolution and a new linear classifier are trained on
it with early stopping on a validation ROC-AUC. Batch-norm statistics stay frozen (ImageNet's; a few
hundred images cannot estimate them) and there is no pixel augmentation (the prefix is cached).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from polymodal.encoders.image import ImageBackbone
from polymodal.training.best_weights import BestWeights


def _efficientnet(backbone: ImageBackbone) -> nn.Module:
    net = getattr(backbone.trunk, "net", None)
    if net is None or not hasattr(net, "_blocks"):
        raise ValueError(f"partial fine-tuning needs the efficientnet-lite0 backbone, got {backbone.name!r}")
    return net


class PrefixBackbone(nn.Module):
    """Stem and all but the last ``tail_blocks`` blocks: (B, 3, S, S) -> (B, C * h * w) flattened maps."""

    def __init__(self, backbone: ImageBackbone, tail_blocks: int) -> None:
        super().__init__()
        self.net = _efficientnet(backbone)
        n = len(self.net._blocks)
        if not 1 <= tail_blocks <= n:
            raise ValueError(f"tail_blocks must be in 1..{n}, got {tail_blocks}")
        self.stop = n - tail_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        h = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[: self.stop]:
            h = block(h)
        return h.flatten(1)


def prefix_backbone(backbone: ImageBackbone, tail_blocks: int, size: int = 224) -> tuple[ImageBackbone, tuple]:
    """The frozen prefix as an :class:`ImageBackbone` (for the feature cache) and its map shape (C, h, w)."""
    prefix = PrefixBackbone(backbone, tail_blocks).eval()
    with torch.no_grad():
        net = prefix.net
        h = net._swish(net._bn0(net._conv_stem(torch.zeros(1, 3, size, size))))
        for block in net._blocks[: prefix.stop]:
            h = block(h)
    shape = tuple(int(d) for d in h.shape[1:])  # (C, h, w)
    wrapped = ImageBackbone(prefix, int(np.prod(shape)), f"{backbone.name}:prefix{prefix.stop}", pool=nn.Identity())
    return wrapped.eval(), shape


class TailClassifier(nn.Module):
    """The last ``tail_blocks`` blocks (copied, trainable), head conv, average pool, dropout, linear: -> (B,) logit."""

    def __init__(self, backbone: ImageBackbone, tail_blocks: int, shape: tuple, dropout: float = 0.2) -> None:
        super().__init__()
        net = _efficientnet(backbone)
        self.shape = shape
        self.blocks = copy.deepcopy(net._blocks[len(net._blocks) - tail_blocks :])
        self.conv_head, self.bn1, self.act = copy.deepcopy(net._conv_head), copy.deepcopy(net._bn1), net._swish
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(self.conv_head.out_channels, 1)
        for p in self.parameters():
            p.requires_grad_(True)

    def train(self, mode: bool = True) -> TailClassifier:
        super().train(mode)
        for m in self.modules():  # frozen ImageNet batch-norm statistics
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        h = flat.view(-1, *self.shape)
        for block in self.blocks:
            h = block(h)
        h = self.act(self.bn1(self.conv_head(h))).mean(dim=(2, 3))  # (B, 1280)
        return self.linear(self.dropout(h))[:, 0]


@dataclass(frozen=True)
class FinetuneOptions:
    tail_blocks: int = 2
    lr_tail: float = 1e-4  # pretrained layers move slowly
    lr_head: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 5
    dropout: float = 0.2


def fit_tail(backbone: ImageBackbone, shape: tuple, train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray,
             valid_y: np.ndarray, options: FinetuneOptions, seed: int) -> tuple[TailClassifier, dict[str, object]]:
    """Train the tail on cached prefix maps (N, C*h*w); keep the epoch with the best validation ROC-AUC.

    The loss is BCE weighted by the training class balance (melanoma is the minority class).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TailClassifier(backbone, options.tail_blocks, shape, options.dropout)
    head = list(model.linear.parameters())
    head_ids = {id(p) for p in head}
    tail = [p for p in model.parameters() if id(p) not in head_ids]
    optimiser = torch.optim.AdamW([{"params": tail, "lr": options.lr_tail}, {"params": head, "lr": options.lr_head}],
                                  weight_decay=options.weight_decay)
    x, y = torch.as_tensor(train_x, dtype=torch.float32), torch.as_tensor(train_y, dtype=torch.float32)
    pos = float(y.sum())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - pos) / max(pos, 1.0)))
    tracker = BestWeights(model, options.patience)
    for epoch in range(options.max_epochs):
        model.train()
        order = rng.permutation(len(y))
        for start in range(0, len(order), options.batch_size):
            idx = torch.as_tensor(order[start : start + options.batch_size])
            loss = loss_fn(model(x[idx]), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if tracker.update(float(roc_auc_score(valid_y, predict_tail(model, valid_x))), epoch):
            break
    tracker.restore().eval()
    return model, {"best_epoch": tracker.best_epoch, "best_valid_roc_auc": float(tracker.best),
                   "epochs": len(tracker.history), "valid_history": tracker.history}


@torch.no_grad()
def predict_tail(model: TailClassifier, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """(N,) melanoma probabilities from cached prefix maps."""
    model.eval()
    t = torch.as_tensor(x, dtype=torch.float32)
    out = [torch.sigmoid(model(t[i : i + batch_size])) for i in range(0, len(t), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0)
