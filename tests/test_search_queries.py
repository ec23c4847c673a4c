"""The query generator: texts, graded relevance by hand, and test queries disjoint from train/valid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.search.queries import (
    Query,
    attribute_queries,
    check_disjoint,
    name_queries,
    product_split,
    relevance,
    split_queries,
    type_phrase,
)


def _products(n: int = 0) -> pd.DataFrame:
    rows = [
        ("1", "Turtle Check Men Navy Blue Shirt", "Men", "Shirts", "Navy Blue", "Casual"),
        ("2", "Lee Men Navy Blue Formal Shirt", "Men", "Shirts", "Navy Blue", "Formal"),
        ("3", "Arrow Men White Shirt", "Men", "Shirts", "White", "Casual"),
        ("4", "Levis Women Navy Blue Jeans", "Women", "Jeans", "Navy Blue", "Casual"),
    ]
    rng = np.random.default_rng(0)
    colours, types = ["Red", "Blue", "Black", "Green"], ["Shirts", "Tshirts", "Watches", "Casual Shoes"]
    for i in range(n):
        c, t, g = colours[rng.integers(4)], types[rng.integers(4)], ["Men", "Women"][rng.integers(2)]
        rows.append((str(100 + i), f"Brand{i} {g} {c} Item {t} Model{i}", g, t, c, "Casual"))
    return pd.DataFrame(rows, columns=["id", "name", "gender", "articleType", "baseColour", "usage"])


def test_type_phrases() -> None:
    assert type_phrase("Shirts") == "shirt"
    assert type_phrase("Sports Shoes") == "sports shoe"
    assert type_phrase("Tshirts") == "t-shirt"
    assert type_phrase("Jeans") == "jeans"
    assert type_phrase("Watches") == "watch"
    assert type_phrase("Dress") == "dress"


def test_attribute_queries_and_graded_relevance_by_hand() -> None:
    prods = _products()
    texts = {q.text: q for q in attribute_queries(prods)}
    assert "navy blue men casual shirt" in texts and "men shirt" in texts and "navy blue jeans" in texts
    q = texts["navy blue men casual shirt"]
    # product 1 matches type + colour + gender + usage -> 4; product 2 misses usage -> 3;
    # product 3 misses colour -> 3; product 4 is another type -> 0
    assert relevance(q, prods).tolist() == [4, 3, 3, 0]
    assert relevance(texts["men shirt"], prods).tolist() == [2, 2, 2, 0]


def test_name_queries_hold_out_the_brand_and_grade_by_target() -> None:
    prods = _products()
    qs = name_queries(prods, np.random.default_rng(3))
    for q, name in zip(qs, prods["name"], strict=True):
        words = q.text.split()
        assert 2 <= len(words) <= 4
        assert name.split()[0].lower() not in words  # the first word (brand) is held out
        assert all(w in name.lower().split() for w in words)
    q = Query("navy shirt", "name", "test", (("articleType", "Shirts"), ("baseColour", "Navy Blue"), ("gender", "Men")),
              target="1")
    # target 3; product 2 same type, colour, gender -> 2; product 3 same type only -> 1; jeans -> 0
    assert relevance(q, prods).tolist() == [3, 2, 1, 0]


def test_split_is_stable_and_test_queries_are_disjoint() -> None:
    prods = _products(400)
    a, b = split_queries(prods, seed=0), split_queries(prods, seed=0)
    assert [q.text for q in a["test"]] == [q.text for q in b["test"]]
    assert {"train", "valid", "test"} == set(product_split(prods))
    check_disjoint(a, prods)
    used = {q.text for s in ("train", "valid") for q in a[s]}
    assert not used & {q.text for q in a["test"]}
    psplit = dict(zip(prods["id"], product_split(prods), strict=True))
    assert all(psplit[q.target] == "test" for q in a["test"] if q.target)
    # and the check really catches a leak
    leaked = {**a, "test": [*a["test"], a["train"][0]]}
    with pytest.raises(AssertionError, match="also used"):
        check_disjoint(leaked, prods)
