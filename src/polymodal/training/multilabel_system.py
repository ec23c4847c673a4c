"""The Lightning system of the medication (multi-label set) recipes.

Same role as :class:`~polymodal.training.system.MultimodalSystem` for binary targets: it joins a
plain model (``forward(VisitBatch) -> (logits (B, L), aux)``), its objective and AdamW, and logs
the selection score the shared trainer (:func:`~polymodal.training.trainer.make_trainer`) early-stops
and checkpoints on: ``val_pr_auc``, the visit-averaged average precision of the validation visits
(SafeDrug's PR-AUC; scikit-learn computes each visit's value).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import nn

__all__ = ["MONITOR", "MedicationSystem", "visit_pr_auc"]

MONITOR = "val_pr_auc"


def visit_pr_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean over visits (rows) of the average precision of the visit's scores over all labels."""
    return float(np.mean(average_precision_score(y.T, scores.T, average=None)))


class MedicationSystem(L.LightningModule):
    """Trains a medication recommender; validation = the selection fold (never the test fold).

    Args:
        model: maps a VisitBatch to (logits (B, L), aux). objective: (logits, targets, aux) -> parts with ``loss``.
        lr, weight_decay: AdamW's.
    """

    def __init__(self, model: nn.Module, objective: nn.Module, *, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.model, self.objective = model, objective
        self.lr, self.weight_decay = lr, weight_decay
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
        visits, targets = batch
        logits, aux = self.model(visits)
        parts = self.objective(logits, targets, aux)
        self.log("train_loss", parts["loss"], on_step=False, on_epoch=True, batch_size=len(targets))
        return parts["loss"]

    def validation_step(self, batch, batch_idx: int) -> None:  # type: ignore[no-untyped-def]
        visits, targets = batch
        probs = torch.sigmoid(self.model(visits)[0])
        self._val.append((targets.numpy(), probs.double().numpy()))

    def on_validation_epoch_end(self) -> None:
        # PR-AUC is per visit over all labels, so it needs the whole validation set at once
        y = np.concatenate([t for t, _ in self._val])
        scores = np.concatenate([s for _, s in self._val])
        self._val.clear()
        self.log(MONITOR, visit_pr_auc(y, scores), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
