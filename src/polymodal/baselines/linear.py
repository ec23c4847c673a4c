"""Simple learned baselines: logistic regression on TF-IDF texts or on dense feature matrices.

The regularisation strength C is chosen on the VALIDATION split's ROC-AUC; the test split is
never passed to ``fit``. They know nothing about any dataset: documents or matrices in,
probabilities out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted

from polymodal.baselines.trivial import binary_labels, n_samples

__all__ = ["EmbeddingLogisticBaseline", "TfidfLogisticBaseline"]


class _ValidationSelectedLogistic(ClassifierMixin, BaseEstimator):
    """Features fitted on train, then logistic regression with C chosen on validation ROC-AUC."""

    C_grid: Sequence[float]
    class_weight: dict | str | None
    max_iter: int
    random_state: int | None

    def _make_features(self) -> TransformerMixin:
        raise NotImplementedError

    def _check_X(self, X: object) -> object:
        return X

    def fit(self, X_train: object, y_train: object, X_valid: object, y_valid: object) -> _ValidationSelectedLogistic:
        """Fit on train, choose C on validation.

        For each C the features (fitted on train only) feed a logistic regression fitted on
        train; the C with the highest validation ROC-AUC wins (ties go to the smaller C, the
        stronger regularisation). The kept model is that train-fitted model, i.e. exactly the refit
        on train with the chosen C.

        Args:
            X_train: (N_train, ...) training inputs.
            y_train: (N_train,) training labels in {0, 1}, both classes present.
            X_valid: (N_valid, ...) validation inputs.
            y_valid: (N_valid,) validation labels in {0, 1}, both classes present.
        """
        grid = [float(c) for c in self.C_grid]
        if not grid or min(grid) <= 0:
            raise ValueError(f"C_grid must be a non-empty sequence of positive floats, got {self.C_grid!r}")
        X_train, X_valid = self._check_X(X_train), self._check_X(X_valid)
        y_tr = binary_labels(y_train, "y_train", both_classes=True)
        y_va = binary_labels(y_valid, "y_valid", both_classes=True)
        for name, X, y in (("train", X_train, y_tr), ("valid", X_valid, y_va)):
            if n_samples(X) != y.size:
                raise ValueError(f"X_{name} has {n_samples(X)} samples but y_{name} has {y.size}")

        features = self._make_features().fit(X_train)
        f_tr, f_va = features.transform(X_train), features.transform(X_valid)
        self.validation_roc_auc_: dict[float, float] = {}
        best: tuple[float, float, LogisticRegression] | None = None
        for C in sorted(grid):
            model = LogisticRegression(C=C, class_weight=self.class_weight, max_iter=self.max_iter,
                                       random_state=self.random_state).fit(f_tr, y_tr)
            auc = float(roc_auc_score(y_va, model.predict_proba(f_va)[:, 1]))
            self.validation_roc_auc_[C] = auc
            if best is None or auc > best[1]:  # strict: ties keep the smaller C
                best = (C, auc, model)
        assert best is not None
        self.best_C_ = best[0]
        self.pipeline_ = Pipeline([("features", features), ("logistic", best[2])])
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: object) -> np.ndarray:
        """(N, 2) class probabilities; column 1 is P(y = 1)."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(self._check_X(X))

    def predict(self, X: object) -> np.ndarray:
        """(N,) labels at threshold 0.5 (the protocol uses a validation threshold instead)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


class TfidfLogisticBaseline(_ValidationSelectedLogistic):
    """TF-IDF (word n-grams) + logistic regression, C chosen on validation ROC-AUC.

    Args:
        C_grid: inverse regularisation strengths to try.
        max_features: vocabulary size cap (most frequent n-grams in the training texts).
        ngram_range: word n-gram lengths.
        min_df: minimum training document frequency of a term.
        sublinear_tf: use 1 + log(tf), which suits long, repetitive documents.
        class_weight: passed to LogisticRegression (``"balanced"`` for rare positives).
        max_iter: solver iterations.
        random_state: seed passed to LogisticRegression.

    Attributes:
        best_C_: the C chosen on validation.
        validation_roc_auc_: C -> validation ROC-AUC.
        pipeline_: the fitted ``Pipeline([("features", TfidfVectorizer), ("logistic", LogisticRegression)])``.
    """

    def __init__(self, C_grid: Sequence[float] = (0.01, 0.1, 1, 10), max_features: int | None = 50_000,
                 ngram_range: tuple[int, int] = (1, 2), min_df: int | float = 1, sublinear_tf: bool = True,
                 class_weight: dict | str | None = None, max_iter: int = 1000,
                 random_state: int | None = 0) -> None:
        self.C_grid = C_grid
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state

    def _check_X(self, X: object) -> object:
        if isinstance(X, str):
            raise ValueError("expected a sequence of documents, got a single string")
        return X

    def _make_features(self) -> TransformerMixin:
        return TfidfVectorizer(max_features=self.max_features, ngram_range=tuple(self.ngram_range),
                               min_df=self.min_df, sublinear_tf=self.sublinear_tf)


class EmbeddingLogisticBaseline(_ValidationSelectedLogistic):
    """Standardised dense features (e.g. frozen-encoder embeddings) + logistic regression.

    Args:
        C_grid: inverse regularisation strengths to try.
        class_weight: passed to LogisticRegression.
        max_iter: solver iterations.
        random_state: seed passed to LogisticRegression.

    Attributes:
        best_C_: the C chosen on validation.
        validation_roc_auc_: C -> validation ROC-AUC.
        pipeline_: the fitted ``Pipeline([("features", StandardScaler), ("logistic", LogisticRegression)])``.
    """

    def __init__(self, C_grid: Sequence[float] = (0.01, 0.1, 1, 10), class_weight: dict | str | None = None,
                 max_iter: int = 1000, random_state: int | None = 0) -> None:
        self.C_grid = C_grid
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state

    def _check_X(self, X: object) -> np.ndarray:
        return check_array(X, dtype=np.float64)  # (N, D), finite

    def _make_features(self) -> TransformerMixin:
        return StandardScaler()
