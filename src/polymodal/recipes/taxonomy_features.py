"""Inputs of the taxonomy-classifier recipe: split, taxonomy and every cached or fitted feature block.

Everything fitted (the taxonomy, the class words masked out of names, the attribute encoder) sees
the training split only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.data.sources.fashion import (
    CATEGORICAL_ATTRIBUTES,
    LEVELS,
    FashionData,
    fashion_image_features,
    load_fashion,
)
from polymodal.data.stratified import stratified_split
from polymodal.data.taxonomy import Taxonomy, class_words, mask_class_words


class AttributeEncoder:
    """Tabular encoder: one-hot gender / colour / season / usage plus standardised year and a missing flag.

    Fitted on training rows; an unseen category encodes as all zeros in its block. Its fitted state is
    plain JSON (:meth:`to_dict`), so a run folder never needs a pickle.
    """

    def __init__(self, categories: dict[str, list[str]] | None = None, year_mean: float = 0.0,
                 year_std: float = 1.0) -> None:
        self.categories = categories or {}
        self.year_mean = year_mean
        self.year_std = year_std

    def fit(self, frame: pd.DataFrame) -> AttributeEncoder:
        self.categories = {a: sorted(frame[a].astype(str).unique()) for a in CATEGORICAL_ATTRIBUTES}
        year = frame["year"].astype(float)
        self.year_mean = float(np.nanmean(year))
        self.year_std = float(np.nanstd(year)) or 1.0
        return self

    @property
    def dim(self) -> int:
        return sum(len(c) for c in self.categories.values()) + 2

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, n_categories + 2) float32."""
        out = np.zeros((len(frame), self.dim), dtype=np.float32)
        offset = 0
        for attr in CATEGORICAL_ATTRIBUTES:
            index = {c: i for i, c in enumerate(self.categories[attr])}
            cols = np.array([index.get(str(v), -1) for v in frame[attr]])
            hit = cols >= 0
            out[np.flatnonzero(hit), offset + cols[hit]] = 1.0
            offset += len(index)
        year = frame["year"].astype(float).to_numpy()
        missing = np.isnan(year)
        out[:, offset] = np.where(missing, 0.0, (year - self.year_mean) / self.year_std)
        out[:, offset + 1] = missing
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"categories": self.categories, "year_mean": self.year_mean, "year_std": self.year_std}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> AttributeEncoder:
        return cls(obj["categories"], obj["year_mean"], obj["year_std"])


@dataclass
class TaxonomyInputs:
    """Products (rows in a fixed order), their split, the training taxonomy and feature blocks.

    Attributes:
        products: the fashion products table, plus ``split`` and ``masked_name`` columns.
        taxonomy: built from the training rows.
        targets: (N, L) class indices (-1 where a label is unseen in training).
        blocks: name -> ((N, d) features, (N,) presence): image, name, masked_name, tabular.
        data: the loaded source (skips, files).
        timing: seconds per stage.
    """

    products: pd.DataFrame
    taxonomy: Taxonomy
    targets: np.ndarray
    blocks: dict[str, tuple[np.ndarray, np.ndarray]]
    data: FashionData
    timing: dict[str, float] = field(default_factory=dict)
    words: frozenset[str] = frozenset()
    attributes: AttributeEncoder | None = None

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.products["split"].to_numpy() == split)


def prepare_inputs(cfg: Any, data_root: Path, cache_root: Path, *, image_encoder: Any = None,
                   text_encoder: Any = None) -> TaxonomyInputs:
    """Load, split, build the taxonomy and every feature block (frozen ones through the cache).

    ``image_encoder`` / ``text_encoder`` replace the configured frozen encoders (tests use tiny ones).
    """
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.encoders.image import FrozenImageEncoder, ImageTransform
    from polymodal.encoders.text import SentenceTextEncoder

    timing: dict[str, float] = {}
    t = time.perf_counter()
    data = load_fashion(data_root, on_bad_row=cfg.on_bad_row)
    products = data.products.copy()
    if cfg.max_id:
        products = products[products["id"] <= cfg.max_id].reset_index(drop=True)
    if cfg.max_products:
        products = products.sample(n=min(cfg.max_products, len(products)), random_state=cfg.split_seed)
        products = products.sort_values("id").reset_index(drop=True)
    split = stratified_split(products["id"], products["articleType"], valid=cfg.valid_fraction,
                             test=cfg.test_fraction, seed=cfg.split_seed)
    products["split"] = split.to_numpy()
    train = products[products["split"] == "train"]
    taxonomy = Taxonomy.from_frame(train, LEVELS)
    words = class_words(taxonomy.classes[LEVELS.index("articleType")])
    products["masked_name"] = mask_class_words(products["name"], words)
    targets = np.stack([taxonomy.encode(i, products[level]) for i, level in enumerate(LEVELS)], axis=1)
    timing["load_split_seconds"] = time.perf_counter() - t

    cache = EmbeddingCache(cache_root / "embeddings")
    blocks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    t = time.perf_counter()
    encoder = image_encoder or FrozenImageEncoder(cfg.image_backbone,
                                                  ImageTransform(size=cfg.image_size, resize=cfg.image_resize))
    blocks["image"] = fashion_image_features(list(products["image"]), cache, encoder, skips=data.skips)
    timing["image_feature_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    text = text_encoder or SentenceTextEncoder(cfg.text_model)
    for key, column in (("name", "name"), ("masked_name", "masked_name")):
        texts = [str(x) for x in products[column]]
        blocks[key] = (cache.encode(text, texts), np.array([bool(x.strip()) for x in texts]))
    timing["text_feature_seconds"] = time.perf_counter() - t
    tab = AttributeEncoder().fit(train)
    blocks["tabular"] = (tab.transform(products), np.ones(len(products), dtype=bool))
    timing["cache"] = cache.stats.as_dict()  # type: ignore[assignment]
    return TaxonomyInputs(products, taxonomy, targets, blocks, data, timing, words, tab)
