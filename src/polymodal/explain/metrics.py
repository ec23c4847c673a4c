"""Measuring heat maps: mass inside the expert mask, the pointing game, deletion and insertion curves.

* mask mass share: sum(map * mask) / sum(map); a uniform map scores the mask's area fraction.
* pointing game (Zhang et al. 2018): is the map's maximum inside the mask?
* deletion / insertion (Petsiuk et al., RISE, 2018): remove (or add) pixels block by block from
  the most to the least salient and follow the explained score; faithful maps make the deletion
  curve fall fast (low AUC) and the insertion curve rise fast (high AUC). Removed pixels take the
  baseline value 0, the dataset mean after normalisation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import auc


def mask_mass_share(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, S, S) non-negative maps, (N, S, S) bool masks -> (N,) share of each map's mass in its mask."""
    maps = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    masks = np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ")
    total = maps.sum(axis=(1, 2))
    inside = (maps * masks).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, S, S), (N, S, S) -> (N,) bool: the map's (first) maximum lies inside the mask."""
    maps = np.asarray(maps)
    masks = np.asarray(masks, dtype=bool)
    flat = maps.reshape(len(maps), -1).argmax(axis=1)
    return masks.reshape(len(masks), -1)[np.arange(len(masks)), flat]


def _block_order(saliency: torch.Tensor, block: int) -> torch.Tensor:
    """(S, S) map -> block indices sorted from most to least salient (mean saliency per block)."""
    pooled = F.avg_pool2d(saliency[None, None], block)[0, 0]  # (S/b, S/b)
    return torch.argsort(pooled.flatten(), descending=True, stable=True)


def deletion_insertion(score_fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                       saliency: torch.Tensor, *, steps: int = 16, block: int = 16) -> dict[str, object]:
    """Deletion and insertion curves of one image.

    Args:
        score_fn: (B, 3, S, S) -> (B,) the explained score.
        image: (3, S, S) normalised pixels; S divisible by ``block``.
        saliency: (S, S) heat map.
        steps: points after the start of each curve (fractions 1/steps ... 1 of the blocks).
        block: side of the square blocks removed or inserted together.

    Returns:
        ``deletion_auc``, ``insertion_auc`` (trapezoid over the fraction in [0, 1]) and the
        ``deletion`` / ``insertion`` curves, (steps + 1,) each.
    """
    size = image.shape[-1]
    if size % block:
        raise ValueError(f"image side {size} is not a multiple of block {block}")
    grid = size // block
    order = _block_order(saliency.float(), block)
    n_blocks = grid * grid
    counts = np.linspace(0, n_blocks, steps + 1).round().astype(int)
    keep = torch.zeros(steps + 1, n_blocks)  # 1 where the block is "on" (salient first)
    for i, c in enumerate(counts):
        keep[i, order[:c]] = 1.0
    on = F.interpolate(keep.view(-1, 1, grid, grid), scale_factor=block, mode="nearest")  # (steps+1, 1, S, S)
    with torch.no_grad():
        deletion = score_fn(image[None] * (1 - on)).float().numpy()  # salient blocks removed first
        insertion = score_fn(image[None] * on).float().numpy()  # salient blocks inserted first
    frac = counts / n_blocks
    return {"deletion_auc": float(auc(frac, deletion)), "insertion_auc": float(auc(frac, insertion)),
            "deletion": deletion, "insertion": insertion}
