"""Search queries without query logs: generated from product attributes and from product names.

There are no query logs for the fashion catalogue, so queries are generated, with graded relevance
judged from the catalogue's own labels:

* **Attribute queries** combine a product type with some of colour, gender and usage in the order a
  shopper types them, e.g. ``"navy blue men casual shirt"``, ``"red women sports shoes"``. Templates:
  (colour, gender, usage, type), (colour, gender, type), (gender, usage, type), (colour, type),
  (gender, type). Relevance of a product: 0 if its ``articleType`` differs, else 1 + the number of the
  query's other attributes it matches; grade ``1 + len(others)`` is a full match.
* **Name queries** take 2-4 words, in order, from one product's display name without its first word
  (usually the brand), e.g. ``"Turtle Check Men Navy Blue Shirt"`` -> ``"check navy shirt"``; the other
  words are held out. Relevance: 3 for that product, 2 for another with the same type, colour and
  gender, 1 for the same type, else 0.

Disjointness (checked by :func:`check_disjoint`): products are split by a hash of their id into
train / valid / test (60/20/20); attribute combinations are split by a hash of their text the same
way. Test queries come only from test products and test combinations and are judged against the test
products only; a test query text that also occurs among train or valid queries is dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "valid", "test")
TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("baseColour", "gender", "usage"),
    ("baseColour", "gender"),
    ("gender", "usage"),
    ("baseColour",),
    ("gender",),
)
_ORDER = ("baseColour", "gender", "usage")
_SKIP_VALUES = {"", "Unknown", "NA", "nan", "None"}
# Words a shopper would not type for the product type (plural forms of the Myntra labels).
_TYPE_WORDS = {"Tshirts": "t-shirt", "Jeans": "jeans", "Shorts": "shorts", "Trousers": "trousers",
               "Track Pants": "track pants", "Briefs": "briefs", "Boxers": "boxers", "Leggings": "leggings",
               "Capris": "capris", "Innerwear Vests": "innerwear vest", "Sunglasses": "sunglasses"}


def split_of(key: str, fractions: tuple[float, float] = (0.6, 0.2)) -> str:
    """train / valid / test by a stable hash of ``key`` (the same on every machine and run)."""
    u = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)
    if u < fractions[0]:
        return "train"
    return "valid" if u < fractions[0] + fractions[1] else "test"


def type_phrase(article_type: str) -> str:
    """``"Shirts"`` -> ``"shirt"``, ``"Sports Shoes"`` -> ``"sports shoe"``: how a shopper names the type."""
    if article_type in _TYPE_WORDS:
        return _TYPE_WORDS[article_type]
    words = article_type.lower().split()
    last = words[-1]
    if last.endswith("es") and last[:-2].endswith(("ss", "sh", "ch", "x")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith("ss"):
        last = last[:-1]
    return " ".join([*words[:-1], last])


@dataclass(frozen=True)
class Query:
    """One generated query: its text, kind, split and how to judge relevance."""

    text: str
    kind: str  # "attribute" or "name"
    split: str
    attributes: tuple[tuple[str, str], ...]  # (field, value) incl. articleType
    target: str | None = None  # name queries: the product id the words come from


def attribute_queries(products: pd.DataFrame) -> list[Query]:
    """Every distinct attribute combination present in ``products``, one query each (sorted by text)."""
    seen: dict[str, Query] = {}
    for row in products.itertuples(index=False):
        article = str(row.articleType)
        if article in _SKIP_VALUES:
            continue
        for template in TEMPLATES:
            values = {f: str(getattr(row, f)) for f in template}
            if any(v in _SKIP_VALUES for v in values.values()):
                continue
            words = [values[f].lower() for f in _ORDER if f in values]
            # "casual" usage + "casual shoe" type would read "casual casual shoe": keep each word once
            tokens = " ".join([*words, type_phrase(article)]).split()
            text = " ".join(dict.fromkeys(tokens))
            if text not in seen:
                attrs = (*sorted(values.items()), ("articleType", article))
                seen[text] = Query(text, "attribute", split_of("combo:" + text), attrs)
    return [seen[t] for t in sorted(seen)]


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


def name_queries(products: pd.DataFrame, rng: np.random.Generator, per_product: int = 1) -> list[Query]:
    """``per_product`` queries of 2-4 in-order words from each name (its first word held out)."""
    out = []
    for row in products.itertuples(index=False):
        words = _WORD.findall(str(row.name))[1:]
        if len(words) < 2:
            continue
        split = split_of("product:" + str(row.id))
        for _ in range(per_product):
            n = int(rng.integers(2, min(4, len(words)) + 1))
            keep = sorted(rng.choice(len(words), size=n, replace=False))
            text = " ".join(words[i].lower() for i in keep)
            attrs = tuple((f, str(getattr(row, f))) for f in ("articleType", "baseColour", "gender"))
            out.append(Query(text, "name", split, attrs, target=str(row.id)))
    return out


def relevance(query: Query, products: pd.DataFrame) -> np.ndarray:
    """(N,) integer grades of ``products`` for one query (see the module docstring)."""
    attrs = dict(query.attributes)
    same_type = (products["articleType"].astype(str) == attrs["articleType"]).to_numpy()
    others = [f for f in attrs if f != "articleType"]
    matches = sum((products[f].astype(str) == attrs[f]).to_numpy().astype(int) for f in others) if others else 0
    if query.kind == "attribute":
        return np.where(same_type, 1 + matches, 0).astype(np.int64)
    grade = np.where(same_type, np.where(matches == len(others), 2, 1), 0)
    grade[(products["id"].astype(str) == query.target).to_numpy()] = 3
    return grade.astype(np.int64)


def relevance_matrix(queries: Sequence[Query], products: pd.DataFrame) -> np.ndarray:
    """(Q, N) grades."""
    if not queries:
        return np.zeros((0, len(products)), dtype=np.int64)
    return np.stack([relevance(q, products) for q in queries])


def full_grade(query: Query) -> int:
    return 3 if query.kind == "name" else len(query.attributes)


def product_split(products: pd.DataFrame) -> np.ndarray:
    """(N,) split of each product."""
    return np.array([split_of("product:" + str(pid)) for pid in products["id"]])


def split_queries(products: pd.DataFrame, seed: int = 0, per_product: int = 1) -> dict[str, list[Query]]:
    """Queries per split, each kept only if a fully relevant product exists among that split's products.

    Train and valid keep their duplicates; a test query whose text occurs in train or valid is dropped.
    """
    rng = np.random.default_rng(seed)
    psplit = product_split(products)
    out: dict[str, list[Query]] = {}
    for split in SPLITS:
        prods = products[psplit == split]
        attr = [q for q in attribute_queries(prods) if q.split == split]
        names = [q for q in name_queries(prods, rng, per_product) if q.split == split]
        out[split] = attr + names
    seen = {q.text for s in ("train", "valid") for q in out[s]}
    out["test"] = [q for q in out["test"] if q.text not in seen]
    return out


def check_disjoint(queries: dict[str, list[Query]], products: pd.DataFrame) -> None:
    """Raise AssertionError unless test queries, combinations and targets are disjoint from train/valid."""
    used = {q.text for s in ("train", "valid") for q in queries[s]}
    test_texts = {q.text for q in queries["test"]}
    overlap = used & test_texts
    if overlap:
        raise AssertionError(f"test query texts also used for training/selection: {sorted(overlap)[:3]}")
    psplit = dict(zip(products["id"].astype(str), product_split(products), strict=True))
    for q in queries["test"]:
        if q.target is not None and psplit[q.target] != "test":
            raise AssertionError(f"test query {q.text!r} targets a non-test product {q.target}")
        if q.kind == "attribute" and q.split != "test":
            raise AssertionError(f"test query {q.text!r} is a non-test combination")
