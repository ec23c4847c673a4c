"""Featurised samples -> padded Tokens batches, with a mask per modality."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from polymodal.data.schema import Tokens

# A featurised modality for one sample: (T, F) float features, or (T, A) int ids; T may be 0 (missing).
SampleFeatures = Mapping[str, np.ndarray]


def pad_tokens(items: Sequence[np.ndarray], *, max_len: int | None = None) -> Tokens:
    """Stack variable-length (T_i, ...) arrays into Tokens (B, T, ...) with a (B, T) mask.

    Args:
        items: one array per sample, each (T_i, *feature_shape); T_i == 0 means missing.
        max_len: keep at most this many leading tokens per sample (the order is meaningful,
            e.g. the first criteria statements).

    Returns:
        Tokens whose padding positions hold zeros (or id 0) and mask False. T is at least 1 so
        that a batch where every sample lacks the modality still has a valid shape.
    """
    if not items:
        raise ValueError("pad_tokens needs at least one sample")
    feature_shape = items[0].shape[1:]
    dtype = items[0].dtype
    lengths = [min(len(x), max_len) if max_len is not None else len(x) for x in items]
    t = max(1, max(lengths))
    values = np.zeros((len(items), t, *feature_shape), dtype=dtype)
    mask = np.zeros((len(items), t), dtype=bool)
    for i, (x, n) in enumerate(zip(items, lengths, strict=True)):
        if x.shape[1:] != feature_shape:
            raise ValueError(f"sample {i}: feature shape {x.shape[1:]} differs from {feature_shape}")
        values[i, :n] = x[:n]
        mask[i, :n] = True
    return Tokens(torch.from_numpy(values), torch.from_numpy(mask))


class FeatureDataset(Dataset):
    """Featurised samples (one dict of arrays each) with their float targets."""

    def __init__(self, features: Sequence[SampleFeatures], targets: np.ndarray) -> None:
        if len(features) != len(targets):
            raise ValueError(f"{len(features)} feature rows but {len(targets)} targets")
        self.features = list(features)
        self.targets = np.asarray(targets)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[SampleFeatures, np.ndarray]:
        return self.features[index], self.targets[index]


class Collator:
    """Collate (features, target) pairs into (dict[str, Tokens], targets) with per-modality caps."""

    def __init__(self, modalities: Sequence[str], max_len: Mapping[str, int] | None = None) -> None:
        self.modalities = sorted(modalities)
        self.max_len = dict(max_len or {})

    def __call__(self, batch: Sequence[tuple[SampleFeatures, np.ndarray]]) -> tuple[dict[str, Tokens], torch.Tensor]:
        tokens = {
            m: pad_tokens([features[m] for features, _ in batch], max_len=self.max_len.get(m))
            for m in self.modalities
        }
        targets = torch.as_tensor(np.stack([t for _, t in batch]), dtype=torch.float32)
        return tokens, targets
