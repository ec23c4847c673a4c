"""A seeded, stratified train/valid/test assignment of sample ids (for data without an official split)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

RARE_STRATUM = "__rare__"


def stratified_split(ids: Sequence[object], strata: Sequence[object], *, valid: float = 0.1, test: float = 0.2,
                     seed: int = 0, min_stratum: int = 10) -> pd.Series:
    """``id -> "train" | "valid" | "test"``, stratified by ``strata``.

    Strata with fewer than ``min_stratum`` samples are pooled into one stratum (scikit-learn cannot
    stratify a class with one member), so a class that rare may land in any split. Every id appears
    once, so all data of one id (its photo and its name) stay in one split.

    Args:
        ids: N unique ids.
        strata: N stratum labels (for example the finest class).
        valid, test: fractions of all ids.
        seed: the split's seed (saved with the run; never re-drawn).
        min_stratum: smallest stratum kept as its own.
    """
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise ValueError("stratified_split: ids are not unique")
    labels = pd.Series([str(s) for s in strata])
    counts = labels.map(labels.value_counts())
    labels[counts < min_stratum] = RARE_STRATUM
    idx = np.arange(len(ids))
    rest, test_idx = train_test_split(idx, test_size=test, stratify=labels, random_state=seed)
    _, valid_idx = train_test_split(rest, test_size=valid / (1.0 - test), stratify=labels.iloc[rest],
                                            random_state=seed)
    out = pd.Series("train", index=pd.Index(ids, name="id"), name="split", dtype=object)
    out.iloc[valid_idx] = "valid"
    out.iloc[test_idx] = "test"
    return out
