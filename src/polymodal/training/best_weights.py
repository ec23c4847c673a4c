"""Early stopping for the small in-memory training loops (image-text heads, CNN tails, forecast towers).

Those loops run hundreds of tiny fits per benchmark, where a Lightning trainer's start-up would cost
more than the fit; the Lightning recipes use ``training.trainer.make_trainer`` instead. This keeps
one copy of the rule they share: remember the weights of the best validation epoch, stop after
``patience`` epochs without improvement, and put the best weights back at the end.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

from torch import nn

__all__ = ["BestWeights"]


class BestWeights:
    """Tracks the best validation score of ``model`` and a copy of its weights at that epoch.

    ``update(score, epoch)`` returns True when training should stop: ``patience`` epochs have
    passed since the last improvement. An improvement is a score better than the best by more than
    ``min_delta`` (``mode="max"``: higher is better; ``"min"``: lower is better); a NaN score
    never improves. ``restore()`` loads the best weights (the initial ones if nothing improved).
    """

    def __init__(self, model: nn.Module, patience: int, mode: Literal["max", "min"] = "max",
                 min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.model, self.patience, self.mode, self.min_delta = model, patience, mode, min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = -1
        self.history: list[float] = []
        self._state = copy.deepcopy(model.state_dict())

    def _improves(self, score: float) -> bool:
        if self.mode == "max":
            return score > self.best + self.min_delta
        return score < self.best - self.min_delta

    def update(self, score: float, epoch: int) -> bool:
        self.history.append(score)
        if self._improves(score):
            self.best, self.best_epoch = score, epoch
            self._state = copy.deepcopy(self.model.state_dict())
            return False
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> nn.Module:
        self.model.load_state_dict(self._state)
        return self.model
