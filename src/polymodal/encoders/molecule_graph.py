"""Molecules as graphs for SafeDrug's message-passing encoder (RDKit featurisation, a PyTorch MPNN).

:func:`molecule_graphs` follows SafeDrug's ``util.buildMPNN`` (hydrogens added, radius-1
Weisfeiler-Lehman atom fingerprints, bond adjacency, a mean-over-molecules projection per
medication); :class:`MolecularGraphNetwork` follows its ``MolecularGraphNeuralNetwork``. See
:mod:`polymodal.baselines.safedrug` for what differs from the released code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["MolecularGraphNetwork", "MoleculeGraphs", "molecule_graphs"]


@dataclass
class MoleculeGraphs:
    """All molecules of all medications as one block-diagonal graph.

    Attributes:
        fingerprints: (A,) fingerprint id of every atom (hydrogens included).
        edges: (2, E) directed atom pairs of the bonds (both directions).
        molecule: (A,) which molecule each atom belongs to.
        projection: (L, M) mean over each medication's molecules (a row of zeros: no molecule).
        n_fingerprints: size of the fingerprint vocabulary.
    """

    fingerprints: np.ndarray
    edges: np.ndarray
    molecule: np.ndarray
    projection: np.ndarray
    n_fingerprints: int


def _atom_fingerprints(mol, radius: int, dicts: dict[str, dict]) -> list[int]:  # type: ignore[no-untyped-def]
    """SafeDrug's ``create_atoms`` + ``create_ijbonddict`` + ``extract_fingerprints``, per atom index.

    Atoms, bonds, fingerprints and edges are numbered by shared dictionaries, as in SafeDrug (the
    integer ids keep the sorted neighbour lists comparable).
    """
    atom, bond, fingerprint_dict, edge_dict = dicts["atom"], dicts["bond"], dicts["fingerprint"], dicts["edge"]
    aromatic = {a.GetIdx() for a in mol.GetAromaticAtoms()}
    nodes: list[int] = [atom[(a.GetSymbol(), "aromatic") if a.GetIdx() in aromatic else a.GetSymbol()]
                        for a in mol.GetAtoms()]
    bonds: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for b in mol.GetBonds():
        i, j, kind = b.GetBeginAtomIdx(), b.GetEndAtomIdx(), bond[str(b.GetBondType())]
        bonds[i].append((j, kind))
        bonds[j].append((i, kind))
    if len(nodes) == 1 or radius == 0:
        return [fingerprint_dict[n] for n in nodes]
    for _ in range(radius):
        # an atom without bonds keeps its own label (SafeDrug pads such atoms with id 1)
        new_nodes = [fingerprint_dict[(nodes[i], tuple(sorted((nodes[j], e) for j, e in bonds[i])))] if bonds[i]
                     else fingerprint_dict[nodes[i]] for i in range(len(nodes))]
        new_bonds: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, pairs in bonds.items():
            for j, e in pairs:
                new_bonds[i].append((j, edge_dict[(tuple(sorted((nodes[i], nodes[j]))), e)]))
        nodes, bonds = new_nodes, new_bonds
    return list(nodes)


def _numbering() -> dict:
    """A dictionary that gives every new key the next integer (SafeDrug's ``defaultdict(lambda: len(d))``)."""
    table: dict = defaultdict(lambda: len(table))
    return table


def molecule_graphs(smiles_per_label: Sequence[Sequence[str]], radius: int = 1) -> MoleculeGraphs:
    """Build SafeDrug's MPNN inputs for medications in label order (unparsable SMILES are skipped)."""
    from rdkit import Chem, rdBase

    dicts: dict[str, dict] = {}
    for name in ("atom", "bond", "fingerprint", "edge"):
        dicts[name] = _numbering()
    fps: list[int] = []
    edges: list[tuple[int, int]] = []
    molecule: list[int] = []
    counts: list[int] = []
    for smiles in smiles_per_label:
        count = 0
        for smi in smiles:
            with rdBase.BlockLogs():
                parsed = Chem.MolFromSmiles(smi)
            if parsed is None:
                continue
            mol = Chem.AddHs(parsed)
            offset, m = len(fps), sum(counts) + count  # first atom, molecule index
            fps += _atom_fingerprints(mol, radius, dicts)
            for b in mol.GetBonds():
                i, j = offset + b.GetBeginAtomIdx(), offset + b.GetEndAtomIdx()
                edges += [(i, j), (j, i)]
            molecule += [m] * mol.GetNumAtoms()
            count += 1
        counts.append(count)
    projection = np.zeros((len(counts), sum(counts)), dtype=np.float32)
    start = 0
    for row, count in enumerate(counts):
        if count:
            projection[row, start: start + count] = 1.0 / count
        start += count
    return MoleculeGraphs(np.asarray(fps, dtype=np.int64), np.asarray(edges, dtype=np.int64).reshape(-1, 2).T,
                          np.asarray(molecule, dtype=np.int64), projection, max(1, len(dicts["fingerprint"])))


class MolecularGraphNetwork(nn.Module):
    """SafeDrug's ``MolecularGraphNeuralNetwork``: fingerprint embeddings, ``layers`` residual
    message-passing updates, sum pooling per molecule, then the mean over each medication's molecules."""

    def __init__(self, graphs: MoleculeGraphs, dim: int, layers: int = 2) -> None:
        super().__init__()
        self.register_buffer("fingerprints", torch.as_tensor(graphs.fingerprints))
        # the adjacency as an edge list: a gather and a scatter-add per layer (much faster than a sparse
        # matmul's backward on CPU, the same sum as SafeDrug's dense block-diagonal A @ h)
        self.register_buffer("source", torch.as_tensor(graphs.edges[0]))
        self.register_buffer("target", torch.as_tensor(graphs.edges[1]))
        self.register_buffer("molecule", torch.as_tensor(graphs.molecule))
        self.register_buffer("projection", torch.as_tensor(graphs.projection))
        self.embed = nn.Embedding(graphs.n_fingerprints, dim)
        self.layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(layers)])

    def forward(self) -> torch.Tensor:
        h = self.embed(self.fingerprints)  # (A, D)
        for layer in self.layers:
            hs = torch.relu(layer(h))
            h = hs + torch.zeros_like(hs).index_add(0, self.target, hs[self.source])  # SafeDrug: hs + A @ hs
        mols = torch.zeros(self.projection.shape[1], h.shape[1]).index_add(0, self.molecule, h)  # (M, D) sum pooling
        return self.projection @ mols  # (L, D)
