"""Per-input first-layer weight norms of trained encoders, for the weight share of a cohort's coverage.

See :mod:`polymodal.data.coverage`: the share of a model's input weight that the features an external
cohort has carry. Inputs are standardised before these layers, so their column norms are comparable.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from polymodal.data.coverage import group_input_norms
from polymodal.encoders.genomics import GroupSNNEncoder

__all__ = ["first_linear", "group_snn_input_norms"]


def first_linear(module: nn.Module) -> nn.Linear:
    """The first ``nn.Linear`` of a module, in registration order."""
    layer = next((m for m in module.modules() if isinstance(m, nn.Linear)), None)
    if layer is None:
        raise ValueError(f"{type(module).__name__} has no nn.Linear")
    return layer


def group_snn_input_norms(encoder: GroupSNNEncoder, n_features: int) -> np.ndarray:
    """(F,) input norm per feature of MCAT's per-family SNN (a gene in several families: root of summed squares).

    Args:
        encoder: a trained :class:`GroupSNNEncoder`.
        n_features: F, the genomic token's width.
    """
    weights = [first_linear(net).weight.detach().cpu().numpy() for net in encoder.nets]  # (H, |g|) each
    indices = [getattr(encoder, f"index_{k}").cpu().numpy() for k in range(len(encoder.nets))]
    return group_input_norms(weights, indices, n_features)
