"""The product-search evaluation: towers, baselines and cross-modal retrieval as one predictions table.

:func:`run_product_search` takes products with frozen features, generates the queries
(:mod:`polymodal.search.queries`), trains every tower variant for each seed (early stopping on the
validation queries over the validation products), scores the baselines, and returns the long
predictions table of :class:`polymodal.tasks.retrieval.RetrievalTask` (one row per model, seed,
split and query), plus the trained models for the index exports.

Splits: products are split 60/20/20 by id hash; valid queries are judged against valid products and
test queries against test products, so no test product or test query text is seen in training or
selection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from polymodal.search.metrics import ranking, retrieval_metrics
from polymodal.search.queries import Query, check_disjoint, full_grade, product_split, relevance_matrix, split_queries
from polymodal.search.towers import VARIANTS, Towers, TrainConfig, product_vectors, query_vectors, train_towers

TOWER_NAMES = {"text": "text-tower", "image": "image-tower", "mm3": "mm-3tower", "mm4": "mm-4tower"}
TOWER_KINDS = {"text": "ablation", "image": "ablation", "mm3": "recipe", "mm4": "recipe"}
HEADLINE = "mm-4tower"
COMPARISONS = [("mm-4tower", "text-tower"), ("mm-3tower", "text-tower"), ("mm-4tower", "mm-3tower"),
               ("text-tower", "tfidf-names"), ("mm-4tower", "tfidf-names")]


@dataclass
class SearchResult:
    predictions: pd.DataFrame
    models: dict[tuple[str, int], Towers] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    queries: dict[str, list[Query]] = field(default_factory=dict)
    products: pd.DataFrame | None = None


def _rows(model: str, kind: str, seed: int, split: str, queries: Sequence[Query], scores: np.ndarray,
          rel: np.ndarray, ids: np.ndarray, selection: str = "valid", subset: str = "all",
          kinds: Sequence[str] | None = None, labels: Sequence[str] | None = None) -> pd.DataFrame:
    metrics = retrieval_metrics(scores, rel, 10)
    top = ids[ranking(scores)[:, :10]]
    return pd.DataFrame({
        "model": model, "kind": kind, "selection": selection, "fold": 0, "seed": seed, "condition": "none",
        "subset": subset, "split": split,
        "id": [f"{split}:{i}" for i in range(len(scores))],
        "query": labels if labels is not None else [q.text for q in queries],
        "query_kind": kinds if kinds is not None else [q.kind for q in queries],
        **{m: v for m, v in metrics.items()},
        "top10": [" ".join(t) for t in top],
    })


def _graded(queries: list[Query], products: pd.DataFrame) -> tuple[list[Query], np.ndarray]:
    """Queries that have a fully relevant product here, with their (Q, N) grades."""
    rel = relevance_matrix(queries, products)
    keep = [i for i, q in enumerate(queries) if (rel[i] >= full_grade(q)).any()]
    return [queries[i] for i in keep], rel[keep]


def tfidf_scores(queries: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """(Q, N) cosine of word 1-2-gram TF-IDF vectors; vocabulary and IDF from the searched catalogue's names
    (what a search engine indexes; no query or label is used)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b[\w-]+\b").fit(names)
    return (vec.transform(queries) @ vec.transform(names).T).toarray()


@dataclass
class Prepared:
    """Everything the tower and baseline jobs share: splits, graded queries and their features."""

    products: pd.DataFrame
    name_emb: np.ndarray
    image_feat: np.ndarray
    queries: dict[str, list[Query]]
    part: dict[str, np.ndarray]  # split -> product rows
    ids: np.ndarray  # (N,) product ids as str
    train_query_emb: np.ndarray  # (P, 384)
    pairs_product: np.ndarray  # (P,) train-product row, -1 for attribute queries
    pool: list[np.ndarray]  # per pair: fully relevant train-product rows
    graded: dict[str, tuple[list[Query], np.ndarray, np.ndarray, np.ndarray]]  # split -> (queries, rel, emb, rows)

    def info(self) -> dict[str, Any]:
        return {"n_products": {s: len(v) for s, v in self.part.items()},
                "n_queries": {s: len(self.graded[s][0]) for s in self.graded} | {"train": len(self.pairs_product)},
                "n_queries_by_kind": {s: pd.Series([q.kind for q in self.graded[s][0]]).value_counts().to_dict()
                                      for s in self.graded}}


def prepare(products: pd.DataFrame, name_emb: np.ndarray, image_feat: np.ndarray,
            encode_queries: Callable[[list[str]], np.ndarray], query_seed: int = 0) -> Prepared:
    """Split products, generate and grade queries (disjointness checked), encode them."""
    products = products.reset_index(drop=True)
    psplit = product_split(products)
    queries = split_queries(products, seed=query_seed)
    check_disjoint(queries, products)
    part = {s: np.flatnonzero(psplit == s) for s in ("train", "valid", "test")}
    # Training pairs: a name query's target; an attribute query draws one fully relevant product per epoch.
    train_prods = products.iloc[part["train"]].reset_index(drop=True)
    tq, trel = _graded(queries["train"], train_prods)
    pairs_product = np.full(len(tq), -1)
    train_ids = train_prods["id"].astype(str).to_numpy()
    pool: list[np.ndarray] = []
    for j, q in enumerate(tq):
        pool.append(np.flatnonzero(trel[j] >= full_grade(q)))
        if q.kind == "name":
            pairs_product[j] = int(np.flatnonzero(train_ids == q.target)[0])
    graded = {}
    for split in ("valid", "test"):
        prods = products.iloc[part[split]].reset_index(drop=True)
        qs, rel = _graded(queries[split], prods)
        graded[split] = (qs, rel, encode_queries([q.text for q in qs]), part[split])
    return Prepared(products, name_emb, image_feat, queries, part, products["id"].astype(str).to_numpy(),
                    encode_queries([q.text for q in tq]), pairs_product, pool, graded)


def tower_rows(prep: Prepared, variant: str, seed: int, cfg: TrainConfig) -> tuple[pd.DataFrame, Towers, dict]:
    """Train one tower variant for one seed; its valid/test (and cross-modal) rows, the model, its history."""
    name_emb, image_feat, ids = prep.name_emb, prep.image_feat, prep.ids

    def valid_ndcg(model: Towers) -> float:
        _qs, rel, qemb, rows = prep.graded["valid"]
        scores = query_vectors(model, qemb) @ product_vectors(model, name_emb[rows], image_feat[rows]).T
        return float(retrieval_metrics(scores, rel)["ndcg@10"].mean())

    train = prep.part["train"]
    model, hist = train_towers(variant, prep.train_query_emb, prep.pairs_product, name_emb[train], image_feat[train],
                               valid_ndcg, cfg, seed, attribute_pool=prep.pool)
    name, frames = TOWER_NAMES[variant], []
    for split in ("valid", "test"):
        qs, rel, qemb, rows = prep.graded[split]
        scores = query_vectors(model, qemb) @ product_vectors(model, name_emb[rows], image_feat[rows]).T
        frames.append(_rows(name, TOWER_KINDS[variant], seed, split, qs, scores, rel, ids[rows]))
        if variant in ("mm3", "mm4"):
            frames.extend(_cross_modal(name, TOWER_KINDS[variant], seed, split, model, name_emb[rows],
                                       image_feat[rows], ids[rows]))
    return pd.concat(frames, ignore_index=True), model, hist


def baseline_rows(prep: Prepared, seeds: Sequence[int]) -> pd.DataFrame:
    """TF-IDF and zero-shot MiniLM (deterministic, seed 0), random and popular-type (each seed).

    Selection is "" for all of them: nothing is chosen on validation.
    """
    products, ids, frames = prep.products, prep.ids, []
    type_counts = products["articleType"].iloc[prep.part["train"]].value_counts()
    for split in ("valid", "test"):
        qs, rel, qemb, rows = prep.graded[split]
        names = products["name"].iloc[rows].astype(str).tolist()
        texts = [q.text for q in qs]
        frames.append(_rows("tfidf-names", "baseline", 0, split, qs, tfidf_scores(texts, names), rel,
                            ids[rows], selection=""))
        zs = qemb @ prep.name_emb[rows].T  # both unit-normalised MiniLM
        frames.append(_rows("minilm-zero-shot", "baseline", 0, split, qs, zs, rel, ids[rows], selection=""))
        for seed in seeds:
            rng = np.random.default_rng(1000 + seed)
            frames.append(_rows("random", "trivial", seed, split, qs, rng.random(rel.shape), rel, ids[rows],
                                selection=""))
            # No purchase logs: "popularity" is how common the product's type is among train products,
            # ties broken at random.
            pop = products["articleType"].iloc[rows].map(type_counts).fillna(0).to_numpy(dtype=float)
            scores = np.broadcast_to(pop, rel.shape) + rng.random(rel.shape) * 0.5
            frames.append(_rows("popular-type", "trivial", seed, split, qs, scores, rel, ids[rows], selection=""))
            n = len(rows)
            frames.extend(_cross_modal_rows("random", "trivial", seed, split, rng.random((n, n)), ids[rows], ""))
    return pd.concat(frames, ignore_index=True)


def run_product_search(products: pd.DataFrame, name_emb: np.ndarray, image_feat: np.ndarray,
                       encode_queries: Callable[[list[str]], np.ndarray], *, seeds: Sequence[int] = (0, 1, 2),
                       variants: Sequence[str] = VARIANTS, cfg: TrainConfig | None = None,
                       query_seed: int = 0) -> SearchResult:
    """Train and evaluate everything in one process; see the module docstring.

    Args:
        products: N products with id, name, articleType, baseColour, gender, usage (photos all present).
        name_emb: (N, 384) frozen MiniLM of the names.
        image_feat: (N, 1280) frozen photo features.
        encode_queries: texts -> (Q, 384) frozen MiniLM (through the embedding cache).
        seeds: training seeds of the towers (and of the random baseline).
        variants: tower variants to train.
        cfg: training settings.
        query_seed: seed of the name-query word draws.
    """
    cfg = cfg or TrainConfig()
    prep = prepare(products, name_emb, image_feat, encode_queries, query_seed)
    frames, models = [], {}
    info: dict[str, Any] = {**prep.info(), "training": {}}
    for variant in variants:
        for seed in seeds:
            rows, model, hist = tower_rows(prep, variant, seed, cfg)
            frames.append(rows)
            models[(variant, seed)] = model
            info["training"][f"{TOWER_NAMES[variant]}/seed{seed}"] = hist
    frames.append(baseline_rows(prep, seeds))
    return SearchResult(pd.concat(frames, ignore_index=True), models, info, prep.queries, prep.products)


def _cross_modal_rows(model: str, kind: str, seed: int, split: str, scores: np.ndarray, ids: np.ndarray,
                      selection: str = "valid") -> list[pd.DataFrame]:
    """Name-to-photo (scores rows = names) and photo-to-name (the transpose); the match is the diagonal."""
    rel = np.eye(len(ids), dtype=np.int64)
    out = []
    for kind_name, s in (("name-to-photo", scores), ("photo-to-name", scores.T)):
        out.append(_rows(model, kind, seed, split, [], s, rel, ids, selection=selection, subset=kind_name,
                         kinds=[kind_name] * len(ids), labels=list(ids)))
    return out


def _cross_modal(name: str, kind: str, seed: int, split: str, model: Towers, text: np.ndarray,
                 image: np.ndarray, ids: np.ndarray) -> list[pd.DataFrame]:
    import torch

    with torch.no_grad():
        t = model.encode_text(torch.as_tensor(text, dtype=torch.float32)).numpy()
        i = model.encode_image(torch.as_tensor(image, dtype=torch.float32)).numpy()
    return _cross_modal_rows(name, kind, seed, split, t @ i.T, ids)


def exclusive_matches(predictions: pd.DataFrame, a: str = HEADLINE, b: str = "text-tower", seed: int = 0,
                      products: pd.DataFrame | None = None, relevant: Callable[[str, str], bool] | None = None
                      ) -> pd.DataFrame:
    """Products in ``a``'s test top-10 but not in ``b``'s, per query (seed ``seed``, subset all).

    Returns one row per (query, product) with ``relevant`` when a judge is given.
    """
    test = predictions[(predictions["split"] == "test") & (predictions["subset"] == "all")
                       & (predictions["seed"] == seed)]
    ta = test[test["model"] == a].set_index("id")
    tb = test[test["model"] == b].set_index("id")
    rows = []
    for qid, row in ta.iterrows():
        if qid not in tb.index:
            continue
        only = [p for p in row["top10"].split() if p not in set(tb.loc[qid, "top10"].split())]
        for pid in only:
            rows.append({"id": qid, "query": row["query"], "query_kind": row["query_kind"], "product": pid,
                         "relevant": relevant(row["query"], pid) if relevant else None})
    return pd.DataFrame(rows)
