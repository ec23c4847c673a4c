"""Vector store (LanceDB) and atomic index publishing, including a build killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("lancedb", reason="the `search` extra (lancedb) is not installed")

from polymodal.errors import DataError
from polymodal.search.index import IndexIncompleteError, build_index, current_version, open_index
from polymodal.search.store import AnnConfig, LanceVectorStore, check_filters, recall_at_k

EXACT = AnnConfig(kind="none")


def _catalog(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    cat = pd.DataFrame({"id": [str(1000 + i) for i in range(n)], "name": [f"item {i}" for i in range(n)],
                        "gender": ["Men" if i % 2 else "Women" for i in range(n)],
                        "baseColour": ["Navy Blue" if i % 3 == 0 else "Red" for i in range(n)]})
    return cat, rng.normal(size=(n, 16)).astype(np.float32)


def test_exact_search_ranks_by_cosine_and_filters(tmp_path: Path) -> None:
    vecs = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    store = LanceVectorStore.write(tmp_path / "s", ["a", "b", "c", "d"], vecs,
                                   {"gender": ["Men", "Women", "Men", "Men"]}, EXACT)
    hits = store.search(np.array([2.0, 0.0]), 3)
    assert hits.ids == ["a", "b", "c"]
    # cosine(a)=1, cosine(b)=0.9/sqrt(0.82), cosine(c)=0
    assert hits.scores == pytest.approx([1.0, 0.9 / np.sqrt(0.82), 0.0], abs=1e-5)
    assert store.search(np.array([1.0, 0.0]), 3, {"gender": "Men"}).ids == ["a", "c", "d"]
    reopened = LanceVectorStore.open(tmp_path / "s")
    assert (reopened.dim, reopened.count, reopened.filter_fields) == (2, 4, ("gender",))


def test_filters_reject_unknown_fields_and_injection() -> None:
    assert check_filters({"gender": "Men"}, ["gender"]) == {"gender": "Men"}
    with pytest.raises(ValueError, match="unknown filter field"):
        check_filters({"colour": "Red"}, ["gender"])
    with pytest.raises(ValueError, match="value must be"):
        check_filters({"gender": "Men' OR 1=1 --"}, ["gender"])


def test_ann_index_recall_against_exact(tmp_path: Path) -> None:
    # Clustered data, as embeddings are: the IVF-PQ top-10 should overlap the exact top-10 well.
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 32))
    vecs = (centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 32))).astype(np.float32)
    ann = AnnConfig(kind="ivf_pq", num_partitions=16, num_sub_vectors=8, nprobes=8, refine_factor=10, min_rows=0)
    store = LanceVectorStore.write(tmp_path / "s", [str(i) for i in range(3000)], vecs, None, ann)
    assert store.has_index
    assert recall_at_k(store, vecs[:30] + 0.1 * rng.normal(size=(30, 32)).astype(np.float32)) >= 0.8


def test_build_publish_and_open(tmp_path: Path) -> None:
    cat, vecs = _catalog(50)
    version = build_index(tmp_path / "idx", cat, vecs, filter_fields=["gender", "baseColour"], ann=EXACT)
    index = open_index(tmp_path / "idx")
    assert index.path == version
    assert index.manifest["complete"] is True and index.manifest["count"] == 50
    assert index.filter_values["gender"] == ["Men", "Women"]
    hits = index.store.search(vecs[7], 1)
    assert hits.ids == ["1007"]
    assert index.catalog.loc["1007", "name"] == "item 7"


def test_open_refuses_missing_or_incomplete_index(tmp_path: Path) -> None:
    with pytest.raises(IndexIncompleteError, match="no complete index version"):
        open_index(tmp_path / "absent")
    cat, vecs = _catalog(10)
    version = build_index(tmp_path / "idx", cat, vecs, ann=EXACT)
    (version / "manifest.json").write_text('{"format": "polymodal-product-index/1", "complete": false}')
    with pytest.raises(IndexIncompleteError, match="not marked complete"):
        open_index(tmp_path / "idx")
    (version / "manifest.json").unlink()
    with pytest.raises(IndexIncompleteError, match=r"manifest\.json missing"):
        open_index(tmp_path / "idx")


def test_bad_build_input_is_a_data_error(tmp_path: Path) -> None:
    cat, vecs = _catalog(5)
    with pytest.raises(DataError, match="filter field 'size'"):
        build_index(tmp_path / "idx", cat, vecs, filter_fields=["size"], ann=EXACT)
    with pytest.raises(DataError, match="vectors must be"):
        build_index(tmp_path / "idx", cat, vecs[:3], ann=EXACT)
    with pytest.raises(IndexIncompleteError):
        open_index(tmp_path / "idx")  # failed builds published nothing


_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np, pandas as pd
    import polymodal.search.store as store
    from polymodal.search.index import build_index

    root, flag = Path(sys.argv[1]), Path(sys.argv[2])

    def stall(*args, **kwargs):
        # The vectors are written; the ANN index is not. Say so and wait to be killed.
        flag.write_text("in build")
        time.sleep(120)

    store._create_ann_index = stall
    n = 400
    cat = pd.DataFrame({"id": [f"new{i}" for i in range(n)], "name": ["new"] * n})
    build_index(root, cat, np.ones((n, 16), dtype=np.float32),
                ann=store.AnnConfig(kind="ivf_pq", num_partitions=2, num_sub_vectors=2, min_rows=0))
""")


def test_build_killed_midway_leaves_old_index_usable(tmp_path: Path) -> None:
    cat, vecs = _catalog(30)
    old = build_index(tmp_path / "idx", cat, vecs, ann=EXACT)
    flag = tmp_path / "flag"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / "idx"), str(flag)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, "the build process ended before reaching the index step"
            assert time.monotonic() < deadline, "the build did not reach the index step in 60 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    temps = list((tmp_path / "idx" / "versions").glob(".tmp-*"))
    assert len(temps) == 1 and (temps[0] / "store").exists()  # it really died midway
    index = open_index(tmp_path / "idx")
    assert index.path == old and index.manifest["count"] == 30
    assert index.store.search(vecs[3], 1).ids == ["1003"]
    # The next build cleans the dead temporary folder and publishes normally.
    new = build_index(tmp_path / "idx", cat.iloc[:20], vecs[:20], ann=EXACT)
    assert not list((tmp_path / "idx" / "versions").glob(".tmp-*"))
    assert current_version(tmp_path / "idx") == new and open_index(tmp_path / "idx").manifest["count"] == 20
