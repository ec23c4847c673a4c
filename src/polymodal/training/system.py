"""The Lightning "system": joins a plain model, its objective and the optimiser."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import BinaryAUROC


class MultimodalSystem(L.LightningModule):
    """Trains a MultimodalModel on a binary target and reports validation ROC-AUC.

    Validation here is the *selection* split (the official valid split, or a temporal hold-out);
    the test split never enters a LightningModule.

    Args:
        model: maps dict[str, Tokens] to ModelOutput(logits (B,), aux).
        objective: maps (logits, targets, aux) to named loss parts including ``loss``.
        lr: learning rate of AdamW.
        weight_decay: AdamW weight decay.
    """

    def __init__(self, model: nn.Module, objective: nn.Module, *, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_auroc = BinaryAUROC()

    def forward(self, tokens):  # type: ignore[no-untyped-def]
        return self.model(tokens)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
        tokens, targets = batch
        out = self.model(tokens)
        parts = self.objective(out.logits, targets, out.aux)
        for name, value in parts.items():
            self.log(f"train_{name}", value, on_step=False, on_epoch=True, batch_size=len(targets),
                     prog_bar=name == "loss", sync_dist=True)
        return parts["loss"]

    def validation_step(self, batch, batch_idx: int) -> None:  # type: ignore[no-untyped-def]
        tokens, targets = batch
        out = self.model(tokens)
        parts = self.objective(out.logits, targets, out.aux)
        self.log("val_loss", parts["loss"], on_step=False, on_epoch=True, batch_size=len(targets), sync_dist=True)
        self.val_auroc.update(torch.sigmoid(out.logits), targets.long())
        self.log("val_roc_auc", self.val_auroc, on_step=False, on_epoch=True, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
