"""The Lightning system of the medication (multi-label set) recipes.

Same role as :class:`~polymodal.training.system.MultimodalSystem` for binary targets: it joins a
plain model (``forward(VisitBatch) -> (logits (B, L), aux)``), its objective and AdamW, and logs
the selection score the shared trainer (:func:`~polymodal.training.trainer.make_trainer`) early-stops
and checkpoints on: ``val_pr_auc``, the visit-averaged average precision of the validation visits
(SafeDrug's PR-AUC; scikit-learn computes each visit's value).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import nn

if TYPE_CHECKING:
    from polymodal.config import TrainConfig

__all__ = ["MONITOR", "MedicationSystem", "fit_medication_model", "visit_pr_auc"]

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


def fit_medication_model(model: nn.Module, objective: nn.Module, train_samples: list, valid_samples: list, *,
                         train: TrainConfig, seed: int) -> dict[str, float | int]:
    """The shared Lightning trainer: AdamW, early stopping and best checkpoint on validation PR-AUC.

    Checkpoints go to a temporary folder (one fit of these small models takes seconds; the runner's
    unit of resume is the whole fit, a job), and the best epoch's weights are loaded back into
    ``model``.

    Args:
        model, objective: as :class:`MedicationSystem` takes them.
        train_samples, valid_samples: :class:`~polymodal.tasks.medication.Sample` lists.
        train: lr, weight decay, batch size, epochs and patience. seed: seeds the fit and the batch order.

    Returns:
        ``{"epochs", "best_epoch", "best_val_pr_auc"}``.
    """
    import tempfile
    import warnings

    from torch.utils.data import DataLoader

    from polymodal.tasks.medication import collate
    from polymodal.training.trainer import fit_resumable, make_trainer, quiet_lightning, seed_everything

    seed_everything(seed)
    quiet_lightning()
    system = MedicationSystem(model, objective, lr=train.lr, weight_decay=train.weight_decay)
    train_loader = DataLoader(train_samples, batch_size=train.batch_size, shuffle=True, collate_fn=collate,
                              generator=torch.Generator().manual_seed(seed))
    valid_loader = DataLoader(valid_samples, batch_size=256, shuffle=False, collate_fn=collate)
    with tempfile.TemporaryDirectory(prefix="polymodal-fit-") as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer = make_trainer(tmp, train.model_copy(update={"progress": False}), monitor=MONITOR, mode="max")
        fit_resumable(trainer, system, train_loader, valid_loader, tmp)
        callback = trainer.checkpoint_callback
        best_path = callback.best_model_path if callback else ""
        # our own checkpoint, just written: only its epoch counter is read
        best_epoch = int(torch.load(best_path, map_location="cpu", weights_only=True)["epoch"]) + 1 if best_path else 0
        best = float(callback.best_model_score) if callback and callback.best_model_score is not None else float("nan")
    return {"epochs": int(trainer.current_epoch), "best_epoch": best_epoch, "best_val_pr_auc": best}
