"""Scoring without a Trainer: plain batched inference, optionally with a modality transform."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from polymodal.data.collate import Collator, FeatureDataset
from polymodal.data.schema import Tokens

TokenTransform = Callable[[Mapping[str, Tokens]], Mapping[str, Tokens]]


@torch.no_grad()
def predict_scores(model: nn.Module, dataset: FeatureDataset, collator: Collator, *, batch_size: int = 256,
                   transform: TokenTransform | None = None) -> np.ndarray:
    """Sigmoid scores (N,) of a binary model, in dataset order.

    Args:
        transform: applied to each batch's features before the model, e.g. to drop a modality
            for the missing-modality table.
    """
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collator)
    scores = []
    for tokens, _ in loader:
        if transform is not None:
            tokens = transform(tokens)
        if device.type != "cpu":  # a model left on the GPU by Lightning scores there
            tokens = {k: type(t)(t.values.to(device), t.mask.to(device)) for k, t in tokens.items()}
        scores.append(torch.sigmoid(model(tokens).logits).cpu().numpy())
    return np.concatenate(scores).astype(np.float64)


def drop_modality(modality: str) -> TokenTransform:
    """A transform that makes ``modality`` missing for every sample."""

    def transform(tokens: Mapping[str, Tokens]) -> dict[str, Tokens]:
        return {m: (t.drop() if m == modality else t) for m, t in tokens.items()}

    return transform
