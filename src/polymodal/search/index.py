"""A product index on disk, published atomically, and its completeness manifest.

Layout of an index folder ``INDEX``::

    INDEX/versions/v-<UTC time>-<pid>/manifest.json   {"complete": true, ...}, written last
    INDEX/versions/v-<UTC time>-<pid>/store/          the vector store (LanceDB)
    INDEX/versions/v-<UTC time>-<pid>/catalog.parquet id, name, attributes, image path
    INDEX/versions/v-<UTC time>-<pid>/query/          what encodes a query (see search.encoders)

A build writes everything into ``INDEX/versions/.tmp-...`` and then makes it visible with one
``os.rename`` to its final ``v-...`` name. Readers take the newest ``v-...`` folder, so a build that
dies at any point before the rename leaves the previous version the current one (its temporary
folder is ignored and removed by the next build); after the rename the new version is complete.
:func:`open_index` refuses a version whose manifest is missing or not marked complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.errors import DataError, PolymodalError
from polymodal.io import pid_alive, write_json
from polymodal.search.store import AnnConfig, LanceVectorStore, VectorStore, recall_at_k

FORMAT = "polymodal-product-index/1"
VERSIONS = "versions"
KEEP_VERSIONS = 2


class IndexIncompleteError(PolymodalError):
    """The index folder has no complete version (absent, interrupted build, or a damaged manifest)."""


@dataclass
class ProductIndex:
    """An opened index version: the store, the catalogue (one row per id) and the manifest."""

    path: Path
    store: VectorStore
    catalog: pd.DataFrame  # index = id (str); columns name, image, attributes...
    manifest: dict[str, Any]
    filter_values: dict[str, list[str]] = field(default_factory=dict)

    @property
    def query_dir(self) -> Path:
        return self.path / "query"


def _versions_dir(root: Path) -> Path:
    return root / VERSIONS


def current_version(root: str | Path) -> Path:
    """The newest published version folder of an index; raises IndexIncompleteError if there is none."""
    root = Path(root)
    vdir = _versions_dir(root)
    names = sorted(p.name for p in vdir.iterdir() if p.name.startswith("v-")) if vdir.is_dir() else []
    if not names:
        raise IndexIncompleteError(f"{root}: no complete index version (was it built with `polymodal index build`?)")
    return vdir / names[-1]


def read_manifest(version: Path) -> dict[str, Any]:
    path = version / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise IndexIncompleteError(f"{version}: manifest.json missing; the index version is incomplete") from err
    except json.JSONDecodeError as err:
        raise IndexIncompleteError(f"{path}: unreadable manifest ({err})") from err
    if manifest.get("format") != FORMAT or manifest.get("complete") is not True:
        raise IndexIncompleteError(f"{path}: not marked complete (format {manifest.get('format')!r})")
    return manifest


def open_index(root: str | Path) -> ProductIndex:
    """Open the current version of an index; raises IndexIncompleteError unless it is complete."""
    version = current_version(root)
    manifest = read_manifest(version)
    store = LanceVectorStore.open(version / "store", AnnConfig(**manifest["ann"]))
    catalog = pd.read_parquet(version / "catalog.parquet")
    catalog["id"] = catalog["id"].astype(str)
    catalog = catalog.set_index("id", drop=False)
    if store.count != manifest["count"] or len(catalog) != manifest["count"]:
        raise IndexIncompleteError(f"{version}: {store.count} vectors and {len(catalog)} catalogue rows, "
                                   f"manifest says {manifest['count']}")
    filter_values = {f: sorted(v for v in catalog[f].astype(str).unique() if v) for f in manifest["filter_fields"]}
    return ProductIndex(version, store, catalog, manifest, filter_values)


def build_index(root: str | Path, catalog: pd.DataFrame, vectors: np.ndarray, *,
                filter_fields: Sequence[str] = (), ann: AnnConfig | None = None,
                write_query: Callable[[Path], Mapping[str, Any]] | None = None,
                info: Mapping[str, Any] | None = None, recall_queries: int = 200, seed: int = 0) -> Path:
    """Build a new index version and publish it with one rename.

    Args:
        root: the index folder (created if absent; an existing index stays readable throughout).
        catalog: N rows with at least ``id`` and ``name``; ``image`` (a file path) if photos are served.
        vectors: (N, D) product embeddings, row i for catalog row i.
        filter_fields: catalogue columns usable as equality filters.
        ann: approximate-index settings.
        write_query: writes what encodes a query into the given folder; returns its description
            (stored in the manifest under ``query``).
        info: anything else to record (source run, model, ...).
        recall_queries: how many catalogue vectors, perturbed, measure ANN recall@10 vs exact.

    Returns:
        The published version folder.
    """
    root = Path(root)
    ann = ann or AnnConfig()
    for col in ("id", "name"):
        if col not in catalog.columns:
            raise DataError(f"catalogue has no {col!r} column", field=col)
    missing = [f for f in filter_fields if f not in catalog.columns]
    if missing:
        raise DataError(f"filter field {missing[0]!r} is not a catalogue column", field=missing[0])
    vdir = _versions_dir(root)
    vdir.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(vdir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = vdir / f".tmp-{stamp}-{os.getpid()}"
    final = vdir / f"v-{stamp}-{os.getpid()}"
    t0 = time.perf_counter()
    try:
        tmp.mkdir()
        ids = catalog["id"].astype(str).tolist()
        store = LanceVectorStore.write(tmp / "store", ids, vectors,
                                       {f: catalog[f].astype(str).tolist() for f in filter_fields}, ann)
        build_s = time.perf_counter() - t0
        cat = catalog.copy()
        cat["id"] = cat["id"].astype(str)
        cat.to_parquet(tmp / "catalog.parquet", index=False)
        query_info = dict(write_query(tmp / "query")) if write_query is not None else {}
        recall = _measure_recall(store, np.asarray(vectors, dtype=np.float32), recall_queries, seed)
        manifest = {
            "format": FORMAT, "complete": True, "count": len(ids), "dim": store.dim,
            "filter_fields": list(filter_fields), "ann": ann.as_dict(), "has_ann_index": store.has_index,
            "ann_recall_at_10": recall, "build_seconds": round(build_s, 3),
            "created_utc": stamp, "query": query_info, "info": dict(info or {}),
        }
        # The manifest is the last file written; the rename below is what publishes the version.
        write_json(tmp / "manifest.json", manifest)
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(vdir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(vdir)
    return final


def _measure_recall(store: LanceVectorStore, vectors: np.ndarray, n: int, seed: int) -> float | None:
    """ANN recall@10 vs exact on ``n`` catalogue vectors plus noise (so a query is not its own item only)."""
    if not store.has_index or n <= 0:
        return None
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(n, len(vectors)), replace=False)
    q = vectors[rows] + rng.normal(scale=0.5 * float(np.std(vectors)), size=(len(rows), vectors.shape[1]))
    return recall_at_k(store, q.astype(np.float32), 10)


def _remove_dead_temps(vdir: Path) -> None:
    """Delete ``.tmp-*`` folders whose building process is gone (a build killed midway)."""
    for p in vdir.glob(".tmp-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _prune(vdir: Path) -> None:
    # A server may still read the previous version, so keep it; older ones go.
    names = sorted(p.name for p in vdir.iterdir() if p.name.startswith("v-"))
    for name in names[:-KEEP_VERSIONS]:
        shutil.rmtree(vdir / name, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
