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
    run = Path(run_dir)
    # RUN/search/<tower> (pipeline runs) or RUN/jobs/<tower>/seed_0/search/<tower> (the recipe's jobs)
    exports = [*run.glob("search/*/export.json"), *run.glob("jobs/*/*/search/*/export.json")]
    found = {p.parent.name: p.parent for p in exports}
    if not found:
        raise MissingDataError(f"{run_dir}: no search/ export in this run (run the product-search recipe, "
                               "or `polymodal index export-zero-shot` for the untrained MiniLM baseline)")
    towers = sorted(found)
    if tower is None:
        tower = _selected_tower(run, towers)
    if tower not in found:
        raise MissingDataError(f"{run_dir}: no complete export for tower {tower!r}; have {', '.join(towers) or 'none'}")
    folder = found[tower]
    meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    catalog = pd.read_parquet(folder / "catalog.parquet")
    vectors = np.load(folder / "vectors.npy")
    return folder, meta, catalog, vectors


def _selected_tower(run: Path, towers: list[str]) -> str:
    """search/selected.json, else the best validation ndcg@10 in metrics.json, else the only tower."""
    selected = run / "search" / "selected.json"
    if selected.is_file():
        return str(json.loads(selected.read_text(encoding="utf-8"))["tower"])
    metrics = run / "metrics.json"
    if metrics.is_file():
        models = json.loads(metrics.read_text(encoding="utf-8")).get("models", {})
        scored = {t: models[t]["splits"]["valid"]["ndcg@10"]["mean"] for t in towers
                  if t in models and "valid" in models[t].get("splits", {})}
        if scored:
            return max(scored, key=lambda t: scored[t])
    if len(towers) == 1:
        return towers[0]
    raise DataError(f"{run}: several towers ({', '.join(towers)}) and no metrics.json; choose one with --tower")


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
