"""A PatchTST-style time-series tower: instance normalisation, patches, a small Transformer encoder.

Channel independence with shared weights is the caller's job: every channel of every window is
one sample ``(B, L)``, so all channels share the same tower (as in PatchTST and TextFusionHTS).
"""

from __future__ import annotations

import torch
from torch import nn

from polymodal.data.schema import Tokens


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RevIN without affine weights: (B, L) -> normalised (B, L), mean (B, 1), std (B, 1).

    The forecast is de-normalised with the same statistics, so the model sees shapes, not levels.
    """
    mean = x.mean(1, keepdim=True).detach()
    std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + eps).detach()
    return (x - mean) / std, mean, std


class PatchSeriesEncoder(nn.Module):
    """(B, L) normalised window -> Tokens (B, P, d_model), one token per patch.

    As PatchTST: the end of the window is padded by repeating the last value ``stride`` times,
    patches of ``patch_len`` are taken every ``stride`` steps, linearly embedded, given a learned
    position, and passed through a Transformer encoder.

    Args:
        input_len: L.
        patch_len, stride: patching; P = (L - patch_len) // stride + 2.
        d_model, heads, layers, d_ff, dropout: the encoder.
    """

    def __init__(self, input_len: int, patch_len: int, stride: int, d_model: int = 64, heads: int = 4,
                 layers: int = 1, d_ff: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        if patch_len > input_len:
            raise ValueError(f"patch_len {patch_len} > input_len {input_len}")
        self.patch_len, self.stride = patch_len, stride
        self.n_patches = (input_len - patch_len) // stride + 2
        self.out_dim = d_model
        self.embed = nn.Linear(patch_len, d_model)
        self.position = nn.Parameter(torch.randn(1, self.n_patches, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> Tokens:
        padded = torch.cat([x, x[:, -1:].expand(-1, self.stride)], dim=1)  # (B, L + S)
        patches = padded.unfold(1, self.patch_len, self.stride)  # (B, P, patch_len)
        h = self.dropout(self.embed(patches) + self.position)  # (B, P, D)
        h = self.encoder(h)  # (B, P, D)
        return Tokens(h, torch.ones(h.shape[:2], dtype=torch.bool, device=h.device))
