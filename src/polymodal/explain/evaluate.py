"""Every explanation method side by side on the same images: mask overlap, pointing game, deletion, insertion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from polymodal.explain.maps import METHODS, ImageTextScorer, explain
from polymodal.explain.metrics import deletion_insertion, mask_mass_share, pointing_game


def _summary(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not values.size:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "n": int(values.size)}


def compute_maps(scorer: ImageTextScorer, images: torch.Tensor, target: int, methods: Sequence[str] = METHODS,
                 batch_size: int = 8) -> dict[str, np.ndarray]:
    """method -> (N, S, S) maps in [0, 1] for text ``target``; plus ``"random"``, a seeded uniform-noise reference."""
    maps: dict[str, np.ndarray] = {}
    for method in methods:
        parts = [explain(scorer, images[i : i + batch_size], target, method).numpy()
                 for i in range(0, len(images), batch_size)]
        maps[method] = np.concatenate(parts)
    maps["random"] = np.random.default_rng(0).random((len(images), *images.shape[-2:])).astype(np.float32)
    return maps


def evaluate_maps(scorer: ImageTextScorer, images: torch.Tensor, maps: dict[str, np.ndarray], target: int,
                  masks: np.ndarray | None = None, *, steps: int = 16, block: int = 16) -> dict[str, Any]:
    """Mask metrics (when ``masks`` is given) and deletion/insertion AUCs of the similarity to text ``target``.

    Args:
        scorer: the differentiable image-text scorer.
        images: (N, 3, S, S) normalised pixels.
        maps: method -> (N, S, S) heat maps (see :func:`compute_maps`).
        target: index of the explained text in the scorer.
        masks: (N, S, S) bool expert lesion masks, or None.
        steps: curve points after the start.
        block: side of the perturbed pixel blocks.

    Returns:
        ``{method: {"mask_mass": summary, "pointing_game": summary, "deletion_auc": summary,
        "insertion_auc": summary}}``; summaries are mean/std/n over images.
    """
    def score_fn(x: torch.Tensor) -> torch.Tensor:
        return scorer(x)[:, target]

    out: dict[str, Any] = {}
    for method, m in maps.items():
        row: dict[str, Any] = {}
        if masks is not None:
            row["mask_mass"] = _summary(mask_mass_share(m, masks))
            row["pointing_game"] = _summary(pointing_game(m, masks).astype(float))
        curves = [deletion_insertion(score_fn, images[i], torch.as_tensor(m[i]), steps=steps, block=block)
                  for i in range(len(images))]
        row["deletion_auc"] = _summary(np.array([c["deletion_auc"] for c in curves]))
        row["insertion_auc"] = _summary(np.array([c["insertion_auc"] for c in curves]))
        out[method] = row
    if masks is not None:
        out["mask_area_fraction"] = _summary(masks.reshape(len(masks), -1).mean(axis=1))
    return out
