"""A small network on cached features for hierarchical classification, and its in-memory training loop.

Each modality is one pre-computed vector per sample (frozen image features, frozen name embedding,
one-hot attributes) with a presence flag. :class:`TaxonomyNetwork` projects each to D, wraps it as
a one-token :class:`~polymodal.data.schema.Tokens` (mask = presence), fuses (concatenation, or
MEXA-CTP's mode-experts cross-attention), passes a hidden layer and a hierarchical head.
:func:`fit_network` trains it with early stopping on the validation exact match
(:class:`~polymodal.training.best_weights.BestWeights`); the test split never enters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from polymodal.data.schema import Tokens
from polymodal.fusion.concat import ConcatFusion
from polymodal.fusion.mode_experts import ModeExpertsFusion
from polymodal.heads.hierarchical import build_head, hierarchical_nll
from polymodal.training.best_weights import BestWeights

Inputs = Mapping[str, tuple[np.ndarray, np.ndarray]]  # modality -> ((N, d) features, (N,) bool present)


class TaxonomyNetwork(nn.Module):
    """Per-modality vectors -> fused (B, H) -> L log-probability tensors.

    Args:
        in_dims: modality -> input width d_m.
        sizes: classes per level K_l.
        transitions: L - 1 taxonomy matrices (for the transitional head).
        head: ``"flat"``, ``"top-down"`` or ``"transitional"``.
        fusion: ``"concat"`` or ``"attention"`` (mode experts; needs two or more modalities).
        dim: D, the projected width of every modality.
        hidden: H, the width after fusion.
        dropout: dropout on the projections and the hidden layer.
    """

    def __init__(self, in_dims: Mapping[str, int], sizes: Sequence[int], transitions: Sequence[torch.Tensor], *,
                 head: str = "transitional", fusion: str = "concat", dim: int = 128, hidden: int = 256,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.modalities = sorted(in_dims)
        self.project = nn.ModuleDict({
            m: nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dims[m], dim), nn.GELU()) for m in self.modalities
        })
        if fusion == "attention" and len(self.modalities) > 1:
            self.fusion: nn.Module = ModeExpertsFusion(self.modalities, dim, heads=2, layers=1, dropout=dropout)
        elif fusion in ("concat", "attention"):
            self.fusion = ConcatFusion(self.modalities, dim)
        else:
            raise ValueError(f"unknown fusion {fusion!r}: use 'concat' or 'attention'")
        self.trunk = nn.Sequential(nn.Linear(self.fusion.out_dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = build_head(head, hidden, sizes, transitions)

    def forward(self, x: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """x[m] (B, d_m), present[m] (B,) bool -> L tensors (B, K_l) of log-probabilities."""
        tokens = {}
        for m in self.modalities:
            values = self.project[m](x[m]) * present[m].unsqueeze(-1).to(x[m].dtype)  # (B, D), zero when absent
            tokens[m] = Tokens(values.unsqueeze(1), present[m].unsqueeze(1))  # (B, 1, D), (B, 1)
        return self.head(self.trunk(self.fusion(tokens)))


@dataclass(frozen=True)
class FitOptions:
    """Training options of :func:`fit_network` (see :class:`TaxonomyNetwork` for the model ones)."""

    head: str = "transitional"
    fusion: str = "concat"
    dim: int = 128
    hidden: int = 256
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 4


def _tensors(inputs: Inputs, rows: np.ndarray | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    x, p = {}, {}
    for m, (feats, present) in inputs.items():
        f, q = (feats, present) if rows is None else (feats[rows], present[rows])
        x[m] = torch.as_tensor(np.ascontiguousarray(f), dtype=torch.float32)
        p[m] = torch.as_tensor(np.ascontiguousarray(q), dtype=torch.bool)
    return x, p


@torch.no_grad()
def predict_log_probs(model: TaxonomyNetwork, inputs: Inputs, batch_size: int = 2048) -> list[np.ndarray]:
    """L arrays (N, K_l) of log-probabilities."""
    model.eval()
    n = len(next(iter(inputs.values()))[0])
    parts: list[list[np.ndarray]] = []
    for start in range(0, n, batch_size):
        x, p = _tensors(inputs, np.arange(start, min(n, start + batch_size)))
        parts.append([lp.numpy() for lp in model(x, p)])
    return [np.concatenate([part[i] for part in parts]) for i in range(len(parts[0]))]


def exact_match_of(log_probs: Sequence[np.ndarray], targets: np.ndarray) -> float:
    """Share of rows whose argmax at every level equals the (N, L) target indices."""
    pred = np.stack([lp.argmax(1) for lp in log_probs], axis=1)  # (N, L)
    return float(np.mean(np.all(pred == targets, axis=1)))


def fit_network(train: Inputs, y_train: np.ndarray, valid: Inputs, y_valid: np.ndarray, sizes: Sequence[int],
                transitions: Sequence[np.ndarray], options: FitOptions, seed: int) -> tuple[TaxonomyNetwork, dict]:
    """Train with Adam; keep the weights of the best validation exact match.

    Args:
        train, valid: modality -> ((N, d) features, (N,) presence).
        y_train, y_valid: (N, L) int class indices (-1 = a label unseen in training, ignored by the loss).
        sizes: K_l per level; transitions: L - 1 (K_l, K_{l+1}) matrices.
        options: :class:`FitOptions`; seed: torch seed (initialisation and batch order).

    Returns:
        The model (best weights restored) and info: best_epoch, epochs, validation history.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    in_dims = {m: int(f.shape[1]) for m, (f, _) in train.items()}
    model = TaxonomyNetwork(in_dims, sizes, [torch.as_tensor(t) for t in transitions], head=options.head,
                            fusion=options.fusion, dim=options.dim, hidden=options.hidden, dropout=options.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    keeper = BestWeights(model, options.patience, mode="max")
    x_all, p_all = _tensors(train)
    y_all = torch.as_tensor(y_train, dtype=torch.long)
    n = len(y_all)
    epoch = 0
    for epoch in range(options.max_epochs):
        model.train()
        order = torch.as_tensor(rng.permutation(n))
        for start in range(0, n, options.batch_size):
            idx = order[start : start + options.batch_size]
            loss = hierarchical_nll(model({m: v[idx] for m, v in x_all.items()},
                                          {m: v[idx] for m, v in p_all.items()}), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        score = exact_match_of(predict_log_probs(model, valid), y_valid)
        if keeper.update(score, epoch):
            break
    keeper.restore()
    model.eval()
    return model, {"best_epoch": keeper.best_epoch, "epochs": epoch + 1, "valid_exact_match": keeper.history}
