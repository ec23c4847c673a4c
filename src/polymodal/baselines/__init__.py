"""Baselines run on the same splits as every model, with the scikit-learn estimator API.

* :class:`PriorBaseline`, :class:`AllPositiveBaseline`: ignore the features (trivial floors).
* :class:`TfidfLogisticBaseline`, :class:`EmbeddingLogisticBaseline`: logistic regression with C
  chosen on validation ROC-AUC; ``fit(X_train, y_train, X_valid, y_valid)``.

All return ``predict_proba(X)`` of shape (N, 2); feed column 1 to
:func:`polymodal.evaluation.evaluate_binary`.
"""

from polymodal.baselines.linear import EmbeddingLogisticBaseline, TfidfLogisticBaseline
from polymodal.baselines.trivial import AllPositiveBaseline, PriorBaseline

__all__ = ["AllPositiveBaseline", "EmbeddingLogisticBaseline", "PriorBaseline", "TfidfLogisticBaseline"]
