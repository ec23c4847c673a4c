"""The contract of a frozen featuriser: strings in, a fixed-size float32 matrix out.

A frozen encoder has no trainable state as far as polymodal is concerned (a pretrained text model,
a Morgan fingerprint, a descriptor table). Because its output depends only on the input string and
its own identity, the output can be cached on disk keyed by ``(cache_key, item)``; see
:class:`polymodal.encoders.cache.EmbeddingCache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class FrozenEncoder(Protocol):
    """Strings -> (N, dim) float32 vectors, deterministically.

    Attributes:
        cache_key: identifies everything the output depends on: model, weights version and
            options, e.g. ``"text:sentence-transformers/all-MiniLM-L6-v2:norm"``. Two encoders with
            the same key must give the same vectors (up to float noise), and any change that
            changes the vectors must change the key, otherwise the cache serves stale vectors.
            It must not include things that do not change the output (device, batch size).
        dim: the width D of every output vector.
    """

    cache_key: str
    dim: int

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Encode ``items``.

        Args:
            items: N strings (texts, SMILES ...).

        Returns:
            (N, dim) float32 array; row i belongs to ``items[i]``.
        """
        ...
