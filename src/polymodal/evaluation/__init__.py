"""The evaluation protocol: pure functions from labels and scores to reported numbers.

Rules (see DESIGN.md, "The evaluation protocol"):

* thresholds and model selection use the validation split only (:func:`choose_threshold`);
* ranking metrics use continuous scores, F1 and friends use the validation threshold;
* test metrics carry a 95% bootstrap CI and the mean/std over >= 3 seeds (:func:`evaluate_binary`);
* a temporal hold-out (:func:`temporal_holdout`) can replace or join a random validation split.

metrics.json model-result schema
--------------------------------
:func:`evaluate_binary` returns, for one model, the dict written under the model's name::

    {
      "threshold": {"rule": "max_f1" | "youden",
                    "per_seed": [float, ...]},          # chosen on each seed's VALIDATION scores
      "splits": {
        "valid": {metric: {"mean": float, "std": float, "per_seed": [float, ...]}},
        "test":  {metric: {"mean": float, "std": float,
                           "ci_low": float, "ci_high": float,   # percentile bootstrap of the seed-mean
                           "per_seed": [float, ...]}}
      },
      "n": {"valid": int, "test": int},                # samples per split
      "seeds": int,                                    # K training seeds
      "bootstrap": {"n_boot": int, "alpha": float, "seed": int, "method": str}
    }

``metric`` ranges over :data:`BINARY_METRICS` in this order: roc_auc, pr_auc (average precision),
f1, precision, recall, accuracy, balanced_accuracy (these five at the seed's validation threshold)
and brier (lower is better). ``std`` is over seeds with ddof=1 (0.0 for one seed). A metric that is
undefined (an AUC on a one-class split) is NaN. A metrics.json file maps model names (the model
and its baselines, e.g. ``"prior"``, ``"all_positive"``, ``"tfidf_logistic"``) to such dicts;
:func:`metrics_table` renders it.
"""

from polymodal.evaluation.aggregate import evaluate_binary, format_cell, metrics_table, summarise
from polymodal.evaluation.bootstrap import batched_metric, bootstrap_ci, stratified_indices
from polymodal.evaluation.metrics import BINARY_METRICS, MetricSpec, binary_metrics, check_binary_inputs
from polymodal.evaluation.temporal import drift_summary, temporal_holdout
from polymodal.evaluation.thresholds import THRESHOLD_RULES, ThresholdRule, choose_threshold

__all__ = [
    "BINARY_METRICS",
    "THRESHOLD_RULES",
    "MetricSpec",
    "ThresholdRule",
    "batched_metric",
    "binary_metrics",
    "bootstrap_ci",
    "check_binary_inputs",
    "choose_threshold",
    "drift_summary",
    "evaluate_binary",
    "format_cell",
    "metrics_table",
    "stratified_indices",
    "summarise",
    "temporal_holdout",
]
