"""LiT-style image-text model: frozen image and text features, trained projections into one space.

"Locked-image tuning" (Zhai et al. 2022) keeps both pretrained towers frozen here (no CLIP weights
can be loaded offline) and trains only a projection per tower and the logit scale. With a real CLIP
(``open_clip:...`` backbone) the same heads can start near identity or be skipped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ImageTextProjector(nn.Module):
    """Projection heads and a learned logit scale.

    Args:
        image_dim: width of the frozen image features.
        text_dim: width of the frozen text features.
        dim: shared embedding width.
        hidden: hidden width of the image head (0 = a single linear layer).
        dropout: dropout on the image features during training.
        init_temperature: CLIP's initial temperature 0.07.
    """

    def __init__(self, image_dim: int, text_dim: int, dim: int = 256, hidden: int = 0, dropout: float = 0.1,
                 init_temperature: float = 0.07) -> None:
        super().__init__()
        if hidden:
            self.image_head: nn.Module = nn.Sequential(nn.Dropout(dropout), nn.Linear(image_dim, hidden), nn.GELU(),
                                                       nn.Linear(hidden, dim))
        else:
            self.image_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(image_dim, dim))
        self.text_head = nn.Linear(text_dim, dim)
        # Frozen CNN features are non-negative with very different scales per channel; the head
        # sees them standardised with training-split statistics (set by the trainer).
        self.register_buffer("image_mean", torch.zeros(image_dim))
        self.register_buffer("image_std", torch.ones(image_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.dim = dim

    def set_image_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise image features with these (image_dim,) statistics (from the training split only)."""
        self.image_mean.copy_(mean)
        self.image_std.copy_(std.clamp_min(1e-3))  # a channel constant on train must not explode on test

    def project_image(self, features: torch.Tensor) -> torch.Tensor:
        """(..., image_dim) -> (..., dim), not normalised (the loss functions normalise)."""
        return self.image_head((features - self.image_mean) / self.image_std)

    @property
    def scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped at 100 as in CLIP."""
        return self.logit_scale.exp().clamp(max=100.0)

    def embed_image(self, features: torch.Tensor) -> torch.Tensor:
        """(B, image_dim) -> (B, dim), unit norm."""
        return F.normalize(self.project_image(features), dim=-1)

    def embed_text(self, features: torch.Tensor) -> torch.Tensor:
        """(T, text_dim) -> (T, dim), unit norm."""
        return F.normalize(self.text_head(features), dim=-1)

    def similarity(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """(B, image_dim), (T, text_dim) -> (B, T) cosine similarities."""
        return self.embed_image(image_features) @ self.embed_text(text_features).T
