"""What a run hands to ``polymodal index build``: per-tower product vectors, catalogue and query encoder.

Layout inside a run folder::

    RUN/search/<tower>/catalog.parquet   id, name, image (path relative to image_root), attributes
    RUN/search/<tower>/vectors.npy       (N, D) float32 product embeddings, row i for catalogue row i
    RUN/search/<tower>/query/            query encoder spec + projections (see search.encoders)
    RUN/search/<tower>/export.json       tower, dim, count, image_root, filter_fields, anything else
    RUN/search/selected.json             {"tower": ...}: the tower chosen on validation (optional)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.errors import DataError, MissingDataError
from polymodal.io import atomic_path, write_json
from polymodal.search.encoders import write_query_encoder

FILTER_FIELDS: tuple[str, ...] = ("gender", "masterCategory", "articleType", "baseColour", "season", "usage")
CATALOG_COLUMNS: tuple[str, ...] = ("id", "name", "image", *FILTER_FIELDS, "subCategory")


def write_export(run_dir: str | Path, tower: str, catalog: pd.DataFrame, vectors: np.ndarray,
                 query_spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None, *,
                 image_root: str | Path | None = None, filter_fields: Sequence[str] = FILTER_FIELDS,
                 info: Mapping[str, Any] | None = None) -> Path:
    """Write one tower's export (``export.json`` last, so an export without it is incomplete)."""
    if len(catalog) != len(vectors):
        raise DataError(f"{len(catalog)} catalogue rows but {len(vectors)} vectors")
    folder = Path(run_dir) / "search" / tower
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "export.json").unlink(missing_ok=True)
    cat = catalog.copy()
    cat["id"] = cat["id"].astype(str)
    with atomic_path(folder / "catalog.parquet") as tmp:
        cat.to_parquet(tmp, index=False)
    with atomic_path(folder / "vectors.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(vectors, dtype=np.float32))
    write_query_encoder(folder / "query", query_spec, arrays)
    write_json(folder / "export.json", {"tower": tower, "count": len(cat), "dim": int(np.shape(vectors)[1]),
                                        "image_root": str(image_root) if image_root else None,
                                        "filter_fields": list(filter_fields), **dict(info or {})})
    return folder


def read_export(run_dir: str | Path, tower: str | None = None) -> tuple[Path, dict[str, Any], pd.DataFrame, np.ndarray]:
    """(folder, export.json, catalogue, vectors) of one tower; ``tower=None`` takes the selected or only one."""
    base = Path(run_dir) / "search"
    if not base.is_dir():
        raise MissingDataError(f"{run_dir}: no search/ export in this run (run the product-search recipe, "
                               "or `polymodal index export-zero-shot` for the untrained MiniLM baseline)")
    towers = sorted(p.name for p in base.iterdir() if (p / "export.json").is_file())
    if tower is None:
        selected = base / "selected.json"
        if selected.is_file():
            tower = json.loads(selected.read_text(encoding="utf-8"))["tower"]
        elif len(towers) == 1:
            tower = towers[0]
        else:
            raise DataError(f"{run_dir}: several towers ({', '.join(towers)}); choose one with --tower")
    if tower not in towers:
        raise MissingDataError(f"{run_dir}: no complete export for tower {tower!r}; have {', '.join(towers) or 'none'}")
    folder = base / tower
    meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    catalog = pd.read_parquet(folder / "catalog.parquet")
    vectors = np.load(folder / "vectors.npy")
    return folder, meta, catalog, vectors


def zero_shot_export(data_dir: str | Path, run_dir: str | Path, cache: Any, *, limit: int | None = None) -> Path:
    """The untrained text baseline as an export: frozen MiniLM of each product name (photos attached).

    Products are the ones with a photo (11,882 in the shared data); ``limit`` keeps the first N by id.
    """
    from polymodal.data.sources.fashion import load_fashion
    from polymodal.encoders.text import MINILM_ID, SentenceTextEncoder

    data = load_fashion(data_dir, on_bad_row="skip")
    products = data.products[data.products["image"].notna()].reset_index(drop=True)
    if limit is not None:
        products = products.iloc[:limit]
    image_root = Path(data_dir).resolve() / "fashion_product_images"
    catalog = products[[c for c in CATALOG_COLUMNS if c in products.columns]].copy()
    catalog["image"] = [os.path.relpath(p, image_root) for p in products["image"]]
    encoder = SentenceTextEncoder(MINILM_ID)
    vectors = cache.encode(encoder, catalog["name"].fillna("").tolist())  # (N, 384)
    return write_export(run_dir, "text-minilm-zero-shot", catalog, vectors,
                        {"text": {"kind": "minilm", "model_id": MINILM_ID}}, image_root=image_root,
                        info={"model": "frozen all-MiniLM-L6-v2 on product names, no training",
                              "skips": data.skips.to_dict()})
