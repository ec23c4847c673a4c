"""What every recommender here shares: user/item embeddings out, dot-product scores, modality dropping."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn


class Recommender(nn.Module):
    """Base class: ``forward() -> (users (U, D), items (I, D))``; a score is their dot product.

    Models that read item features keep them as non-persistent buffers (not in ``state_dict``, so
    early stopping copies only weights) and zero every modality named in ``dropped`` (a test-time
    modality ablation sets it after training).
    """

    modalities: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.dropped: frozenset[str] = frozenset()

    def set_features(self, features: Mapping[str, np.ndarray | torch.Tensor]) -> None:
        """Register item features, one (I, d_m) matrix per modality, in sorted modality order."""
        self.modalities = tuple(sorted(features))
        for name in self.modalities:
            self.register_buffer(f"feat_{name}", torch.as_tensor(np.asarray(features[name]), dtype=torch.float32),
                                 persistent=False)

    def feature(self, name: str) -> torch.Tensor:
        """(I, d_m) features of one modality, zeros when the modality is dropped."""
        x = getattr(self, f"feat_{name}")
        return torch.zeros_like(x) if name in self.dropped else x

    def score_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Final embeddings computed once (eval mode, no grad); the closure scores a batch of users."""
        self.eval()
        with torch.no_grad():
            users, items = self()
        return lambda u: users[u] @ items.T


def feature_dims(features: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Width of each modality's features."""
    return {k: int(np.asarray(v).shape[1]) for k, v in features.items()}
