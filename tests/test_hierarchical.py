"""Taxonomy structure, hierarchical metrics (hand-computed) and the three heads (a planted signal)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.data.taxonomy import Taxonomy, class_words, mask_class_words
from polymodal.evaluation.hierarchical import (
    consistency_rate,
    exact_match,
    hierarchical_metrics,
    hierarchical_prf,
)
from polymodal.heads.hierarchical import TransitionalHead
from polymodal.training.hierarchical import FitOptions, fit_network, predict_log_probs

LEVELS = ("top", "mid", "leaf")
# A -> a1 -> x, A -> a2 -> y, B -> b1 -> x (x has two parents), B -> b1 -> z
TRAIN = pd.DataFrame([
    ("A", "a1", "x"), ("A", "a1", "x"), ("A", "a2", "y"), ("B", "b1", "x"), ("B", "b1", "z"),
], columns=list(LEVELS))


def _tax() -> Taxonomy:
    return Taxonomy.from_frame(TRAIN, LEVELS)


def test_taxonomy_structure_multi_parent_and_rare() -> None:
    tax = _tax()
    assert tax.classes == (("A", "B"), ("a1", "a2", "b1"), ("x", "y", "z"))
    np.testing.assert_array_equal(tax.transition(1), [[1, 0, 0], [0, 1, 0], [1, 0, 1]])
    assert tax.multi_parent() == {"mid": {}, "leaf": {"x": ["a1", "b1"]}}
    assert tax.ancestors(2, "x") == {(1, "a1"), (1, "b1"), (0, "A"), (0, "B")}
    assert tax.rare(2, 2) == {"y", "z"}
    assert tax.encode(2, ["z", "new"]).tolist() == [2, -1]
    assert Taxonomy.from_dict(tax.to_dict()) == tax
    paths = np.array([["A", "a1", "x"], ["B", "b1", "x"], ["A", "b1", "x"], ["A", "a2", "z"]], dtype=object)
    assert tax.consistent(paths).tolist() == [True, True, False, False]


def test_metrics_hand_computed() -> None:
    tax = _tax()
    y_true = np.array([["A", "a1", "x"], ["A", "a2", "y"], ["B", "b1", "z"]], dtype=object)
    y_pred = np.array([["A", "a1", "x"], ["A", "a2", "x"], ["A", "b1", "z"]], dtype=object)
    assert exact_match(y_true, y_pred) == pytest.approx(1 / 3)
    assert consistency_rate(y_pred, tax) == pytest.approx(1 / 3)  # rows 2 (a2->x) and 3 (A->b1) break edges
    # Closures (node sets with ancestors):
    #  row 1: T = P = {A, a1, x, b1, B} (x's ancestors include b1 and B)          -> |T&P| 5, |P| 5, |T| 5
    #  row 2: T = {A, a2, y}; P = {A, a2, x, a1, b1, B}                         -> |T&P| 2, |P| 6, |T| 3
    #  row 3: T = {B, b1, z}; P = {A, b1, B, z}                                 -> |T&P| 3, |P| 4, |T| 3
    hp, hr = 10 / 15, 10 / 11
    got = hierarchical_prf(y_true, y_pred, tax)
    assert got["hierarchical_precision"] == pytest.approx(hp)
    assert got["hierarchical_recall"] == pytest.approx(hr)
    assert got["hierarchical_f1"] == pytest.approx(2 * hp * hr / (hp + hr))
    m = hierarchical_metrics(y_true, y_pred, tax)
    assert m["accuracy_top"] == pytest.approx(2 / 3)
    assert m["accuracy_leaf"] == pytest.approx(2 / 3)
    # leaf macro-F1: x (P 1/2, R 1 -> 2/3), y (0), z (1) -> mean 5/9
    assert m["macro_f1_leaf"] == pytest.approx(5 / 9)


def test_masking_removes_every_class_word_not_gender() -> None:
    words = class_words(["Tshirts", "Flip Flops", "Casual Shoes", "Men Grooming Kit"])
    assert mask_class_words(["Nike Men Blue T-shirt", "Puma Women Flip-Flops", "Bata Casual Shoe"], words) == [
        "Nike Men Blue", "Puma Women", "Bata"]


def test_transitional_head_blocks_children_of_improbable_parents() -> None:
    tax = _tax()
    head = TransitionalHead(4, [torch.as_tensor(tax.transition(i)) for i in range(2)])
    with torch.no_grad():
        head.levels[0].bias.copy_(torch.tensor([20.0, -20.0]))  # certain of A
        head.levels[2].bias.copy_(torch.tensor([0.0, 0.0, 10.0]))  # the leaf logits prefer z (a B-only child)
    lp = head(torch.zeros(1, 4))
    probs = [p.exp() for p in lp]
    for p in probs:
        assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert probs[1][0, 2].item() < 1e-6  # b1 is under B only
    assert probs[2][0, 2].item() < 1e-6  # z is under b1 only
    assert probs[2][0].argmax().item() in (0, 1)


@pytest.mark.parametrize("head", ["flat", "top-down", "transitional"])
def test_heads_learn_a_planted_signal(head: str, one_torch_thread: None) -> None:
    """The leaf is planted in the image features only when the name is absent: each head must find it."""
    rng = np.random.default_rng(0)
    leaves = np.array(["x", "y", "z"])
    parent = {"x": ("A", "a1"), "y": ("A", "a2"), "z": ("B", "b1")}

    def make(n: int) -> tuple[dict, np.ndarray]:
        leaf = rng.integers(0, 3, n)
        image = rng.normal(size=(n, 8)).astype(np.float32)
        image[np.arange(n), leaf] += 3.0
        name = rng.normal(size=(n, 5)).astype(np.float32)
        labels = [(*parent[leaves[i]], leaves[i]) for i in leaf]
        y = np.stack([_tax().encode(j, [lab[j] for lab in labels]) for j in range(3)], axis=1)
        return {"image": (image, np.ones(n, bool)), "name": (name, np.zeros(n, bool))}, y

    train, y_train = make(600)
    valid, y_valid = make(200)
    tax = _tax()
    model, info = fit_network(train, y_train, valid, y_valid, tax.sizes, [tax.transition(i) for i in range(2)],
                              FitOptions(head=head, dim=16, hidden=32, max_epochs=15, patience=3, batch_size=64),
                              seed=0)
    test, y_test = make(300)
    pred = np.stack([lp.argmax(1) for lp in predict_log_probs(model, test)], axis=1)
    assert np.mean(np.all(pred == y_test, axis=1)) > 0.9
    assert info["best_epoch"] >= 0


def test_attention_fusion_runs_with_a_missing_modality(one_torch_thread: None) -> None:
    tax = _tax()
    rng = np.random.default_rng(1)
    n = 40
    inputs = {"image": (rng.normal(size=(n, 6)).astype(np.float32), rng.random(n) > 0.5),
              "name": (rng.normal(size=(n, 4)).astype(np.float32), np.ones(n, bool))}
    y = np.tile([[0, 0, 0]], (n, 1))
    model, _ = fit_network(inputs, y, inputs, y, tax.sizes, [tax.transition(i) for i in range(2)],
                           FitOptions(fusion="attention", dim=8, hidden=8, max_epochs=2, batch_size=16), seed=0)
    lps = predict_log_probs(model, inputs)
    assert [lp.shape for lp in lps] == [(n, 2), (n, 3), (n, 3)]
    assert all(np.isfinite(lp).all() for lp in lps)
