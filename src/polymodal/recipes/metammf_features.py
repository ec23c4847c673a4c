"""MetaMMF item modalities on MovieLens: title text, tag text (frozen text encoder, cached), genres, year.

There are no trailers in MovieLens (the paper's visual and acoustic features came from them): a
user who has visual or acoustic item features adds them as extra ``.npz`` files, each with arrays
``item_id`` (I',) and ``features`` (I', d); items missing from such a file get zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.sources.movielens import MovieLensData
from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.frozen import FrozenEncoder
from polymodal.errors import DataError, MissingDataError

BUILT_IN = ("title", "tags", "genres", "year")


def _aligned(items: pd.DataFrame, item_ids: np.ndarray) -> pd.DataFrame:
    return items.set_index("item_id").loc[item_ids].reset_index()


def _text(texts: Sequence[str], encoder: FrozenEncoder, cache: EmbeddingCache) -> np.ndarray:
    """(N, D) embeddings; an empty text is a zero row (no tags = the modality is absent for that item)."""
    texts = list(texts)
    nonempty = [i for i, t in enumerate(texts) if t]
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    if nonempty:
        out[nonempty] = cache.encode(encoder, [texts[i] for i in nonempty])
    return out


def year_features(years: np.ndarray) -> np.ndarray:
    """(I, 2): standardised year (0 when missing) and a missing flag."""
    missing = np.isnan(years)
    known = years[~missing]
    mean, std = (known.mean(), known.std() or 1.0) if len(known) else (0.0, 1.0)
    z = np.where(missing, 0.0, (years - mean) / std)
    return np.stack([z, missing.astype(float)], axis=1).astype(np.float32)


def load_extra(path: Path, item_ids: np.ndarray) -> np.ndarray:
    """Extra item features from an .npz with ``item_id`` and ``features``, aligned to ``item_ids`` (zeros if absent)."""
    if not path.exists():
        raise MissingDataError(f"{path} not found (extra item features: an .npz with item_id and features)")
    with np.load(path) as z:
        for key in ("item_id", "features"):
            if key not in z:
                raise DataError("missing array", file=path, field=key)
        ids, feats = z["item_id"], z["features"]
    if feats.ndim != 2 or len(ids) != len(feats):
        raise DataError(f"features must be (len(item_id), d), got {feats.shape}", file=path, field="features")
    out = np.zeros((len(item_ids), feats.shape[1]), dtype=np.float32)
    pos = pd.Index(ids).get_indexer(item_ids)
    out[pos >= 0] = feats[pos[pos >= 0]]
    return out


def reduce_text(x: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """PCA of one text modality's embeddings to ``n_components`` (fitted on the items' texts alone:
    no interaction data, so no split leaks). Items without text (zero rows) stay zero rows."""
    from sklearn.decomposition import PCA

    has = np.abs(x).sum(axis=1) > 0
    if n_components <= 0 or n_components >= x.shape[1] or has.sum() <= n_components:
        return x
    out = np.zeros((len(x), n_components), dtype=np.float32)
    out[has] = PCA(n_components, random_state=seed).fit_transform(x[has])
    return out


def item_features(data: MovieLensData, item_ids: np.ndarray, modalities: Sequence[str], encoder: FrozenEncoder,
                  cache: EmbeddingCache, extra: Mapping[str, Path] | None = None, text_dim: int = 0,
                  ) -> dict[str, np.ndarray]:
    """One (I, d_m) float32 matrix per requested modality, rows in ``item_ids`` order.

    ``text_dim > 0`` reduces each text modality with :func:`reduce_text` (the fusion layers then
    project 64 instead of 384 dimensions per item per step, which is most of a training step's cost).
    """
    items = _aligned(data.items, item_ids)
    out: dict[str, np.ndarray] = {}
    for m in modalities:
        if m == "title":
            out[m] = reduce_text(_text(items["title"].tolist(), encoder, cache), text_dim)
        elif m == "tags":
            out[m] = reduce_text(_text(items["tags"].tolist(), encoder, cache), text_dim)
        elif m == "genres":
            index = {g: j for j, g in enumerate(data.genres)}
            g = np.zeros((len(items), len(data.genres)), dtype=np.float32)
            for i, gs in enumerate(items["genres"]):
                g[i, [index[x] for x in gs]] = 1.0
            out[m] = g
        elif m == "year":
            out[m] = year_features(items["year"].to_numpy(dtype=float))
        elif extra and m in extra:
            out[m] = load_extra(Path(extra[m]), item_ids)
        else:
            raise ValueError(f"unknown item modality {m!r}: built-in {BUILT_IN}, extra {sorted(extra or {})}")
    return out
