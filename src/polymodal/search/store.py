"""A narrow vector-store interface and its embedded default, LanceDB.

Everything above this module (index publishing, the service, the CLI) talks to :class:`VectorStore`
only: ``write`` once into an empty folder, ``open`` it, ``search(vector, k, filters)``. A server-based
vector database can replace LanceDB by implementing the same four members.

Scores are cosine similarities (higher is better): vectors are L2-normalised on write and queries on
search, and LanceDB's cosine distance ``d`` is turned back into ``1 - d``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from polymodal.errors import DataError

TABLE = "items"
# Attribute values go into a SQL-like filter string; allow only plain words so no value can
# change the predicate (no quotes, no operators).
_SAFE_VALUE = re.compile(r"^[\w .&'\-/()+]{1,80}$")
_SAFE_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


@dataclass(frozen=True)
class AnnConfig:
    """Approximate-index settings.

    Attributes:
        kind: ``"ivf_pq"`` (LanceDB IVF-PQ), ``"ivf_hnsw_sq"`` or ``"none"`` (exact scan only).
        num_partitions: IVF lists; ``None`` picks about sqrt(N).
        num_sub_vectors: PQ sub-vectors; ``None`` picks D/8 (D must divide evenly).
        nprobes: IVF lists visited per query.
        refine_factor: re-rank ``k * refine_factor`` PQ candidates with the full vectors.
        min_rows: below this many rows no ANN index is built (an exact scan is fast and exact).
    """

    kind: str = "ivf_pq"
    num_partitions: int | None = None
    num_sub_vectors: int | None = None
    nprobes: int = 20
    refine_factor: int | None = 10
    min_rows: int = 5000

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Hits:
    """Search results, best first: ``ids`` (k,) strings and ``scores`` (k,) cosine similarities."""

    ids: list[str]
    scores: list[float]


class VectorStore(Protocol):
    """What the rest of product search needs from a vector database."""

    dim: int
    count: int
    filter_fields: tuple[str, ...]

    def search(self, vector: np.ndarray, k: int, filters: Mapping[str, str] | None = None, *,
               exact: bool = False) -> Hits: ...


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise (N, D) rows; an all-zero row stays zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def check_filters(filters: Mapping[str, str] | None, allowed: Sequence[str]) -> dict[str, str]:
    """Validate attribute filters; raises ValueError naming the bad field or value."""
    out: dict[str, str] = {}
    for field, value in (filters or {}).items():
        if field not in allowed:
            raise ValueError(f"unknown filter field {field!r}; allowed: {', '.join(allowed)}")
        if not isinstance(value, str) or not _SAFE_VALUE.match(value):
            raise ValueError(f"filter {field!r}: value must be 1-80 letters, digits, spaces or .&'-/()+")
        out[field] = value
    return out


class LanceVectorStore:
    """LanceDB table ``items`` (id, vector, filter attributes) in a folder, with an ANN index.

    Use :meth:`write` to create and :meth:`open` to read; the folder is never modified after write
    (atomic publishing is :mod:`polymodal.search.index`'s job).
    """

    def __init__(self, table: Any, dim: int, count: int, filter_fields: Sequence[str], ann: AnnConfig,
                 has_index: bool) -> None:
        self._table = table
        self.dim = dim
        self.count = count
        self.filter_fields = tuple(filter_fields)
        self.ann = ann
        self.has_index = has_index

    @classmethod
    def write(cls, folder: str | Path, ids: Sequence[str], vectors: np.ndarray,
              attributes: Mapping[str, Sequence[str]] | None = None, ann: AnnConfig | None = None,
              batch_rows: int = 100_000) -> LanceVectorStore:
        """Create the table in ``folder`` and build the ANN index.

        Args:
            folder: an empty or absent folder.
            ids: N unique string ids.
            vectors: (N, D) float vectors (normalised here).
            attributes: filterable string columns, each of length N.
            ann: index settings (default IVF-PQ).
            batch_rows: rows per append, so a million rows never sit in one Arrow table twice.
        """
        import lancedb
        import pyarrow as pa

        ann = ann or AnnConfig()
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise DataError(f"vectors must be (N, D) with N = {len(ids)} ids, got shape {vectors.shape}")
        if len(ids) == 0:
            raise DataError("cannot build a vector store with no items")
        if len(set(ids)) != len(ids):
            raise DataError("ids must be unique")
        attributes = {k: list(v) for k, v in (attributes or {}).items()}
        for name, values in attributes.items():
            if not _SAFE_FIELD.match(name) or name in ("id", "vector"):
                raise DataError(f"bad attribute column name {name!r}")
            if len(values) != len(ids):
                raise DataError(f"attribute {name!r} has {len(values)} values for {len(ids)} ids", field=name)
        n, dim = vectors.shape
        db = lancedb.connect(str(folder))
        table = None
        for start in range(0, n, batch_rows):
            stop = min(n, start + batch_rows)
            flat = normalise_rows(vectors[start:stop]).reshape(-1)
            cols = {"id": pa.array([str(i) for i in ids[start:stop]], pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)}
            for name, values in attributes.items():
                cols[name] = pa.array(["" if v is None else str(v) for v in values[start:stop]], pa.string())
            batch = pa.table(cols)
            if table is None:
                table = db.create_table(TABLE, batch)
            else:
                table.add(batch)
        has_index = ann.kind != "none" and n >= ann.min_rows
        if has_index:
            _create_ann_index(table, ann, n, dim)
        return cls(table, dim, n, list(attributes), ann, has_index)

    @classmethod
    def open(cls, folder: str | Path, ann: AnnConfig | None = None) -> LanceVectorStore:
        import lancedb

        db = lancedb.connect(str(folder))
        table = db.open_table(TABLE)
        schema = table.schema
        dim = schema.field("vector").type.list_size
        fields = [f.name for f in schema if f.name not in ("id", "vector")]
        has_index = len(table.list_indices()) > 0
        return cls(table, dim, table.count_rows(), fields, ann or AnnConfig(), has_index)

    def all_vectors(self) -> np.ndarray:
        """(N, D) stored (normalised) vectors in row order; for benchmarks and re-indexing."""
        col = self._table.to_arrow().column("vector").combine_chunks()
        return col.values.to_numpy(zero_copy_only=False).reshape(-1, self.dim).astype(np.float32)

    def search(self, vector: np.ndarray, k: int, filters: Mapping[str, str] | None = None, *,
               exact: bool = False) -> Hits:
        """Top-k items by cosine similarity to ``vector`` (D,), optionally restricted by equality filters.

        ``exact=True`` scans every vector (the reference for ANN recall).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = normalise_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        if q.shape[0] != self.dim:
            raise ValueError(f"query vector has {q.shape[0]} dimensions, the store has {self.dim}")
        filters = check_filters(filters, self.filter_fields)
        query = self._table.search(q).distance_type("cosine").limit(k).select(["id", "_distance"])
        if filters:
            where = " AND ".join(f"{f} = '{v.replace(chr(39), chr(39) * 2)}'" for f, v in filters.items())
            query = query.where(where, prefilter=True)
        if exact or not self.has_index:
            query = query.bypass_vector_index()
        else:
            query = query.nprobes(self.ann.nprobes)
            if self.ann.refine_factor:
                query = query.refine_factor(self.ann.refine_factor)
        table = query.to_arrow()
        ids = [str(x) for x in table.column("id").to_pylist()]
        scores = [1.0 - float(d) for d in table.column("_distance").to_pylist()]
        return Hits(ids, scores)


def _create_ann_index(table: Any, ann: AnnConfig, n: int, dim: int) -> None:
    from lancedb.index import IvfHnswSq, IvfPq

    partitions = ann.num_partitions or max(1, round(float(np.sqrt(n))))
    if ann.kind == "ivf_pq":
        sub = ann.num_sub_vectors or max(1, dim // 8)
        if dim % sub:
            raise DataError(f"num_sub_vectors={sub} must divide the vector width {dim}")
        config: Any = IvfPq(distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub)
    elif ann.kind == "ivf_hnsw_sq":
        config = IvfHnswSq(distance_type="cosine", num_partitions=partitions)
    else:
        raise DataError(f"unknown ANN kind {ann.kind!r}; use ivf_pq, ivf_hnsw_sq or none")
    table.create_index("vector", config=config)


def recall_at_k(store: VectorStore, queries: np.ndarray, k: int = 10) -> float:
    """Mean overlap of the ANN top-k with the exact top-k over (Q, D) query vectors."""
    overlaps = []
    for q in queries:
        approx = set(store.search(q, k).ids)
        exact = store.search(q, k, exact=True).ids
        overlaps.append(len(approx.intersection(exact)) / max(1, len(exact)))
    return float(np.mean(overlaps)) if overlaps else float("nan")
