"""Trivial baselines that ignore the features: every report shows them beside the model.

A model that cannot beat :class:`PriorBaseline` on ROC-AUC has learned no ranking, and one whose
F1 does not beat :class:`AllPositiveBaseline` ("predict success for every trial") has learned no
useful decision; several published trial-outcome F1 scores sit close to the latter.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["AllPositiveBaseline", "PriorBaseline", "binary_labels", "n_samples"]


def n_samples(X: object) -> int:
    """Number of samples in anything indexable by sample: a list of texts, an array, a DataFrame."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1:
        return int(shape[0])
    try:
        return len(X)  # type: ignore[arg-type]
    except TypeError as err:
        raise TypeError(f"X must have a length or a shape, got {type(X).__name__}") from err


def binary_labels(y: object, name: str = "y", *, both_classes: bool = False) -> np.ndarray:
    """(N,) labels in {0, 1} as int64, or a ValueError naming ``name``."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of 0/1 labels, got shape {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1, found {np.unique(arr)[:5].tolist()}")
    arr = arr.astype(np.int64)
    if both_classes and arr.min() == arr.max():
        raise ValueError(f"{name} has only class {int(arr[0])}; both classes are needed")
    return arr


class _ConstantScoreBaseline(ClassifierMixin, BaseEstimator):
    """Shared plumbing: a constant positive-class probability ``score_``."""

    def _constant(self, y: np.ndarray) -> float:
        raise NotImplementedError

    def fit(self, X: object, y: object) -> _ConstantScoreBaseline:
        """Learn the constant from the training labels.

        Args:
            X: (N, ...) anything with N samples; ignored apart from its length.
            y: (N,) training labels in {0, 1}.
        """
        labels = binary_labels(y, "y")
        if n_samples(X) != labels.size:
            raise ValueError(f"X has {n_samples(X)} samples but y has {labels.size}")
        self.classes_ = np.array([0, 1])
        self.score_ = float(self._constant(labels))
        return self

    def predict_proba(self, X: object) -> np.ndarray:
        """(N, 2) class probabilities: ``[1 - score_, score_]`` for every sample."""
        check_is_fitted(self, "score_")
        p = np.full(n_samples(X), self.score_)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: object) -> np.ndarray:
        """(N,) labels at threshold 0.5 (the protocol uses a validation threshold instead)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


class PriorBaseline(_ConstantScoreBaseline):
    """Scores every sample with the training positive rate: ROC-AUC 0.5, the calibration floor.

    Attributes:
        score_: the training positive rate.
        classes_: ``array([0, 1])``.
    """

    def _constant(self, y: np.ndarray) -> float:
        return float(y.mean())


class AllPositiveBaseline(_ConstantScoreBaseline):
    """Scores every sample 1.0: with any threshold rule it predicts the positive class for all.

    Attributes:
        score_: 1.0.
        classes_: ``array([0, 1])``.
    """

    def _constant(self, y: np.ndarray) -> float:
        return 1.0
