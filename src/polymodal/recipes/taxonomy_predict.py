"""``polymodal predict`` for taxonomy-classifier runs: new products -> a label per level.

Input CSV columns: ``name`` (required), ``id``, ``gender``, ``baseColour``, ``season``, ``usage``,
``year`` and ``image`` (a path, absolute or relative to the CSV; may be empty) optional. A bad row
(non-numeric year, an empty name) is a :class:`~polymodal.errors.DataError` naming file, row and
field; a missing or unreadable image falls back to name and attributes and is counted
(``TaxonomyPredictor.skips``, and the column ``image_used``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.data.paths import resolve_cache_dir
from polymodal.data.sources.fashion import (
    CATEGORICAL_ATTRIBUTES,
    LEVELS,
    MISSING_MARKERS,
    UNKNOWN,
    fashion_image_features,
)
from polymodal.data.splits import SkipReport
from polymodal.data.taxonomy import Taxonomy
from polymodal.errors import DataError, MissingDataError
from polymodal.io import read_run_json
from polymodal.training.hierarchical import TaxonomyNetwork, predict_log_probs


def read_products(path: Path) -> pd.DataFrame:
    """The input CSV as a products frame (``name``, attributes, ``year`` float, ``image`` path or None)."""
    if not path.is_file():
        raise MissingDataError(f"input file not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if "name" not in (reader.fieldnames or []):
            raise DataError("missing column", file=path, field="name")
        rows = list(reader)
    out = []
    for row_no, row in enumerate(rows, start=1):
        name = (row.get("name") or "").strip()
        if not name:
            raise DataError("empty product name", file=path, row=row_no, field="name")
        year_raw = (row.get("year") or "").strip()
        try:
            year = float(year_raw) if year_raw else math.nan
        except ValueError:
            raise DataError(f"year {year_raw!r} is not a number", file=path, row=row_no, field="year") from None
        attrs = {a: ((row.get(a) or "").strip() or UNKNOWN) for a in CATEGORICAL_ATTRIBUTES}
        attrs = {a: (UNKNOWN if v in MISSING_MARKERS else v) for a, v in attrs.items()}
        image = (row.get("image") or "").strip()
        image_path = str((path.parent / image) if image and not Path(image).is_absolute() else image) if image else None
        out.append({"id": (row.get("id") or str(row_no)).strip(), "name": name, **attrs, "year": year,
                    "image": image_path})
    return pd.DataFrame(out)


class TaxonomyPredictor:
    """Labels per level for new products with a finished run's recipe networks (mean probability over seeds).

    Uses the run's fitted attribute encoder and taxonomy (JSON artifacts) and the configured frozen encoders
    through the embedding cache. ``skips`` counts image fallbacks after :meth:`predict`.
    """

    def __init__(self, run_dir: str | Path, cache_dir: str | Path | None = None) -> None:
        from polymodal.recipes.taxonomy_classifier import RECIPE_MODEL, TaxonomyClassifierConfig
        from polymodal.recipes.taxonomy_features import AttributeEncoder

        self.run_dir = Path(run_dir)
        config = read_run_json(self.run_dir / "config.json")
        self.cfg = TaxonomyClassifierConfig.model_validate(config["options"])
        self.taxonomy = Taxonomy.from_dict(config["task"]["spec"]["taxonomy"])
        state = read_run_json(self.run_dir / "artifacts" / "featurizer.json")
        if not state.get("attributes"):
            raise DataError("no fitted attribute encoder", file=self.run_dir / "artifacts" / "featurizer.json",
                            field="attributes")
        self.attributes = AttributeEncoder.from_dict(state["attributes"])
        self.in_dims = {str(k): int(v) for k, v in state["in_dims"].items()}
        self.network_spec = state["network"]
        self.cache_dir = cache_dir
        self.model_name = RECIPE_MODEL
        self.skips: dict[str, Any] = {}
        self.threshold = None

    def read_input(self, path: Path) -> pd.DataFrame:
        return read_products(Path(path))

    def example_input(self, n: int = 5) -> pd.DataFrame:
        rows = read_run_json(self.run_dir / "artifacts" / "example_input.json")
        return pd.DataFrame(rows["rows"]).head(n)

    def _networks(self) -> list[TaxonomyNetwork]:
        nets = []
        for seed in range(self.cfg.protocol.seeds):
            path = self.run_dir / "jobs" / self.model_name / f"seed_{seed}" / "network.pt"
            if not path.is_file():
                raise MissingDataError(f"{path} not found: the run folder is incomplete")
            net = TaxonomyNetwork(self.in_dims, self.taxonomy.sizes,
                                  [torch.as_tensor(self.taxonomy.transition(i)) for i in range(len(LEVELS) - 1)],
                                  **self.network_spec)
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            nets.append(net)
        return nets

    def predict(self, products: pd.DataFrame) -> pd.DataFrame:
        """Columns id, masterCategory, subCategory, articleType, confidence_<level>, image_used."""
        from polymodal.encoders.cache import EmbeddingCache
        from polymodal.encoders.image import FrozenImageEncoder, ImageTransform
        from polymodal.encoders.text import SentenceTextEncoder

        if "image" not in products.columns:
            products = products.assign(image=None)
        products = products.assign(image=[None if (x is None or (isinstance(x, float) and math.isnan(x))
                                                   or not str(x).strip()) else str(x) for x in products["image"]])
        cache = EmbeddingCache(resolve_cache_dir(self.cache_dir) / "embeddings")
        skips = SkipReport()
        encoder = FrozenImageEncoder(self.cfg.image_backbone, ImageTransform(size=self.cfg.image_size,
                                                                             resize=self.cfg.image_resize))
        feats, has = fashion_image_features(list(products["image"]), cache, encoder, skips=skips)
        names = [str(x) for x in products["name"]]
        n = len(names)
        blocks = {"image": (feats, has),
                  "name": (cache.encode(SentenceTextEncoder(self.cfg.text_model), names), np.ones(n, dtype=bool)),
                  "tabular": (self.attributes.transform(products), np.ones(n, dtype=bool))}
        probs = None
        for net in self._networks():
            lps = predict_log_probs(net, {b: blocks[b] for b in self.in_dims})
            p = [np.exp(lp) for lp in lps]
            probs = p if probs is None else [a + b for a, b in zip(probs, p, strict=True)]
        assert probs is not None
        out: dict[str, Any] = {"id": [str(x) for x in products["id"]]}
        for i, level in enumerate(LEVELS):
            out[level] = self.taxonomy.decode(i, probs[i].argmax(1))
        for i, level in enumerate(LEVELS):
            out[f"confidence_{level}"] = probs[i].max(1) / self.cfg.protocol.seeds
        out["image_used"] = has
        self.skips = skips.to_dict()
        return pd.DataFrame(out)
