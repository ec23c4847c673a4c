"""Per-task text baselines for multi-task classification: majority class and TF-IDF logistic regression.

Each task is fitted on the training samples that carry its label (missing labels are ``-1``); C of
the logistic regression is chosen on the validation samples that carry the label (weighted F1, the
MEIJU metric), never on test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

from polymodal.evaluation.multitask import MISSING

__all__ = ["fit_majority", "fit_tfidf_logreg", "proba_full"]


def proba_full(model: object, texts: Sequence[str], n_classes: int) -> np.ndarray:
    """(N, C) probabilities over all C classes (classes absent from the fit get 0)."""
    classes = model.classes_ if hasattr(model, "classes_") else model[-1].classes_
    out = np.zeros((len(texts), n_classes), dtype=np.float64)
    out[:, np.asarray(classes, dtype=int)] = model.predict_proba(list(texts))
    return out


def fit_majority(y: np.ndarray) -> DummyClassifier:
    """The most frequent class of the labelled training samples (``-1`` ignored)."""
    keep = y != MISSING
    return DummyClassifier(strategy="most_frequent").fit(np.zeros((int(keep.sum()), 1)), y[keep])


def fit_tfidf_logreg(train_texts: Sequence[str], y_train: np.ndarray, valid_texts: Sequence[str],
                     y_valid: np.ndarray, cs: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
                     seed: int = 0) -> tuple[Pipeline, float]:
    """TF-IDF (word 1-2 grams, sublinear tf) + multinomial logistic regression, C by validation weighted F1.

    Args:
        train_texts, y_train: training texts and labels (``-1``: no label, not used).
        valid_texts, y_valid: validation texts and labels (``-1`` ignored).
        cs: candidate inverse regularisation strengths.
        seed: random state of the solver.

    Returns:
        The pipeline (vectoriser + the logistic regression of the best C, both fitted on train only)
        and that C.
    """
    tr, va = y_train != MISSING, y_valid != MISSING
    x_tr = [t for t, k in zip(train_texts, tr, strict=True) if k]
    x_va = [t for t, k in zip(valid_texts, va, strict=True) if k]
    # The vectoriser depends on the training texts only, not on C: fit it once.
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit(x_tr)
    m_tr, m_va = vectorizer.transform(x_tr), vectorizer.transform(x_va)
    best: tuple[float, LogisticRegression, float] | None = None
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(m_tr, y_train[tr])
        score = f1_score(y_valid[va], clf.predict(m_va), average="weighted", zero_division=0)
        if best is None or score > best[0]:
            best = (score, clf, c)
    assert best is not None
    return Pipeline([("tfidfvectorizer", vectorizer), ("logisticregression", best[1])]), best[2]
