"""Clinical-trial featuriser shared by trial recipes: criteria statements, molecules, diseases.

Frozen encoders (sentence embeddings of criteria statements and names, fingerprints of
molecules) go through the embedding cache; the ICD vocabulary (codes and their ancestors) is
fitted on the training records only.
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
    """Records with inputs inclusion / exclusion / drugs / drug_names / diseases / icd_codes ->
    arrays per modality.

    Modalities produced:
        criteria: (T, E + 1) statement embeddings, inclusion first then exclusion, with a last
            column flagging exclusion statements (so one encoder can tell them apart).
        drugs: (T, F) molecule features, one row per distinct molecule. With ``drug_text`` the
            drug names join as tokens too: rows are [fingerprint | name embedding | is_name].
        diseases: by default (T, A) int ids of each ICD code and its ancestors (0 = padding) from
            a vocabulary fitted on training records, so codes never seen in training fall back to
            their known ancestors. With ``disease_text`` instead (T, E + 1) float tokens: each
            disease name's embedding, and for each ICD code the mean embedding of the names of
            the code and its ancestors (language carries the hierarchy), flagged in the last column.

    Args:
        text_encoder: frozen sentence encoder.
        molecule_encoder: frozen molecule featuriser (Morgan bits, MiniMol ...).
        icd: the ICD-10 hierarchy.
        cache: the embedding cache (shared, so one run reports one set of cache statistics).
        max_inclusion / max_exclusion / max_drugs / max_codes: how many leading items to keep.
        disease_text / drug_text: the text variants described above.
    """

    modalities: ClassVar[list[str]] = ["criteria", "diseases", "drugs"]
    max_ancestors: ClassVar[int] = 5

    def __init__(self, text_encoder: FrozenEncoder, molecule_encoder: FrozenEncoder, icd: IcdHierarchy,
                 cache: EmbeddingCache, *, max_inclusion: int, max_exclusion: int, max_drugs: int,
                 max_codes: int, disease_text: bool = False, drug_text: bool = False) -> None:
        self.text_encoder = text_encoder
        self.molecule_encoder = molecule_encoder
        self.icd = icd
        self.cache_dir = str(cache.root)
        self.max_inclusion = max_inclusion
        self.max_exclusion = max_exclusion
        self.max_drugs = max_drugs
        self.max_codes = max_codes
        self.disease_text = disease_text
        self.drug_text = drug_text
        self.max_len = {
            "criteria": max_inclusion + max_exclusion,
            "drugs": max_drugs * (2 if drug_text else 1),
            "diseases": max_codes * (2 if disease_text else 1),
        }
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
    def text_dim(self) -> int:
        return int(self.text_encoder.dim)

    @property
    def criteria_dim(self) -> int:
        return self.text_dim + 1

    @property
    def disease_dim(self) -> int:
        """Feature size of a float disease token (only with ``disease_text``)."""
        return self.text_dim + 1

    @property
    def drug_dim(self) -> int:
        return int(self.molecule_encoder.dim) + (self.text_dim + 1 if self.drug_text else 0)

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
        texts: set[str] = set()
        for r in records:
            texts.update(self._statements(r))
            if self.disease_text:
                texts.update(self._diseases(r))
                texts.update(n for code in self._codes(r) for n in self._ancestor_names(code))
            if self.drug_text:
                texts.update(self._drug_names(r))
        text_vectors = self._lookup(self.text_encoder, texts)
        molecules = {s for r in records for s in (r.inputs.get("drugs") or [])[: self.max_drugs]}
        mol_vectors = self._lookup(self.molecule_encoder, molecules)
        return [self._one(r, text_vectors, mol_vectors) for r in records]

    # -- the items of a record each modality uses, truncated as configured
    def _statements(self, r: Record) -> list[str]:
        return [*(r.inputs.get("inclusion") or [])[: self.max_inclusion],
                *(r.inputs.get("exclusion") or [])[: self.max_exclusion]]

    def _diseases(self, r: Record) -> list[str]:
        return [d for d in (r.inputs.get("diseases") or []) if d][: self.max_codes]

    def _codes(self, r: Record) -> list[str]:
        return list(r.inputs.get("icd_codes") or [])[: self.max_codes]

    def _drug_names(self, r: Record) -> list[str]:
        return [d for d in (r.inputs.get("drug_names") or []) if d][: self.max_drugs]

    def _ancestor_names(self, code: str) -> list[str]:
        return [n for n in (self.icd.name(a) for a in self.icd.ancestors(code)) if n]

    def _lookup(self, encoder: FrozenEncoder, items: set[str]) -> dict[str, np.ndarray]:
        ordered = sorted(items)
        if not ordered:
            return {}
        vectors = self.cache.encode(encoder, ordered)
        return dict(zip(ordered, vectors, strict=True))

    def _one(self, record: Record, text: dict[str, np.ndarray], mol: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        statements = self._statements(record)
        n_inc = len((record.inputs.get("inclusion") or [])[: self.max_inclusion])
        crit = np.zeros((len(statements), self.criteria_dim), dtype=np.float32)
        for i, s in enumerate(statements):
            crit[i, :-1] = text[s]
        crit[n_inc:, -1] = 1.0  # exclusion flag
        return {"criteria": crit, "drugs": self._drug_tokens(record, text, mol),
                "diseases": self._disease_tokens(record, text)}

    def _drug_tokens(self, record: Record, text: dict[str, np.ndarray], mol: dict[str, np.ndarray]) -> np.ndarray:
        smiles = (record.inputs.get("drugs") or [])[: self.max_drugs]
        names = self._drug_names(record) if self.drug_text else []
        out = np.zeros((len(smiles) + len(names), self.drug_dim), dtype=np.float32)
        f = int(self.molecule_encoder.dim)
        for i, s in enumerate(smiles):
            out[i, :f] = mol[s]
        for i, name in enumerate(names, start=len(smiles)):
            out[i, f:-1] = text[name]
            out[i, -1] = 1.0  # a name token, not a structure
        return out

    def _disease_tokens(self, record: Record, text: dict[str, np.ndarray]) -> np.ndarray:
        if not self.disease_text:
            rows = []
            for code in record.inputs.get("icd_codes") or []:
                ids = [self.vocab_[n] for n in self.icd.ancestors(code) if n in self.vocab_][: self.max_ancestors]
                if ids:
                    rows.append(ids + [0] * (self.max_ancestors - len(ids)))
                if len(rows) == self.max_codes:
                    break
            return np.array(rows, dtype=np.int64).reshape(-1, self.max_ancestors)
        tokens = [np.append(text[d], 0.0) for d in self._diseases(record)]
        for code in self._codes(record):
            names = self._ancestor_names(code)
            if names:
                tokens.append(np.append(np.mean([text[n] for n in names], axis=0), 1.0))  # code flag
        return np.array(tokens, dtype=np.float32).reshape(-1, self.disease_dim)

    def pooled(self, features: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
        """Fixed-size vectors for linear baselines: mean inclusion and exclusion embeddings, mean
        drug tokens, and a multi-hot of code/ancestor ids (or the mean disease token). (N, P)"""
        e = self.criteria_dim - 1
        disease_width = self.disease_dim if self.disease_text else self.code_vocab_size
        out = np.zeros((len(features), 2 * e + self.drug_dim + disease_width), dtype=np.float32)
        d0 = 2 * e + self.drug_dim
        for i, f in enumerate(features):
            crit = f["criteria"]
            inc, exc = crit[crit[:, -1] == 0, :-1], crit[crit[:, -1] == 1, :-1]
            if len(inc):
                out[i, :e] = inc.mean(0)
            if len(exc):
                out[i, e:2 * e] = exc.mean(0)
            if len(f["drugs"]):
                out[i, 2 * e:d0] = f["drugs"].mean(0)
            if self.disease_text:
                if len(f["diseases"]):
                    out[i, d0:] = f["diseases"].mean(0)
            else:
                ids = f["diseases"][f["diseases"] > 0]
                out[i, d0 + ids] = 1.0
        return out
