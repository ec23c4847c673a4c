"""The shapes data take between stages: Record (one sample, raw values) and Tokens (encoded)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Record:
    """One sample as the dataset adapter produced it.

    Attributes:
        id: stable identifier (an NCT number, a patient id ...).
        inputs: modality name -> raw value (a text, a list of SMILES, a list of codes ...).
            ``None`` or an empty list means the modality is missing for this sample.
        target: the label (a float for binary tasks, a (time, event) pair for survival ...).
        meta: information the protocol may use (registration order for a temporal split, the
            source row for error messages) but that never reaches a model.
    """

    id: str
    inputs: Mapping[str, Any]
    target: Any
    meta: Mapping[str, Any] = field(default_factory=dict)

    def has(self, modality: str) -> bool:
        """Whether the modality is present (not None and not an empty collection)."""
        value = self.inputs.get(modality)
        if value is None:
            return False
        try:
            return len(value) > 0
        except TypeError:
            return True


@dataclass(frozen=True)
class Tokens:
    """A padded batch of token sequences for one modality.

    Attributes:
        values: (B, T, D) float features, or (B, T, ...) integer ids before an embedding.
        mask: (B, T) bool, True where a token is real. A sample whose row is all False has the
            modality missing; every fusion operator must accept that.
    """

    values: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.values.shape[:2] != self.mask.shape:
            raise ValueError(
                f"Tokens: values {tuple(self.values.shape)} and mask {tuple(self.mask.shape)} disagree on (B, T)"
            )

    @property
    def present(self) -> torch.Tensor:
        """(B,) bool: which samples have at least one real token."""
        return self.mask.any(dim=1)

    def to(self, device: torch.device | str) -> Tokens:
        return Tokens(self.values.to(device), self.mask.to(device))

    def drop(self) -> Tokens:
        """The same batch with the modality missing for every sample (for robustness tables)."""
        return Tokens(self.values, torch.zeros_like(self.mask))


Batch = Mapping[str, Tokens]
