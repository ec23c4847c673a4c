"""BestWeights: the early-stopping rule shared by the small in-memory training loops."""

import pytest
import torch
from torch import nn

from polymodal.training.best_weights import BestWeights


def _set(model: nn.Linear, value: float) -> None:
    with torch.no_grad():
        model.weight.fill_(value)


def test_keeps_the_best_epoch_and_stops_after_patience() -> None:
    model = nn.Linear(1, 1, bias=False)
    tracker = BestWeights(model, patience=2)
    stops = []
    for epoch, score in enumerate([0.5, 0.7, 0.6, 0.7, 0.65]):
        _set(model, float(epoch))  # the weights "learned" by this epoch
        stops.append(tracker.update(score, epoch))
    # best at epoch 1 (0.7; the later 0.7 is not an improvement); epochs 2 and 3 are stale -> stop at 3
    assert stops == [False, False, False, True, True]
    assert (tracker.best, tracker.best_epoch) == (0.7, 1)
    tracker.restore()
    assert model.weight.item() == 1.0


def test_min_mode_with_min_delta_and_nan() -> None:
    model = nn.Linear(1, 1, bias=False)
    _set(model, -1.0)
    tracker = BestWeights(model, patience=1, mode="min", min_delta=0.1)
    assert tracker.update(float("nan"), 0)  # NaN never improves: one stale epoch reaches patience 1
    _set(model, 5.0)
    tracker.restore()
    assert model.weight.item() == -1.0  # nothing improved: the initial weights come back
    tracker = BestWeights(model, patience=1, mode="min", min_delta=0.1)
    assert not tracker.update(1.0, 0)
    assert tracker.update(0.95, 1)  # within min_delta of the best: not an improvement
    assert tracker.best == 1.0


def test_rejects_zero_patience() -> None:
    with pytest.raises(ValueError, match="patience"):
        BestWeights(nn.Linear(1, 1), patience=0)
