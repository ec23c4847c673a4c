"""Medication recommendation as samples: one per visit, with the patient's history, a multi-hot target.

A :class:`MedicationProblem` turns a :class:`~polymodal.data.sources.mimic.MimicCohort` into
integer code ids (0 = padding), code texts, label (ATC3) order, the DDI matrix, and per-visit
samples. :func:`collate` pads a list of samples into a :class:`VisitBatch`.
:func:`medication_views` builds the frozen medication features: Morgan fingerprints of each ATC3's
SMILES (mean over its molecules), MiniLM embeddings of its text, and the BRICS substructure mask
SafeDrug's local encoder uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from polymodal.data.sources.drug_vocab import DrugVocab
from polymodal.data.sources.mimic import MimicCohort
from polymodal.encoders.molecule_graph import MoleculeGraphs, molecule_graphs
from polymodal.errors import DataError

__all__ = ["MedicationProblem", "MedicationViews", "Sample", "VisitBatch", "collate", "make_problem",
           "medication_views"]


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


@dataclass
class MedicationProblem:
    """A cohort as model inputs.

    Attributes:
        name: cohort name (``safedrug`` or ``all-admissions``).
        history: whether samples carry the patient's earlier visits.
        codes: code keys; id ``i + 1`` is ``codes[i]`` (0 pads).
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


def make_problem(cohort: MimicCohort, vocab: DrugVocab, *, history: bool, max_visits: int = 10) -> MedicationProblem:
    """Index a cohort: code and label vocabularies over the whole cohort (as SafeDrug's Voc), samples per visit."""
    visits = cohort.visits
    codes = sorted({c for v in visits for c in (*v.diagnoses, *v.procedures)})
    index = {c: i + 1 for i, c in enumerate(codes)}
    labels = sorted({m for v in visits for m in v.medications})
    label_index = {m: i for i, m in enumerate(labels)}
    samples = []
    for subject in sorted(cohort.patients):
        patient = cohort.patients[subject]
        for t, visit in enumerate(patient):
            window = patient[max(0, t + 1 - max_visits): t + 1] if history else [visit]
            target = np.zeros(len(labels), dtype=np.float32)
            target[[label_index[m] for m in visit.medications]] = 1.0
            earlier = np.zeros((len(window) - 1, len(labels)), dtype=np.float32)
            for row, past in enumerate(window[:-1]):
                earlier[row, [label_index[m] for m in past.medications]] = 1.0
            prev = None
            if history and t > 0:
                prev = np.zeros(len(labels), dtype=np.float32)
                prev[[label_index[m] for m in patient[t - 1].medications]] = 1.0
            samples.append(Sample(subject, visit.hadm_id, tuple(tuple(index[c] for c in v.diagnoses) for v in window),
                                  tuple(tuple(index[c] for c in v.procedures) for v in window), target, prev,
                                  earlier if len(earlier) else None))
    return MedicationProblem(cohort.name, history, codes, [cohort.code_text[c] for c in codes], labels,
                             vocab.ddi_matrix(labels), samples,
                             info={"patients": len(cohort.patients), "visits": len(samples), "codes": len(codes),
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
