"""Heads for L-level hierarchical classification: (B, H) features -> L log-probability tensors.

Every head returns a list of L tensors ``(B, K_l)`` of log-probabilities (rows sum to 1 after
``exp``), so one loss (the sum over levels of the negative log-likelihood) and one decoder (argmax
per level) serve all three:

* :class:`FlatHeads`: an independent linear softmax per level (the usual multi-output baseline;
  nothing ties the levels together);
* :class:`TopDownHead`: level l+1 also sees level l's predicted distribution (a conditional,
  top-down classifier trained end to end);
* :class:`TransitionalHead`: the taxonomy-embedded transitional classifier of Chen et al. (arXiv
  2501.06827). Per-level logits ``z_l = W_l h + b_l``; level 0 is ``softmax(z_0)``; the next level's
  prior mass ``m_{l+1} = p_l M_l`` goes through the 0/1 transition matrix ``M_l (K_l, K_{l+1})`` of
  the taxonomy, and ``p_{l+1} ∝ softmax(z_{l+1}) * m_{l+1}``. A child whose parents all have
  probability ~0 gets probability ~0, so predictions follow the taxonomy (exactly when the upper
  level is confident; the argmax per level can still cross edges when the parent is uncertain,
  which is why consistency is measured for every head).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_LOG_FLOOR = 1e-12  # log(0) guard for children with no parent mass


class FlatHeads(nn.Module):
    """One linear softmax per level.

    Args:
        in_dim: H, the feature width.
        sizes: K_l, classes per level.
    """

    def __init__(self, in_dim: int, sizes: Sequence[int]) -> None:
        super().__init__()
        self.levels = nn.ModuleList(nn.Linear(in_dim, k) for k in sizes)

    def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
        """(B, H) -> L tensors (B, K_l) of log-probabilities."""
        return [F.log_softmax(layer(h), dim=-1) for layer in self.levels]


class TopDownHead(nn.Module):
    """Level l+1 reads ``[h, p_l]``: the features and the level-above distribution.

    Args:
        in_dim: H, the feature width.
        sizes: K_l, classes per level.
    """

    def __init__(self, in_dim: int, sizes: Sequence[int]) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Linear(in_dim + (sizes[i - 1] if i else 0), k) for i, k in enumerate(sizes)
        )

    def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
        """(B, H) -> L tensors (B, K_l) of log-probabilities."""
        out: list[torch.Tensor] = []
        for i, layer in enumerate(self.levels):
            x = h if i == 0 else torch.cat([h, out[-1].exp()], dim=-1)  # (B, H + K_{l-1})
            out.append(F.log_softmax(layer(x), dim=-1))
        return out


class TransitionalHead(nn.Module):
    """Taxonomy-embedded transitional classifier (see the module docstring).

    Args:
        in_dim: H, the feature width.
        transitions: L - 1 matrices ``(K_l, K_{l+1})``, 1 where the child is under the parent
            (a child may have several parents). Stored as buffers, not trained.
    """

    def __init__(self, in_dim: int, transitions: Sequence[torch.Tensor]) -> None:
        super().__init__()
        sizes = [int(transitions[0].shape[0])] + [int(m.shape[1]) for m in transitions]
        for i in range(len(transitions) - 1):
            if transitions[i].shape[1] != transitions[i + 1].shape[0]:
                raise ValueError(f"transition {i} has {transitions[i].shape[1]} children but transition {i + 1} "
                                 f"has {transitions[i + 1].shape[0]} parents")
        self.levels = nn.ModuleList(nn.Linear(in_dim, k) for k in sizes)
        for i, m in enumerate(transitions):
            self.register_buffer(f"transition_{i}", torch.as_tensor(m, dtype=torch.float32))
        self.n_transitions = len(transitions)

    def transition(self, i: int) -> torch.Tensor:
        return getattr(self, f"transition_{i}")

    def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
        """(B, H) -> L tensors (B, K_l) of log-probabilities."""
        out = [F.log_softmax(self.levels[0](h), dim=-1)]  # (B, K_0)
        for i in range(self.n_transitions):
            mass = out[-1].exp() @ self.transition(i)  # (B, K_{i+1}): parent probability reaching each child
            joint = F.log_softmax(self.levels[i + 1](h), dim=-1) + torch.log(mass.clamp(min=_LOG_FLOOR))
            out.append(joint - torch.logsumexp(joint, dim=-1, keepdim=True))  # renormalise
        return out


def hierarchical_nll(log_probs: Sequence[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Sum over levels of the mean NLL; targets (B, L) class indices, -1 = unknown (ignored)."""
    return sum(F.nll_loss(lp, targets[:, i], ignore_index=-1) for i, lp in enumerate(log_probs))


def build_head(kind: str, in_dim: int, sizes: Sequence[int], transitions: Sequence[torch.Tensor]) -> nn.Module:
    """``"flat"``, ``"top-down"`` or ``"transitional"``."""
    if kind == "flat":
        return FlatHeads(in_dim, sizes)
    if kind == "top-down":
        return TopDownHead(in_dim, sizes)
    if kind == "transitional":
        return TransitionalHead(in_dim, transitions)
    raise ValueError(f"unknown head {kind!r}: use 'flat', 'top-down' or 'transitional'")
