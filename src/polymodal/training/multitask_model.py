"""A multi-task classifier over frozen per-modality vectors: shared encoder, task heads, cross-task attention.

Inputs are one vector per modality and sample (e.g. MiniLM embeddings of the utterance, ``"text"``,
and of its preceding dialogue context, ``"context"``), each with a presence mask. Audio or video
vectors would be further keys of the same dict; the model only receives dimensions, never data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from polymodal.fusion.cross_task import CrossTaskAttention

__all__ = ["MultiTaskClassifier"]


class MultiTaskClassifier(nn.Module):
    """Per-modality projections -> masked mean -> shared MLP -> task vectors -> (cross-task) -> heads.

    Args:
        modality_dims: modality name -> input width D_m (keys sorted internally).
        task_classes: task name -> number of classes, in task order.
        hidden: width H of the shared encoder and of each task vector.
        dropout: dropout in the encoder and before the heads.
        cross_task: ``(helper, target)``: the target task's vector attends over [target, helper]
            (the easier task helps the harder one); ``None`` is the no-cross-task ablation.
        heads: attention heads of the cross-task layer.
    """

    def __init__(self, modality_dims: Mapping[str, int], task_classes: Mapping[str, int], hidden: int = 256,
                 dropout: float = 0.2, cross_task: tuple[str, str] | None = None, heads: int = 4) -> None:
        super().__init__()
        if not modality_dims:
            raise ValueError("at least one modality is needed")
        self.modalities = tuple(sorted(modality_dims))
        self.tasks = tuple(task_classes)
        if cross_task is not None and (cross_task[0] not in self.tasks or cross_task[1] not in self.tasks
                                       or cross_task[0] == cross_task[1]):
            raise ValueError(f"cross_task {cross_task} must name two different tasks of {self.tasks}")
        self.cross_task = cross_task
        self.project = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(modality_dims[m], hidden), nn.LayerNorm(hidden)) for m in self.modalities
        })
        self.encoder = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.GELU())
        self.task_proj = nn.ModuleDict({t: nn.Sequential(nn.Linear(hidden, hidden), nn.GELU()) for t in self.tasks})
        self.interact = CrossTaskAttention(hidden, heads=heads, dropout=dropout) if cross_task else None
        self.drop = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, c) for t, c in task_classes.items()})

    def forward(self, features: Mapping[str, torch.Tensor],
                masks: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Logits of every task.

        Args:
            features: modality -> (B, D_m) float vectors (every modality of the model must be present
                as a key; a sample without it has mask False).
            masks: modality -> (B,) bool presence; missing key = present for every sample.

        Returns:
            task -> (B, C_task) logits.
        """
        masks = masks or {}
        tokens = torch.stack([self.project[m](features[m]) for m in self.modalities], dim=1)  # (B, M, H)
        present = torch.stack([
            masks[m].to(tokens.dtype) if m in masks else tokens.new_ones(tokens.shape[0]) for m in self.modalities
        ], dim=1).unsqueeze(-1)  # (B, M, 1)
        pooled = (tokens * present).sum(1) / present.sum(1).clamp(min=1.0)  # (B, H)
        shared = self.encoder(pooled)  # (B, H)
        vectors = {t: self.task_proj[t](shared) for t in self.tasks}  # task -> (B, H)
        if self.interact is not None and self.cross_task is not None:
            helper, target = self.cross_task
            vectors[target] = self.interact(vectors[target], vectors[helper])
        return {t: self.heads[t](self.drop(vectors[t])) for t in self.tasks}

    def modality_names(self) -> Sequence[str]:
        return self.modalities
