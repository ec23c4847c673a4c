"""Genomic profiles: a robust scaler fitted on training patients, and MCAT's SNN encoder by gene family.

MCAT (Chen et al., ICCV 2021) and its successors (MOTCat, UMPSNet) encode each functional gene family
(tumour suppressors, oncogenes, kinases, differentiation markers, transcription factors, cytokines)
with its own self-normalising network (Klambauer et al. 2017: Linear -> ELU -> AlphaDropout), giving
one token per family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from polymodal.data.schema import Tokens

__all__ = ["GenomicScaler", "GroupSNNEncoder", "snn_block"]


class GenomicScaler:
    """arcsinh, then standardisation fitted on training rows, then clipping: robust to huge outliers.

    TCGA RNA-seq z-scores reach about 14,000 for a few genes: a plain scaler would let one patient
    dominate a feature. ``arcsinh`` is monotone, fit-free and close to the identity near zero
    (|x| < 1), so typical z-scores keep their meaning while 14,000 becomes about 10; the scaler and
    the clip then bound every feature.

    Args:
        clip: absolute bound after standardisation.
    """

    def __init__(self, clip: float = 5.0) -> None:
        self.clip = clip

    def fit(self, table: pd.DataFrame) -> GenomicScaler:
        """Learn column means and scales on the (N, G) training table."""
        self.columns_ = list(table.columns)
        self.scaler_ = StandardScaler().fit(np.arcsinh(table.to_numpy(dtype=np.float64)))
        return self

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """(N, G) float32; ``table`` must hold every fitted column (extra columns are ignored)."""
        x = np.arcsinh(table[self.columns_].to_numpy(dtype=np.float64))
        return np.clip(self.scaler_.transform(x), -self.clip, self.clip).astype(np.float32)


def snn_block(in_dim: int, out_dim: int, dropout: float = 0.25) -> nn.Sequential:
    """Linear -> ELU -> AlphaDropout, MCAT's ``SNN_Block``."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ELU(), nn.AlphaDropout(p=dropout))


class GroupSNNEncoder(nn.Module):
    """One genomic token (B, 1, F) -> one token per gene family (B, G, D), each from its own SNN.

    Args:
        groups: family -> indices of its features in F (a feature may belong to several families).
        out_dim: token size D.
        hidden: width of the first SNN layer (MCAT: 256).
        dropout: AlphaDropout rate (MCAT: 0.25).
    """

    def __init__(self, groups: Mapping[str, Sequence[int]], out_dim: int, hidden: int = 256,
                 dropout: float = 0.25) -> None:
        super().__init__()
        if not groups or any(len(ix) == 0 for ix in groups.values()):
            raise ValueError("every gene family needs at least one feature")
        self.out_dim = out_dim
        self.names = list(groups)
        for k, name in enumerate(self.names):
            self.register_buffer(f"index_{k}", torch.as_tensor(list(groups[name]), dtype=torch.long), persistent=False)
        self.nets = nn.ModuleList(
            nn.Sequential(snn_block(len(groups[n]), hidden, dropout), snn_block(hidden, out_dim, dropout))
            for n in self.names
        )
        for m in self.modules():  # MCAT's init_max_weights: N(0, 1/fan_in), the SNN's fixed point
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 1.0 / m.weight.shape[1] ** 0.5)
                nn.init.zeros_(m.bias)

    def forward(self, features: Tokens) -> Tokens:
        """features: values (B, 1, F), mask (B, 1) -> Tokens (B, G, D), mask (B, G)."""
        x = features.values[:, 0].float()  # (B, F)
        tokens = torch.stack(
            [net(x.index_select(1, getattr(self, f"index_{k}"))) for k, net in enumerate(self.nets)], dim=1
        )  # (B, G, D)
        mask = features.mask[:, :1].expand(-1, len(self.nets))  # (B, G)
        return Tokens(tokens * mask.unsqueeze(-1), mask)
