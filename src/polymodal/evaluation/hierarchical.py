"""Metrics of hierarchical (multi-level) classification, as pure functions of label paths.

A *path* is one label per level, top first; ``y_true`` and ``y_pred`` are (N, L) arrays of labels.

* per level: accuracy and macro-F1 (scikit-learn; macro over the labels in y_true or y_pred);
* exact match: the whole path is right;
* consistency: the predicted path follows edges of the taxonomy (:meth:`Taxonomy.consistent`);
* hierarchical F1 (Kiritchenko et al. 2005, set-based, micro-averaged): every path becomes the set of
  its ``(level, label)`` nodes plus all their taxonomy ancestors; hP = sum |P & T| / sum |P|,
  hR = sum |P & T| / sum |T|, hF = 2 hP hR / (hP + hR). An inconsistent prediction brings in
  extra ancestors and so loses precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from polymodal.data.taxonomy import Taxonomy


def _paths(y: object) -> np.ndarray:
    arr = np.asarray(y, dtype=object)
    if arr.ndim != 2:
        raise ValueError(f"label paths must be (N, L), got shape {arr.shape}")
    return arr


def level_scores(y_true: Sequence[object], y_pred: Sequence[object]) -> dict[str, float]:
    """Accuracy and macro-F1 of one level's labels."""
    t = np.asarray(y_true, dtype=str)
    p = np.asarray(y_pred, dtype=str)
    return {"accuracy": float(accuracy_score(t, p)),
            "macro_f1": float(f1_score(t, p, average="macro", zero_division=0))}


def exact_match(y_true: object, y_pred: object) -> float:
    """Share of rows whose whole path is right."""
    t, p = _paths(y_true), _paths(y_pred)
    return float(np.mean(np.all(t.astype(str) == p.astype(str), axis=1)))


def consistency_rate(y_pred: object, taxonomy: Taxonomy) -> float:
    """Share of predicted paths that follow taxonomy edges at every step."""
    return float(np.mean(taxonomy.consistent(_paths(y_pred))))


def _closure(path: Sequence[object], taxonomy: Taxonomy, cache: dict[tuple[int, str], set[tuple[int, str]]]
             ) -> set[tuple[int, str]]:
    nodes: set[tuple[int, str]] = set()
    for level, label in enumerate(path):
        key = (level, str(label))
        if key not in cache:
            cache[key] = {key} | taxonomy.ancestors(level, str(label))
        nodes |= cache[key]
    return nodes


def hierarchical_prf(y_true: object, y_pred: object, taxonomy: Taxonomy) -> dict[str, float]:
    """Kiritchenko-style hierarchical precision, recall and F1 (micro over rows)."""
    t, p = _paths(y_true), _paths(y_pred)
    cache: dict[tuple[int, str], set[tuple[int, str]]] = {}
    inter = n_pred = n_true = 0
    for row_t, row_p in zip(t, p, strict=True):
        st, sp = _closure(row_t, taxonomy, cache), _closure(row_p, taxonomy, cache)
        inter += len(st & sp)
        n_pred += len(sp)
        n_true += len(st)
    hp = inter / n_pred if n_pred else 0.0
    hr = inter / n_true if n_true else 0.0
    hf = 2 * hp * hr / (hp + hr) if hp + hr else 0.0
    return {"hierarchical_precision": hp, "hierarchical_recall": hr, "hierarchical_f1": hf}


def hierarchical_metrics(y_true: object, y_pred: object, taxonomy: Taxonomy) -> dict[str, float]:
    """Every metric of this module as one flat dict.

    Keys: ``accuracy_<level>``, ``macro_f1_<level>`` (level = the taxonomy's column name),
    ``exact_match``, ``consistency``, ``hierarchical_f1`` (plus its precision and recall).
    """
    t, p = _paths(y_true), _paths(y_pred)
    out: dict[str, float] = {}
    for i, level in enumerate(taxonomy.levels):
        for name, value in level_scores(t[:, i], p[:, i]).items():
            out[f"{name}_{level}"] = value
    out["exact_match"] = exact_match(t, p)
    out["consistency"] = consistency_rate(p, taxonomy)
    out.update(hierarchical_prf(t, p, taxonomy))
    return out
