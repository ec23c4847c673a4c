"""``polymodal predict`` for taxonomy-classifier runs: new products -> a label per level.

Input CSV columns: ``name`` (required), ``id``, ``gender``, ``baseColour``, ``season``, ``usage``,
``year`` and ``image`` (a path, absolute or relative to the CSV; may be empty) optional. A bad row
(non-numeric year, an empty name) is a :class:`~polymodal.errors.DataError` naming file, row and
field; a missing or unreadable image falls back to name and attributes and is counted
(``frame.attrs["image_fallbacks"]``, also a column ``image_used``).
"""

from __future__ import annotations

import csv
import json
import math
import pickle
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


def predict_taxonomy(run_dir: str | Path, input_path: str | Path, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Labels per level with the run's saved recipe network (seed 0).

    Returns:
        columns id, score (articleType probability), decision (articleType), masterCategory, subCategory,
        articleType, confidence_<level>, image_used;
        ``attrs["image_fallbacks"]`` counts products whose image was missing or unreadable.
    """
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.encoders.image import FrozenImageEncoder, ImageTransform
    from polymodal.encoders.text import SentenceTextEncoder

    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    if not (model_dir / "network.pt").is_file():
        raise MissingDataError(f"{run_dir} has no saved taxonomy-classifier model (model/network.pt)")
    cfg = json.loads((run_dir / "config.json").read_text())
    spec = json.loads((model_dir / "model.json").read_text())
    taxonomy = Taxonomy.from_dict(json.loads((run_dir / "taxonomy.json").read_text()))
    with open(model_dir / "attributes.pkl", "rb") as fh:
        attributes = pickle.load(fh)  # our own run folder's fitted encoder
    products = read_products(Path(input_path))
    cache = EmbeddingCache(resolve_cache_dir(cache_dir) / "embeddings")
    skips = SkipReport()
    with_image = products["image"].notna()
    image_encoder = FrozenImageEncoder(cfg["image_backbone"], ImageTransform(size=cfg["image_size"],
                                                                              resize=cfg["image_resize"]))
    feats, has = fashion_image_features(list(products["image"]), cache, image_encoder, skips=skips)
    names = [str(x) for x in products["name"]]
    blocks: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "image": (feats, has),
        "name": (cache.encode(SentenceTextEncoder(cfg["text_model"]), names), np.ones(len(names), dtype=bool)),
        "tabular": (attributes.transform(products), np.ones(len(names), dtype=bool)),
    }
    network = TaxonomyNetwork(spec["in_dims"], taxonomy.sizes,
                              [torch.as_tensor(taxonomy.transition(i)) for i in range(len(LEVELS) - 1)],
                              head=spec["head"], fusion=spec["fusion"], dim=spec["dim"], hidden=spec["hidden"],
                              dropout=spec["dropout"])
    network.load_state_dict(torch.load(model_dir / "network.pt", weights_only=True))
    lps = predict_log_probs(network, {b: blocks[b] for b in spec["in_dims"]})
    out: dict[str, Any] = {"id": products["id"]}
    for i, level in enumerate(LEVELS):
        out[level] = taxonomy.decode(i, lps[i].argmax(1))
    for i, level in enumerate(LEVELS):
        out[f"confidence_{level}"] = np.exp(lps[i].max(1))
    out["image_used"] = has
    # The CLI's contract: score = the article type's probability, decision = the article type.
    out["score"] = out["confidence_articleType"]
    out["decision"] = out["articleType"]
    frame = pd.DataFrame(out)
    frame.attrs["columns"] = ["id", "score", "decision", *LEVELS, *(f"confidence_{lv}" for lv in LEVELS), "image_used"]
    frame.attrs["image_fallbacks"] = int((with_image.to_numpy() & ~has).sum())
    frame.attrs["skips"] = skips.to_dict()
    return frame
