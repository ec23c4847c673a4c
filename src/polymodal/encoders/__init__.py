"""Encoders: raw values of one modality -> vectors or tokens.

Frozen featurisers (pretrained or fixed: text models, Morgan fingerprints, descriptors, MiniMol)
implement :class:`FrozenEncoder` and go through :class:`EmbeddingCache`, so a second run never
re-encodes the same text or molecule.
"""

from polymodal.encoders.cache import CacheStats, EmbeddingCache, EmbeddingCacheWarning, item_key
from polymodal.encoders.frozen import FrozenEncoder
from polymodal.encoders.genomics import GroupSNNEncoder
from polymodal.encoders.molecule import (
    DESCRIPTOR_NAMES,
    DescriptorEncoder,
    MiniMolEncoder,
    MorganEncoder,
    available_molecule_encoders,
    parse_smiles,
)
from polymodal.encoders.text import HashingTextEncoder, SentenceTextEncoder
from polymodal.encoders.trainable import CodeAncestorEncoder, Encoder, ProjectionEncoder, ResidualProjection

__all__ = [
    "DESCRIPTOR_NAMES",
    "CacheStats",
    "CodeAncestorEncoder",
    "DescriptorEncoder",
    "EmbeddingCache",
    "EmbeddingCacheWarning",
    "Encoder",
    "FrozenEncoder",
    "GroupSNNEncoder",
    "HashingTextEncoder",
    "MiniMolEncoder",
    "MorganEncoder",
    "ProjectionEncoder",
    "ResidualProjection",
    "SentenceTextEncoder",
    "available_molecule_encoders",
    "item_key",
    "parse_smiles",
]
