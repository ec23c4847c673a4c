"""Medication recommendation as samples: one per visit, with the patient's history, a multi-hot target.

A :class:`MedicationProblem` turns a :class:`~polymodal.data.sources.mimic.MimicCohort` into
integer code ids (0 = padding, 1 = a code the vocabulary does not hold), code texts, label (ATC3)
order, the DDI matrix, and per-visit samples. The vocabularies and SafeDrug's frequency filters (top
ATC3 labels, top diagnoses) are fitted on the training patients only (:func:`fit_vocabulary`), so a
code or medication that only test patients have never shapes the model. :func:`collate` pads a
list of samples into a :class:`VisitBatch`.
:func:`medication_views` builds the frozen medication features: Morgan fingerprints of each ATC3's
SMILES (mean over its molecules), MiniLM embeddings of its text, and the BRICS substructure mask
SafeDrug's local encoder uses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from polymodal.data.sources.drug_vocab import DrugVocab
from polymodal.data.sources.mimic import MimicCohort, fallback_text
from polymodal.encoders.molecule_graph import MoleculeGraphs, molecule_graphs
from polymodal.errors import DataError

__all__ = ["UNKNOWN", "MedicationProblem", "MedicationViews", "Sample", "VisitBatch", "collate", "fit_vocabulary",
           "make_problem", "medication_views"]

#: The vocabulary entry (id 1) of every code the training patients did not have (or the filter dropped).
UNKNOWN = "<unknown>"
UNKNOWN_TEXT = "unknown diagnosis or procedure code"


@dataclass(frozen=True)
class Sample:
    """One target visit: the code ids of the visits it may see (oldest first) and its medications."""

    subject_id: int
    hadm_id: int
    diagnoses: tuple[tuple[int, ...], ...]  # per visit in the window
    procedures: tuple[tuple[int, ...], ...]
    target: np.ndarray  # (L,) 0/1
    previous_target: np.ndarray | None = None  # (L,) the previous visit's medications (history cohort only)
    # (V - 1, L): the medications of the earlier visits in the window (GAMENet's dynamic memory); None: none
    history_targets: np.ndarray | None = None
    # every medication of the visit, including those outside the label vocabulary (evaluation counts them as missed)
    true_set: tuple[str, ...] = ()


@dataclass
class MedicationProblem:
    """A cohort as model inputs.

    Attributes:
        name: cohort name (``safedrug`` or ``all-admissions``).
        history: whether samples carry the patient's earlier visits.
        codes: code keys; id ``i + 1`` is ``codes[i]`` (0 pads); ``codes[0]`` is :data:`UNKNOWN`.
        code_text: the text of each code, aligned with ``codes``.
        labels: ATC3 codes in label order.
        ddi: (L, L) DDI adjacency over ``labels``.
        samples: one per visit, patients sorted, visits in admission order.
    """

    name: str
    history: bool
    codes: list[str]
    code_text: list[str]
    labels: list[str]
    ddi: np.ndarray
    samples: list[Sample]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> np.ndarray:
        return np.array([s.subject_id for s in self.samples])

    @property
    def targets(self) -> np.ndarray:
        return np.stack([s.target for s in self.samples]).astype(np.float32)  # (N, L)

    def multi_hot(self, idx: Sequence[int] | np.ndarray, drop_procedures: bool = False) -> np.ndarray:
        """(n, C) bag of the current visit's codes (column ``id - 1``), for the non-neural baselines."""
        out = np.zeros((len(idx), len(self.codes)), dtype=np.float32)
        for row, i in enumerate(idx):
            s = self.samples[i]
            ids = [*s.diagnoses[-1], *(() if drop_procedures else s.procedures[-1])]
            out[row, np.asarray(ids, dtype=int) - 1] = 1.0
        return out


def _most_frequent(counts: Counter[str], top: int | None) -> list[str]:
    # most frequent first; ties broken by code, so the choice does not depend on visit order
    return sorted(counts, key=lambda c: (-counts[c], c))[:top]


def fit_vocabulary(cohort: MimicCohort, train_subjects: Iterable[int], *, top_meds: int | None = None,
                   top_diagnoses: int | None = None) -> tuple[list[str], list[str]]:
    """Code and label vocabularies from the training patients' visits only.

    Args:
        cohort: the cohort (all patients; only ``train_subjects`` are read).
        train_subjects: the patients the models are fitted on.
        top_meds: keep the labels (ATC3) given in most training visits (SafeDrug: 300); None keeps all.
        top_diagnoses: keep the diagnosis codes of most training visits (SafeDrug: 2000); None keeps all.

    Returns:
        ``(codes, labels)``: codes with :data:`UNKNOWN` first, then the kept diagnoses and every
        training procedure code, sorted; the labels sorted.
    """
    visits = [v for s in sorted(set(train_subjects)) for v in cohort.patients[s]]
    diagnoses = _most_frequent(Counter(c for v in visits for c in v.diagnoses), top_diagnoses)
    procedures = {c for v in visits for c in v.procedures}
    labels = sorted(_most_frequent(Counter(m for v in visits for m in v.medications), top_meds))
    return [UNKNOWN, *sorted(set(diagnoses) | procedures)], labels


def make_problem(cohort: MimicCohort, vocab: DrugVocab, *, history: bool, max_visits: int = 10,
                 train_subjects: Iterable[int] | None = None, top_meds: int | None = None,
                 top_diagnoses: int | None = None) -> MedicationProblem:
    """Index every visit of a cohort with vocabularies fitted on ``train_subjects`` (default: every patient).

    A code outside the fitted vocabulary becomes id 1 (:data:`UNKNOWN`); a medication outside the
    label vocabulary is not a target (the model cannot recommend it) but stays in the visit's
    ``true_set``, so evaluation counts it as missed.
    """
    codes, labels = fit_vocabulary(cohort, cohort.patients if train_subjects is None else train_subjects,
                                   top_meds=top_meds, top_diagnoses=top_diagnoses)
    index = {c: i + 1 for i, c in enumerate(codes)}
    label_index = {m: i for i, m in enumerate(labels)}

    def ids(cs: Sequence[str]) -> tuple[int, ...]:
        return tuple(dict.fromkeys(index.get(c, 1) for c in cs))

    def multi_hot(meds: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(labels), dtype=np.float32)
        out[[label_index[m] for m in meds if m in label_index]] = 1.0
        return out

    samples = []
    for subject in sorted(cohort.patients):
        patient = cohort.patients[subject]
        for t, visit in enumerate(patient):
            window = patient[max(0, t + 1 - max_visits): t + 1] if history else [visit]
            earlier = np.stack([multi_hot(p.medications) for p in window[:-1]]) if len(window) > 1 else None
            prev = multi_hot(patient[t - 1].medications) if history and t > 0 else None
            samples.append(Sample(subject, visit.hadm_id, tuple(ids(v.diagnoses) for v in window),
                                  tuple(ids(v.procedures) for v in window), multi_hot(visit.medications), prev,
                                  earlier, tuple(visit.medications)))
    text = [UNKNOWN_TEXT if c == UNKNOWN else cohort.code_text.get(c) or fallback_text(c) for c in codes]
    return MedicationProblem(cohort.name, history, codes, text, labels, vocab.ddi_matrix(labels), samples,
                             info={"patients": len(cohort.patients), "visits": len(samples), "codes": len(codes) - 1,
                                   "labels": len(labels), "source": cohort.source})


@dataclass
class VisitBatch:
    """Padded code ids: diag (B, V, Td), proc (B, V, Tp) long (0 pads); visit_mask (B, V) bool, left-aligned;
    history_meds (B, V, L) float: the medications of each earlier visit (zeros at the last visit and padding)."""

    diag: torch.Tensor
    proc: torch.Tensor
    visit_mask: torch.Tensor
    history_meds: torch.Tensor | None = None

    def without_procedures(self) -> VisitBatch:
        return replace(self, proc=torch.zeros_like(self.proc))


def _pad(seqs: list[tuple[tuple[int, ...], ...]], n_visits: int) -> torch.Tensor:
    width = max([1, *[len(v) for s in seqs for v in s]])
    out = torch.zeros(len(seqs), n_visits, width, dtype=torch.long)
    for b, s in enumerate(seqs):
        for v, ids in enumerate(s):
            out[b, v, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return out


def collate(samples: Sequence[Sample]) -> tuple[VisitBatch, torch.Tensor]:
    """Samples -> (VisitBatch, targets (B, L) float)."""
    n_visits = max(len(s.diagnoses) for s in samples)
    mask = torch.zeros(len(samples), n_visits, dtype=torch.bool)
    for b, s in enumerate(samples):
        mask[b, : len(s.diagnoses)] = True
    n_labels = len(samples[0].target)
    history = torch.zeros(len(samples), n_visits, n_labels)
    for b, s in enumerate(samples):
        if s.history_targets is not None:
            history[b, : len(s.history_targets)] = torch.as_tensor(s.history_targets)
    batch = VisitBatch(_pad([s.diagnoses for s in samples], n_visits), _pad([s.procedures for s in samples], n_visits),
                       mask, history)
    return batch, torch.as_tensor(np.stack([s.target for s in samples]), dtype=torch.float32)


@dataclass
class MedicationViews:
    """Frozen medication features in label order.

    Attributes:
        structure: (L, F) mean Morgan fingerprint of the ATC3's molecules (zeros when none parse).
        has_structure: (L,) bool.
        text: (L, D_text) sentence embedding of the ATC3 description.
        texts: the descriptions.
        substructures: (S, L) 0/1 BRICS fragment membership (SafeDrug's bipartite mask).
        skips: counted problems (unparsable SMILES).
        graphs: the molecules as graphs for SafeDrug's MPNN (None where not built, e.g. at predict time).
    """

    structure: np.ndarray
    has_structure: np.ndarray
    text: np.ndarray
    texts: list[str]
    substructures: np.ndarray
    skips: dict[str, dict[str, Any]] = field(default_factory=dict)
    graphs: MoleculeGraphs | None = None


def _brics(smiles: str) -> set[str]:
    from rdkit import Chem, rdBase
    from rdkit.Chem import BRICS

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        return set(BRICS.BRICSDecompose(mol)) if mol is not None else set()


def medication_views(labels: Sequence[str], vocab: DrugVocab, text_embed: Any, fingerprint: Any) -> MedicationViews:
    """Build the medication views.

    Args:
        labels: ATC3 codes in label order.
        vocab: the drug vocabulary (SMILES, names).
        text_embed: ``list[str] -> (N, D) array`` (e.g. the embedding cache around MiniLM).
        fingerprint: ``list[str] -> (N, F) array`` for SMILES (e.g. the cache around Morgan).
    """
    texts = [vocab.atc3_text(code) for code in labels]
    text = np.asarray(text_embed(texts), dtype=np.float32)
    unique = sorted({smi for code in labels for smi in vocab.atc3_smiles.get(code, [])})
    try:  # one call for all molecules; per molecule only when one of them does not parse
        table = dict(zip(unique, np.asarray(fingerprint(unique), dtype=np.float32), strict=True))
    except DataError:
        table = {}
        for smi in unique:
            try:
                table[smi] = np.asarray(fingerprint([smi]), dtype=np.float32)[0]
            except DataError:
                continue
    rows, has, bad = [], [], []
    frags: list[set[str]] = []
    for code in labels:
        fps, code_frags = [], set()
        for smi in vocab.atc3_smiles.get(code, []):
            if smi not in table:
                bad.append(f"{code}: {smi[:40]}")
                continue
            fps.append(table[smi])
            code_frags |= _brics(smi)
        has.append(bool(fps))
        rows.append(np.mean(fps, axis=0) if fps else None)
        frags.append(code_frags)
    width = next((r.shape[0] for r in rows if r is not None), 1)
    structure = np.stack([r if r is not None else np.zeros(width, np.float32) for r in rows])
    frag_vocab = sorted(set().union(*frags)) or ["<none>"]
    fidx = {f: i for i, f in enumerate(frag_vocab)}
    sub = np.zeros((len(frag_vocab), len(labels)), dtype=np.float32)
    for j, fs in enumerate(frags):
        sub[[fidx[f] for f in fs], j] = 1.0
    skips = {"medications: unparsable SMILES": {"count": len(bad), "examples": bad[:5]}} if bad else {}
    if not all(has):
        missing = [c for c, h in zip(labels, has, strict=True) if not h]
        skips["medications: no parsable SMILES (structure view missing)"] = {"count": len(missing),
                                                                            "examples": missing[:5]}
    graphs = molecule_graphs([[smi for smi in vocab.atc3_smiles.get(code, []) if smi in table] for code in labels])
    return MedicationViews(structure, np.array(has), text, texts, sub, skips, graphs)
