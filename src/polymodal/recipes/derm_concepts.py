"""Dermoscopic criteria shared by Derm7pt and PH2, and the texts MedGrad E-CLIP matches images with.

Each criterion is a binary concept with a positive and a negative phrase. Derm7pt's 7-point
checklist values and PH2's criteria map onto them as below (``None``: the dataset does not
annotate it). Captions for contrastive training are built from the concept phrases only (no
diagnosis word), so description matching of the diagnosis is zero-shot for a model trained on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from polymodal.data.schema import Record


@dataclass(frozen=True)
class Criterion:
    """One binary dermoscopic criterion.

    Attributes:
        name: identifier used in tables.
        positive: phrase for the criterion present.
        negative: phrase for it absent.
        derm7pt: concept dict -> bool, or None when Derm7pt lacks it.
        ph2: concept dict -> bool, or None when PH2 lacks it.
        melanoma_sign: True when the criterion speaks for melanoma (used in the diagnosis descriptions).
    """

    name: str
    positive: str
    negative: str
    derm7pt: Callable[[Mapping[str, str]], bool] | None
    ph2: Callable[[Mapping[str, str]], bool] | None
    melanoma_sign: bool = True


CRITERIA: tuple[Criterion, ...] = (
    Criterion("atypical_pigment_network", "an atypical pigment network", "a typical or absent pigment network",
              lambda c: c["pigment_network"] == "atypical", lambda c: c["pigment_network"] == "atypical"),
    Criterion("irregular_streaks", "irregular streaks", "no irregular streaks",
              lambda c: c["streaks"] == "irregular", lambda c: c["streaks"] == "present"),
    Criterion("irregular_dots_globules", "irregular dots and globules", "regular or absent dots and globules",
              lambda c: c["dots_and_globules"] == "irregular", lambda c: c["dots_globules"] == "atypical"),
    Criterion("regression_structures", "regression structures", "no regression structures",
              lambda c: c["regression_structures"] != "absent", lambda c: c["regression_areas"] == "present"),
    Criterion("blue_whitish_veil", "a blue-whitish veil", "no blue-whitish veil",
              lambda c: c["blue_whitish_veil"] == "present", lambda c: c["blue_whitish_veil"] == "present"),
    Criterion("irregular_pigmentation", "irregular pigmentation", "regular or absent pigmentation",
              lambda c: "irregular" in c["pigmentation"], None),
    Criterion("atypical_vascular", "atypical vascular structures", "no atypical vascular structures",
              lambda c: c["vascular_structures"] in ("dotted", "linear irregular"), None),
)
CRITERION_NAMES = tuple(c.name for c in CRITERIA)
MELANOMA_DESCRIPTION = "dermoscopy of a melanoma with " + ", ".join(c.positive for c in CRITERIA)
BENIGN_DESCRIPTION = "dermoscopy of a benign nevus with " + ", ".join(c.negative for c in CRITERIA)


def concept_matrix(records: Sequence[Record]) -> np.ndarray:
    """(N, K) float concept labels: 1 present, 0 absent, NaN where the dataset lacks the criterion."""
    out = np.full((len(records), len(CRITERIA)), np.nan, dtype=np.float32)
    for i, record in enumerate(records):
        dataset = record.meta.get("dataset", "derm7pt")
        concepts = record.inputs["concepts"]
        for k, crit in enumerate(CRITERIA):
            rule = crit.derm7pt if dataset == "derm7pt" else crit.ph2
            if rule is not None:
                out[i, k] = float(rule(concepts))
    return out


def caption(labels: np.ndarray) -> str:
    """The training caption of one image from its (K,) concept labels (NaN criteria are left out)."""
    phrases = [crit.positive if v == 1 else crit.negative for crit, v in zip(CRITERIA, labels, strict=True)
               if not np.isnan(v)]
    return "dermoscopy of a skin lesion with " + ", ".join(phrases)


def criterion_texts() -> tuple[list[str], list[str]]:
    """Positive and negative prompt per criterion, K each."""
    return ([f"dermoscopy of a skin lesion with {c.positive}" for c in CRITERIA],
            [f"dermoscopy of a skin lesion with {c.negative}" for c in CRITERIA])
