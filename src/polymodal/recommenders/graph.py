"""The normalised user-item graph of LightGCN-style propagation, as one sparse matrix."""

from __future__ import annotations

import numpy as np
import torch


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """Symmetric-normalised bipartite adjacency ``D^-1/2 A D^-1/2`` over users then items.

    Args:
        users, items: (E,) index arrays of training interactions.
        n_users, n_items: node counts; node ``n_users + i`` is item ``i``.

    Returns:
        (N, N) sparse COO float32 tensor, N = n_users + n_items; isolated nodes have empty rows.
    """
    n = n_users + n_items
    rows = np.concatenate([users, items + n_users])
    cols = np.concatenate([items + n_users, users])
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    vals = inv_sqrt[rows] * inv_sqrt[cols]
    index = torch.as_tensor(np.stack([rows, cols]), dtype=torch.long)
    values = torch.as_tensor(vals, dtype=torch.float32)
    return torch.sparse_coo_tensor(index, values, (n, n), check_invariants=False).coalesce()


def propagate(adj: torch.Tensor, x0: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LightGCN propagation: the mean of ``x0, A x0, ..., A^L x0``; x0 (N, D) -> (N, D)."""
    out, x = x0, x0
    for _ in range(n_layers):
        x = torch.sparse.mm(adj, x)
        out = out + x
    return out / (n_layers + 1)
