"""Trivial and learned baselines: estimator API, learning, and validation-only model selection."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from polymodal.baselines import (
    AllPositiveBaseline,
    EmbeddingLogisticBaseline,
    PriorBaseline,
    TfidfLogisticBaseline,
)
from polymodal.evaluation import binary_metrics, choose_threshold

FILLER = [f"w{i}" for i in range(200)]


def _texts(n: int, seed: int, signal_rate: tuple[float, float] = (0.9, 0.1)) -> tuple[list[str], np.ndarray]:
    """Random filler documents; "remission" appears in most positives and few negatives."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    docs = []
    for label in y:
        words = list(rng.choice(FILLER, size=12))
        if rng.random() < signal_rate[0 if label else 1]:
            words.insert(int(rng.integers(0, len(words))), "remission")
        docs.append(" ".join(words))
    return docs, y


def test_prior_baseline() -> None:
    y = np.array([1, 0, 0, 0])
    model = PriorBaseline().fit(["a", "b", "c", "d"], y)
    proba = model.predict_proba(np.zeros((3, 5)))  # any X: only its length matters
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba, [[0.75, 0.25]] * 3)
    assert binary_metrics([0, 1, 0], proba[:, 1], 0.5)["roc_auc"] == 0.5
    assert model.predict([None, None]).tolist() == [0, 0]


def test_all_positive_baseline_predicts_success_for_everyone() -> None:
    model = AllPositiveBaseline().fit([[0]] * 3, [0, 1, 0])
    y_val = np.array([0, 1, 1, 0])
    s_val = model.predict_proba(["t"] * 4)[:, 1]
    threshold = choose_threshold(y_val, s_val)
    assert threshold == 1.0
    m = binary_metrics(y_val, s_val, threshold)
    assert m["recall"] == 1.0 and m["precision"] == 0.5


def test_trivial_estimator_api() -> None:
    for cls in (PriorBaseline, AllPositiveBaseline):
        with pytest.raises(NotFittedError):
            cls().predict_proba([1])
        with pytest.raises(ValueError, match="only 0 and 1"):
            cls().fit([1, 2], [0, 2])
        with pytest.raises(ValueError, match="2 samples but y has 3"):
            cls().fit([1, 2], [0, 1, 0])
        assert clone(cls()).get_params() == {}


def test_tfidf_logistic_learns_planted_word() -> None:
    x_tr, y_tr = _texts(300, seed=0)
    x_va, y_va = _texts(100, seed=1)
    x_te, y_te = _texts(200, seed=2)
    model = TfidfLogisticBaseline(max_features=1000).fit(x_tr, y_tr, x_va, y_va)
    proba = model.predict_proba(x_te)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y_te, proba[:, 1]) > 0.9
    assert model.best_C_ in (0.01, 0.1, 1, 10)
    assert set(model.validation_roc_auc_) == {0.01, 0.1, 1.0, 10.0}


def test_fit_never_sees_test_data() -> None:
    # The only data fit accepts are train and validation.
    for cls in (TfidfLogisticBaseline, EmbeddingLogisticBaseline):
        assert list(inspect.signature(cls.fit).parameters) == ["self", "X_train", "y_train", "X_valid", "y_valid"]


def test_tfidf_C_is_chosen_on_validation_labels() -> None:
    # A weak signal, so that the C values rank differently on validation.
    x_tr, y_tr = _texts(120, seed=3, signal_rate=(0.6, 0.3))
    x_va, y_va = _texts(80, seed=4, signal_rate=(0.6, 0.3))
    a = TfidfLogisticBaseline().fit(x_tr, y_tr, x_va, y_va)
    b = TfidfLogisticBaseline().fit(x_tr, y_tr, x_va, 1 - y_va)  # only validation labels change
    for C, auc in a.validation_roc_auc_.items():
        assert b.validation_roc_auc_[C] == pytest.approx(1 - auc)  # same train-fitted models
    assert a.best_C_ == max(a.validation_roc_auc_, key=a.validation_roc_auc_.get)
    assert a.best_C_ != b.best_C_


def _dense(rng: np.random.Generator, n: int, shift: float, dim: int) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(n) < 0.5).astype(int)
    x = rng.normal(size=(n, dim)) * 3 + 10  # scale and offset: StandardScaler must handle them
    x[:, 0] += shift * y
    return x, y


def test_embedding_logistic_learns() -> None:
    rng = np.random.default_rng(0)
    x_tr, y_tr = _dense(rng, 200, shift=8, dim=10)
    x_va, y_va = _dense(rng, 100, shift=8, dim=10)
    x_te, y_te = _dense(rng, 300, shift=8, dim=10)
    model = EmbeddingLogisticBaseline(class_weight="balanced").fit(x_tr, y_tr, x_va, y_va)
    assert model.predict_proba(x_te).shape == (300, 2)
    assert roc_auc_score(y_te, model.predict_proba(x_te)[:, 1]) > 0.9
    assert model.get_params()["class_weight"] == "balanced"
    assert clone(model).get_params() == model.get_params()


def test_embedding_C_is_chosen_on_validation_labels() -> None:
    # Few samples, many noise features: strong and weak regularisation rank differently.
    rng = np.random.default_rng(0)
    x_tr, y_tr = _dense(rng, 60, shift=4, dim=30)
    x_va, y_va = _dense(rng, 60, shift=4, dim=30)
    a = EmbeddingLogisticBaseline().fit(x_tr, y_tr, x_va, y_va)
    b = EmbeddingLogisticBaseline().fit(x_tr, y_tr, x_va, 1 - y_va)
    assert a.best_C_ == max(a.validation_roc_auc_, key=a.validation_roc_auc_.get)
    assert a.best_C_ != b.best_C_


def test_learned_baseline_validation() -> None:
    x, y = _texts(20, seed=0)
    with pytest.raises(ValueError, match="y_valid has only class 0"):
        TfidfLogisticBaseline().fit(x, y, x, np.zeros(20, int))
    with pytest.raises(ValueError, match="C_grid"):
        TfidfLogisticBaseline(C_grid=()).fit(x, y, x, y)
    with pytest.raises(ValueError, match="single string"):
        TfidfLogisticBaseline().fit("one document", y, x, y)
    with pytest.raises(ValueError):
        EmbeddingLogisticBaseline().fit(np.full((4, 2), np.nan), [0, 1, 0, 1], np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(NotFittedError):
        EmbeddingLogisticBaseline().predict_proba(np.zeros((2, 2)))
