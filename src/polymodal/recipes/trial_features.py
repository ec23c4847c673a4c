"""Clinical-trial featuriser shared by trial recipes: criteria statements, molecules, ICD codes.

Frozen encoders (sentence embeddings of each criteria statement, fingerprints of each molecule)
go through the embedding cache; the ICD vocabulary (codes and their ancestors) is fitted on the
training records only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from polymodal.data.icd import IcdHierarchy
from polymodal.data.schema import Record
from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.frozen import FrozenEncoder


class TrialFeaturizer:
    """Records with inputs inclusion / exclusion / drugs / icd_codes -> arrays per modality.

    Modalities produced:
        criteria: (T, E + 1) statement embeddings, inclusion first then exclusion, with a last
            column flagging exclusion statements (so one encoder can tell them apart).
        drugs: (T, F) molecule features, one row per distinct molecule.
        diseases: (T, A) int ids of each ICD code and its ancestors (0 = padding); ids come from a
            vocabulary fitted on training records, so codes never seen in training fall back to
            their known ancestors.

    Args:
        text_encoder: frozen sentence encoder for criteria statements.
        molecule_encoder: frozen molecule featuriser (Morgan bits, MiniMol ...).
        icd: the ICD-10 hierarchy.
        cache: the embedding cache (shared, so one run reports one set of cache statistics).
        max_inclusion / max_exclusion / max_drugs / max_codes: how many leading items to keep.
    """

    modalities: ClassVar[list[str]] = ["criteria", "diseases", "drugs"]

    def __init__(self, text_encoder: FrozenEncoder, molecule_encoder: FrozenEncoder, icd: IcdHierarchy,
                 cache: EmbeddingCache, *, max_inclusion: int, max_exclusion: int, max_drugs: int,
                 max_codes: int) -> None:
        self.text_encoder = text_encoder
        self.molecule_encoder = molecule_encoder
        self.icd = icd
        self.cache_dir = str(cache.root)
        self.max_inclusion = max_inclusion
        self.max_exclusion = max_exclusion
        self.max_drugs = max_drugs
        self.max_codes = max_codes
        self.max_len = {"criteria": max_inclusion + max_exclusion, "drugs": max_drugs, "diseases": max_codes}
        self.vocab_: dict[str, int] = {}
        self._cache: EmbeddingCache | None = cache

    # -- pickling for `polymodal predict`: keep the fitted vocabulary, reopen the cache lazily
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_dir)
        return self._cache

    @property
    def code_vocab_size(self) -> int:
        return len(self.vocab_) + 1  # id 0 is padding

    @property
    def criteria_dim(self) -> int:
        return int(self.text_encoder.dim) + 1

    @property
    def drug_dim(self) -> int:
        return int(self.molecule_encoder.dim)

    @property
    def max_ancestors(self) -> int:
        return 5

    def fit(self, records: Sequence[Record]) -> TrialFeaturizer:
        vocab: dict[str, int] = {}
        for record in records:
            for code in record.inputs.get("icd_codes") or []:
                for node in self.icd.ancestors(code):
                    vocab.setdefault(node, len(vocab) + 1)
        self.vocab_ = vocab
        return self

    def transform(self, records: Sequence[Record]) -> list[dict[str, np.ndarray]]:
        if not self.vocab_:
            raise RuntimeError("TrialFeaturizer.transform called before fit")
        statements = {
            s for r in records
            for s in [*(r.inputs.get("inclusion") or [])[: self.max_inclusion],
                      *(r.inputs.get("exclusion") or [])[: self.max_exclusion]]
        }
        text_vectors = self._lookup(self.text_encoder, statements)
        molecules = {s for r in records for s in (r.inputs.get("drugs") or [])[: self.max_drugs]}
        mol_vectors = self._lookup(self.molecule_encoder, molecules)
        return [self._one(r, text_vectors, mol_vectors) for r in records]

    def _lookup(self, encoder: FrozenEncoder, items: set[str]) -> dict[str, np.ndarray]:
        ordered = sorted(items)
        if not ordered:
            return {}
        vectors = self.cache.encode(encoder, ordered)
        return dict(zip(ordered, vectors, strict=True))

    def _one(self, record: Record, text: dict[str, np.ndarray], mol: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inc = (record.inputs.get("inclusion") or [])[: self.max_inclusion]
        exc = (record.inputs.get("exclusion") or [])[: self.max_exclusion]
        crit = np.zeros((len(inc) + len(exc), self.criteria_dim), dtype=np.float32)
        for i, s in enumerate([*inc, *exc]):
            crit[i, :-1] = text[s]
        crit[len(inc):, -1] = 1.0  # exclusion flag
        drugs = (record.inputs.get("drugs") or [])[: self.max_drugs]
        drug = np.zeros((len(drugs), self.drug_dim), np.float32)
        for i, s in enumerate(drugs):
            drug[i] = mol[s]
        rows = []
        for code in (record.inputs.get("icd_codes") or []):
            ids = [self.vocab_[n] for n in self.icd.ancestors(code) if n in self.vocab_][: self.max_ancestors]
            if ids:
                rows.append(ids + [0] * (self.max_ancestors - len(ids)))
            if len(rows) == self.max_codes:
                break
        codes = np.array(rows, dtype=np.int64).reshape(-1, self.max_ancestors)
        return {"criteria": crit, "drugs": drug, "diseases": codes}

    def pooled(self, features: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
        """Fixed-size vectors for linear baselines: mean inclusion and exclusion embeddings, mean
        molecule features, and a multi-hot of code/ancestor ids. (N, 2E + F + V)"""
        e = self.criteria_dim - 1
        out = np.zeros((len(features), 2 * e + self.drug_dim + self.code_vocab_size), dtype=np.float32)
        for i, f in enumerate(features):
            crit = f["criteria"]
            inc, exc = crit[crit[:, -1] == 0, :-1], crit[crit[:, -1] == 1, :-1]
            if len(inc):
                out[i, :e] = inc.mean(0)
            if len(exc):
                out[i, e:2 * e] = exc.mean(0)
            if len(f["drugs"]):
                out[i, 2 * e:2 * e + self.drug_dim] = f["drugs"].mean(0)
            ids = f["diseases"][f["diseases"] > 0]
            out[i, 2 * e + self.drug_dim + ids] = 1.0
        return out
