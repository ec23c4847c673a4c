"""Item fusion networks: MetaMMF's meta-generated item-specific fusion (CP-decomposed) and static concatenation.

MetaMMF (Liu et al., TOIS 2023, arXiv 2501.07110) treats fusing one item's modalities as its own
task: a *meta information extractor* maps the item's multimodal features to a meta vector ``m_i``,
and a *meta fusion learner* turns ``m_i`` into the weights of that item's fusion network. Generating
a full (d_out x d_in) matrix per item would need a (d_out x d_in x d_meta) tensor; its canonical
polyadic (CP) decomposition of rank R keeps three factors instead::

    W_i = sum_r (m_i . C[:, r]) A[:, r] B[:, r]^T,   so   W_i x = A ((C^T m_i) * (B^T x))

which costs O(R (d_in + d_out + d_meta)) per item and never builds ``W_i``. Written from the
paper's description; no code of the authors' repository is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
from torch import nn


class ModalityProjector(nn.Module):
    """One linear map per modality to a shared width, then concatenated: {m: (I, d_m)} -> (I, M * d)."""

    def __init__(self, dims: Mapping[str, int], dim: int) -> None:
        super().__init__()
        self.names = tuple(sorted(dims))
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], dim) for m in self.names})
        self.out_dim = dim * len(self.names)

    def forward(self, features: Mapping[str, torch.Tensor], dropped: frozenset[str] = frozenset()) -> torch.Tensor:
        parts = []
        for m in self.names:
            x = features[m]
            # A dropped modality contributes a zero token, not the projection's bias.
            parts.append(torch.zeros(x.shape[0], self.proj[m].out_features) if m in dropped else self.proj[m](x))
        return torch.cat(parts, dim=1)  # (I, M * d)


class CPGeneratedLinear(nn.Module):
    """A linear layer whose weight and bias are generated per item from its meta vector (CP rank R).

    Shapes: x (I, d_in), meta (I, d_meta) -> (I, d_out).
    """

    def __init__(self, d_in: int, d_out: int, d_meta: int, rank: int) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.randn(d_out, rank) / rank ** 0.5)
        self.B = nn.Parameter(torch.randn(d_in, rank) / d_in ** 0.5)
        self.C = nn.Parameter(torch.randn(d_meta, rank) / d_meta ** 0.5)
        self.bias = nn.Linear(d_meta, d_out)  # the generated bias b_i = G m_i + g

    def forward(self, x: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        coef = meta @ self.C  # (I, R): item i's weights on the R rank-one matrices
        return ((x @ self.B) * coef) @ self.A.T + self.bias(meta)  # (I, d_out)


class MetaFusion(nn.Module):
    """Meta information extractor + meta fusion learner: concatenated tokens (I, d_in) -> fused (I, d_out).

    Args:
        d_in: width of the concatenated projected modalities.
        d_out: fused representation width.
        d_meta: meta vector width.
        rank: CP rank of each generated layer.
        n_layers: generated layers in the item-specific fusion network (LeakyReLU between them).
    """

    def __init__(self, d_in: int, d_out: int, d_meta: int = 32, rank: int = 16, n_layers: int = 2) -> None:
        super().__init__()
        self.extract = nn.Sequential(nn.Linear(d_in, d_meta), nn.Tanh())
        widths = [d_in] + [d_out] * n_layers
        self.layers = nn.ModuleList(CPGeneratedLinear(a, b, d_meta, rank) for a, b in itertools.pairwise(widths))
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        meta = self.extract(x)  # (I, d_meta)
        for j, layer in enumerate(self.layers):
            x = layer(x, meta)
            if j < len(self.layers) - 1:
                x = self.act(x)
        return x  # (I, d_out)


class ConcatFusion(nn.Module):
    """The static ablation: the same depth of layers, one weight matrix shared by every item."""

    def __init__(self, d_in: int, d_out: int, n_layers: int = 2) -> None:
        super().__init__()
        widths = [d_in] + [d_out] * n_layers
        mods: list[nn.Module] = []
        for j, (a, b) in enumerate(itertools.pairwise(widths)):
            mods.append(nn.Linear(a, b))
            if j < n_layers - 1:
                mods.append(nn.LeakyReLU(0.1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (I, d_out)
