"""Clinical metadata -> short English sentences (UMPSNet's text templates) -> frozen text embeddings.

UMPSNet renders four kinds of metadata into text and encodes them with a text encoder: demographics,
cancer type, treatments and diagnosis. Values recorded as "not reported" (or absent) are left out of
the sentence rather than spelled out, so that a missing field does not become a token the model can
mistake for information; a sentence with nothing left says so ("... not reported").

Treatments ("Pharmaceutical Therapy", "Radiation Therapy") are recorded after diagnosis and can
reflect how long a patient lived, so recipes keep them optional (see the UMPSNet recipe).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.frozen import FrozenEncoder

__all__ = ["CANCER_NAMES", "TEMPLATE_KINDS", "TemplateEncoder", "cancer_text", "render_templates"]

TEMPLATE_KINDS = ("demographic", "cancer", "treatment", "diagnosis")
# TCGA study names; a code not listed is written as it is (a new cohort still gets a sentence).
CANCER_NAMES = {
    "BLCA": "bladder urothelial carcinoma",
    "BRCA": "breast invasive carcinoma",
    "GBMLGG": "glioblastoma and lower grade glioma",
    "LUAD": "lung adenocarcinoma",
    "LUSC": "lung squamous cell carcinoma",
    "UCEC": "uterine corpus endometrial carcinoma",
    "KIRC": "kidney renal clear cell carcinoma",
    "COADREAD": "colon and rectum adenocarcinoma",
    "HNSC": "head and neck squamous cell carcinoma",
    "STAD": "stomach adenocarcinoma",
}
_UNKNOWN = {"", "not reported", "unknown", "nan", "none", "not allowed to collect", "--"}


def _known(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return None if text.lower() in _UNKNOWN else text


def cancer_text(code: str) -> str:
    name = CANCER_NAMES.get(code.upper())
    return f"The cancer type is {name} ({code.upper()})." if name else f"The cancer type is {code}."


def _demographic(d: Mapping[str, Any]) -> str:
    age = d.get("age")
    age_s = f"{round(float(age))}-year-old" if _known(age) and math.isfinite(float(age)) else None
    words = [w for w in (age_s, _known(d.get("race")), _known(d.get("gender"))) if w]
    ethnicity = _known(d.get("ethnicity"))
    if not words and not ethnicity:
        return "Patient demographics: not reported."
    text = f"A {' '.join(words)} patient" if words else "A patient"
    return text + (f", {ethnicity}." if ethnicity else ".")


def _diagnosis(d: Mapping[str, Any]) -> str:
    primary = _known(d.get("primary_diagnosis"))
    parts = [
        _known(d.get("ajcc_pathologic_stage")),
        *(_known(d.get(f"ajcc_pathologic_{k}")) for k in ("t", "n", "m")),
    ]
    staging = ", ".join(p for p in parts if p)
    if not primary and not staging:
        return "Diagnosis: not reported."
    text = f"Primary diagnosis: {primary.lower()}." if primary else "Primary diagnosis: not reported."
    return text + (f" Pathologic staging: {staging}." if staging else "")


def _treatment(d: Mapping[str, Any]) -> str:
    parts = [f"{name.lower()}: {v}" for name in ("Pharmaceutical Therapy", "Radiation Therapy")
             if (v := _known(d.get(name)))]
    return ("Treatments: " + "; ".join(parts) + ".") if parts else "Treatments: not reported."


def render_templates(meta: Mapping[str, Any]) -> dict[str, str]:
    """One sentence per kind in :data:`TEMPLATE_KINDS` from a UMPSNet metadata entry.

    Args:
        meta: ``{"demographic": {...}, "diagnosis": {...}, "treatments": {...}, "dataset": code}``.
    """
    return {
        "demographic": _demographic(meta.get("demographic") or {}),
        "cancer": cancer_text(str(meta.get("dataset") or "unknown")),
        "treatment": _treatment(meta.get("treatments") or {}),
        "diagnosis": _diagnosis(meta.get("diagnosis") or {}),
    }


class TemplateEncoder:
    """Render templates and embed them with a frozen text encoder through the embedding cache.

    Args:
        text: a frozen text encoder (MiniLM by default in recipes; a hashing encoder in tests).
        cache: the embedding cache (a second run encodes nothing).
    """

    def __init__(self, text: FrozenEncoder, cache: EmbeddingCache) -> None:
        self.text = text
        self.cache = cache

    @property
    def dim(self) -> int:
        return int(self.text.dim)

    def encode(self, metas: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> np.ndarray:
        """(N, len(kinds), D) float32 embeddings of each kind's sentence."""
        if not metas:
            return np.zeros((0, len(kinds), self.dim), dtype=np.float32)
        rendered = [render_templates(m) for m in metas]
        texts = [r[k] for r in rendered for k in kinds]
        vectors = np.asarray(self.cache.encode(self.text, texts), dtype=np.float32)  # (N*K, D)
        return vectors.reshape(len(metas), len(kinds), -1)
