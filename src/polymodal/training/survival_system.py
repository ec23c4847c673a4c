"""The Lightning system for survival: a MultimodalModel, a survival loss, and validation C-index.

Targets arrive as (B, 2) ``[time, event]`` rows, or (B, 3) ``[time, event, bin]`` for discrete-time
models. The model's output decides the objective's inputs:

* logits (B,): a risk score, trained with :class:`CoxPartialLikelihood` (the default);
* logits (B, K): hazard logits, trained with :class:`DiscreteTimeSurvivalNLL` on the bin column; the
  risk is :func:`discrete_time_risk`.

``val_c_index`` is computed once per epoch from all validation risks (a C-index averaged over
batches would not be the C-index of the split), so ``make_trainer(..., monitor="val_c_index")``
early-stops and checkpoints on it.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn

from polymodal.objectives.survival import CoxPartialLikelihood, discrete_time_risk
from polymodal.tasks.survival import survival_metrics

__all__ = ["SurvivalSystem", "risk_from_logits"]


def risk_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B,) risk from (B,) Cox log-hazards (unchanged) or (B, K) discrete hazard logits."""
    return discrete_time_risk(logits) if logits.ndim == 2 else logits


class SurvivalSystem(L.LightningModule):
    """Trains a MultimodalModel on (time, event) targets and reports validation C-index.

    Args:
        model: maps dict[str, Tokens] to ModelOutput(logits (B,) or (B, K), aux).
        objective: a survival loss returning named parts; Cox partial likelihood if None.
        lr: learning rate of AdamW.
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self, model: nn.Module, objective: nn.Module | None = None, *, lr: float = 1e-3, weight_decay: float = 0.0
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective if objective is not None else CoxPartialLikelihood()
        self.lr = lr
        self.weight_decay = weight_decay
        self._val: list[torch.Tensor] = []  # (B, 3) [time, event, risk] per validation batch

    def forward(self, tokens):  # type: ignore[no-untyped-def]
        return self.model(tokens)

    def _losses(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        time, event = targets[:, 0], targets[:, 1]  # (B,), (B,)
        if logits.ndim == 2:
            if targets.shape[1] < 3:
                raise ValueError("(B, K) hazard logits need targets with a third [bin] column")
            return self.objective(logits, targets[:, 2].long(), event)
        return self.objective(logits, time, event)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
        tokens, targets = batch
        parts = self._losses(self.model(tokens).logits, targets)
        loss = torch.stack(list(parts.values())).sum()
        for name, value in parts.items():
            self.log(f"train_{name}", value, on_step=False, on_epoch=True, batch_size=len(targets), sync_dist=True)
        self.log(
            "train_loss", loss, on_step=False, on_epoch=True, batch_size=len(targets), prog_bar=True, sync_dist=True
        )
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch, batch_idx: int) -> None:  # type: ignore[no-untyped-def]
        tokens, targets = batch
        risk = risk_from_logits(self.model(tokens).logits)  # (B,)
        self._val.append(torch.stack([targets[:, 0], targets[:, 1], risk.float()], dim=1).detach())

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        rows = torch.cat(self._val)  # (N_local, 3)
        if self.trainer.world_size > 1:  # every rank needs the whole split for one C-index
            rows = self.all_gather(rows).reshape(-1, 3)
        t, e, r = rows.cpu().double().numpy().T
        # Without validation events the C-index is undefined; EarlyStopping halts on a non-finite
        # value, so such an epoch is logged as 0.5 (no ranking information) instead of NaN.
        c = survival_metrics(t, e.astype(bool), r)["c_index"]
        self.log("val_c_index", 0.5 if np.isnan(c) else c, prog_bar=True, sync_dist=False)
        self._val = []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
