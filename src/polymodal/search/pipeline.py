"""The product-search run on the real data: features, experiment, predictions, metrics and index exports.

:func:`product_search_predictions` is the entry point the ``product-search`` recipe wires into the
runner: it returns the long predictions table (:class:`polymodal.tasks.retrieval.RetrievalTask`
columns) for the fashion catalogue. :func:`run_product_search_folder` also evaluates it and writes
``predictions.csv``, ``metrics.json``, ``info.json``, ``exclusive_matches.csv`` and one index export
per tower (``search/<tower>/``, see :mod:`polymodal.search.export`) with the validation-selected tower
in ``search/selected.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.search.experiment import COMPARISONS, HEADLINE, TOWER_NAMES, SearchResult, exclusive_matches
from polymodal.search.towers import VARIANTS, TrainConfig


def load_catalogue(data_dir: str | Path, cache: Any, limit: int | None = None, *, text_encoder: Any = None,
                   image_encoder: Any = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]:
    """Products with a photo, frozen name embeddings (N, 384 for MiniLM) and photo features (N, 1280).

    ``text_encoder`` / ``image_encoder`` replace MiniLM / EfficientNet-Lite0 (tests pass small ones).
    """
    from polymodal.data.sources.fashion import fashion_image_features, load_fashion
    from polymodal.encoders.text import SentenceTextEncoder

    data = load_fashion(data_dir, on_bad_row="skip")
    products = data.products[data.products["image"].notna()].reset_index(drop=True)
    if limit is not None:
        products = products.iloc[:limit].reset_index(drop=True)
    names = cache.encode(text_encoder or SentenceTextEncoder(), products["name"].fillna("").astype(str).tolist())
    feats, has = fashion_image_features(products["image"].tolist(), cache, image_encoder, skips=data.skips)
    keep = np.flatnonzero(has)  # a product whose photo is unreadable has no photo tower input
    info = {"skips": data.skips.to_dict(), "n_products_with_photo": len(products), "n_unreadable": int((~has).sum())}
    return products.iloc[keep].reset_index(drop=True), names[keep], feats[keep], info


def product_search_predictions(data_dir: str | Path, cache: Any, *, seeds: Sequence[int] = (0, 1, 2),
                               variants: Sequence[str] = VARIANTS, cfg: TrainConfig | None = None,
                               limit: int | None = None) -> tuple[pd.DataFrame, SearchResult, pd.DataFrame]:
    """(predictions, the experiment result, the products) on the fashion catalogue."""
    products, names, feats, info = load_catalogue(data_dir, cache, limit)
    result = _experiment(products, names, feats, info, cache, seeds, variants, cfg)
    return result.predictions, result, products


def _experiment(products: pd.DataFrame, names: np.ndarray, feats: np.ndarray, info: dict[str, Any], cache: Any,
                seeds: Sequence[int], variants: Sequence[str], cfg: TrainConfig | None,
                text_encoder: Any = None) -> SearchResult:
    from polymodal.encoders.text import SentenceTextEncoder
    from polymodal.search.experiment import run_product_search

    encoder = text_encoder or SentenceTextEncoder()
    result = run_product_search(products, names, feats, lambda texts: cache.encode(encoder, list(texts)),
                                seeds=seeds, variants=variants, cfg=cfg)
    result.info["data"] = info
    result.info["features"] = {"name": encoder.cache_key, "photo": "image:efficientnet-lite0 (frozen, 224 px squash)"}
    return result


def write_tower_exports(run_dir: Path, result: SearchResult, products: pd.DataFrame, names: np.ndarray,
                        feats: np.ndarray, image_root: Path, seed: int = 0,
                        query_spec: dict[str, Any] | None = None) -> dict[str, str]:
    """One export per trained tower (seed ``seed``), over every product; returns tower -> folder.

    ``query_spec``: the frozen text encoder's spec (default MiniLM); the tower's projection is added.
    """
    import torch

    from polymodal.search.export import CATALOG_COLUMNS, write_export
    from polymodal.search.towers import product_vectors

    catalog = products[[c for c in CATALOG_COLUMNS if c in products.columns]].copy()
    catalog["image"] = [os.path.relpath(p, image_root) for p in products["image"]]
    out = {}
    for (variant, s), model in result.models.items():
        if s != seed:
            continue
        vecs = product_vectors(model, names, feats)
        w_q = model.query.weight.detach().numpy().T  # (384, D)
        base = dict(query_spec or {"kind": "minilm"})
        spec: dict[str, Any] = {"text": {**base, "projection": "text_proj.npy"}}
        arrays = {"text_proj.npy": w_q}
        if variant == "image":
            assert model.image is not None
            with torch.no_grad():
                arrays.update({"image_proj.npy": model.image.weight.numpy().T,
                               "image_bias.npy": model.image.bias.numpy(),
                               "image_mean.npy": model.image_mean.numpy(), "image_std.npy": model.image_std.numpy()})
            spec["image"] = {"kind": "efficientnet-lite0", "projection": "image_proj.npy", "bias": "image_bias.npy",
                             "mean": "image_mean.npy", "std": "image_std.npy"}
        name = TOWER_NAMES[variant]
        folder = write_export(run_dir, name, catalog, vecs, spec, arrays, image_root=image_root,
                              info={"model": name, "seed": seed, "variant": variant})
        out[name] = str(folder)
    return out


def run_product_search_folder(data_dir: str | Path, run_dir: str | Path, cache: Any, *,
                              seeds: Sequence[int] = (0, 1, 2), variants: Sequence[str] = VARIANTS,
                              cfg: TrainConfig | None = None, limit: int | None = None,
                              n_boot: int = 1000, text_encoder: Any = None, image_encoder: Any = None,
                              query_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run, evaluate and export; returns metrics (also written to ``run_dir/metrics.json``)."""
    from polymodal.io import write_json
    from polymodal.tasks.retrieval import RetrievalTask

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    products, names, feats, info = load_catalogue(data_dir, cache, limit, text_encoder=text_encoder,
                                                  image_encoder=image_encoder)
    result = _experiment(products, names, feats, info, cache, seeds, variants, cfg, text_encoder)
    predictions = result.predictions
    predictions.to_csv(run_dir / "predictions.csv", index=False)
    task = RetrievalTask(headline=HEADLINE, selections=("valid", ""), comparisons=COMPARISONS, n_boot=n_boot)
    metrics = task.evaluate(predictions)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "info.json", result.info)
    judge = _judge(result)
    exclusive_matches(predictions, relevant=judge).to_csv(run_dir / "exclusive_matches.csv", index=False)
    image_root = Path(data_dir).resolve() / "fashion_product_images"
    exports = write_tower_exports(run_dir, result, products, names, feats, image_root, query_spec=query_spec)
    valid = {m: metrics["models"][m]["splits"]["valid"]["ndcg@10"]["mean"] for m in exports}
    best = max(valid, key=lambda m: valid[m])
    write_json(run_dir / "search" / "selected.json", {"tower": best, "by": "valid ndcg@10 (mean over seeds)",
                                                     "valid_ndcg@10": valid})
    return metrics


def _judge(result: SearchResult) -> Any:
    """relevant(query text, product id) -> True when the product fully matches the test query."""
    from polymodal.search.queries import full_grade, relevance

    by_text = {q.text: q for q in result.queries.get("test", [])}

    def relevant(text: str, pid: str) -> bool | None:
        q = by_text.get(text)
        if q is None or result.products is None:
            return None
        row = result.products[result.products["id"].astype(str) == pid]
        return bool(relevance(q, row)[0] >= full_grade(q)) if len(row) else None

    return relevant
