"""SafeDrug (Yang et al., IJCAI 2021, arXiv 2105.02711) with its molecular message-passing encoder.

Faithful to the paper and its released code (github.com/ycq091044/SafeDrug, ``models.py`` and
``util.buildMPNN``):

* patient: diagnosis and procedure embeddings (init uniform(+-0.1), dropout 0.5) summed per
  visit, one GRU (hidden = width) each over the visits, ``query = Linear(ReLU([h_diag; h_proc]))``;
* global molecule encoder: each ATC3's molecules (SafeDrug's ATC3 -> SMILES table, up to 3) as
  graphs with hydrogens; atoms get radius-1 Weisfeiler-Lehman "fingerprint" ids (atom symbol with
  aromaticity, then the sorted (neighbour, bond type) pairs), a 2-layer MPNN
  (``h <- ReLU(W h) + A ReLU(W h)``), sum pooling per molecule, mean over the ATC3's molecules;
  ``match = sigmoid(query @ E^T)``, ``att = LayerNorm(match + Linear(match))``;
* local encoder: ``sigmoid(Linear(query))`` over BRICS substructures, a bipartite masked linear
  map to medications (mask = which medication contains which substructure; weight init
  uniform(+-1/sqrt(L)) as ``MaskLinear``); output = local * att;
* trained with the controllable DDI loss (:class:`~polymodal.objectives.ddi.ControlledDdiLoss`).

Deviations:

* the MPNN is trained end to end, as the paper describes it; the released code computes the
  molecule embeddings once, in ``__init__``, with a randomly initialised MPNN that is never
  trained (the module is not kept as a submodule);
* atom fingerprints follow atom index order; the released ``extract_fingerprints`` lists them in
  the order atoms first appear in the bond list, which need not match the adjacency's order;
* the fingerprint and edge dictionaries are built over the cohort's medications (SafeDrug: over
  the whole medication vocabulary of its cohort, the same idea);
* SMILES that RDKit cannot parse are skipped and counted by the views (SafeDrug skips them silently).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from polymodal.encoders.molecule_graph import MolecularGraphNetwork, MoleculeGraphs
from polymodal.tasks.medication import VisitBatch

__all__ = ["SafeDrug"]


def _last(h: torch.Tensor, visit_mask: torch.Tensor) -> torch.Tensor:
    last = visit_mask.long().sum(dim=1).clamp_min(1) - 1
    return h[torch.arange(h.shape[0]), last]


class SafeDrug(nn.Module):
    """SafeDrug (see the module docstring).

    Args:
        n_codes: code vocabulary size including padding id 0. graphs: the medications' molecules.
        substructures: (S, L) BRICS membership mask. dim: width (SafeDrug: 64). dropout: SafeDrug's 0.5.
    """

    def __init__(self, n_codes: int, graphs: MoleculeGraphs, substructures: np.ndarray, dim: int = 64,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.diag_embed = nn.Embedding(n_codes, dim, padding_idx=0)
        self.proc_embed = nn.Embedding(n_codes, dim, padding_idx=0)
        for emb in (self.diag_embed, self.proc_embed):  # SafeDrug's init_weights; padding stays zero
            with torch.no_grad():
                emb.weight.uniform_(-0.1, 0.1)
                emb.weight[0].zero_()
        self.diag_gru = nn.GRU(dim, dim, batch_first=True)
        self.proc_gru = nn.GRU(dim, dim, batch_first=True)
        self.query = nn.Sequential(nn.ReLU(), nn.Linear(2 * dim, dim))
        self.mpnn = MolecularGraphNetwork(graphs, dim)
        n_labels = graphs.projection.shape[0]
        self.match_out = nn.Linear(n_labels, n_labels)
        self.match_norm = nn.LayerNorm(n_labels)
        self.register_buffer("mask", torch.as_tensor(substructures, dtype=torch.float32))  # (S, L)
        self.substructure = nn.Linear(dim, self.mask.shape[0])
        bound = 1.0 / np.sqrt(n_labels)
        self.bipartite = nn.Parameter(torch.empty(self.mask.shape[0], n_labels).uniform_(-bound, bound))
        self.dropout = nn.Dropout(dropout)

    def forward(self, batch: VisitBatch, drop: frozenset[str] = frozenset()) -> tuple[torch.Tensor, dict]:
        if "procedures" in drop:
            batch = batch.without_procedures()
        # dropout on the code embeddings, then the sum per visit (SafeDrug's sum_embedding(dropout(...)))
        d, _ = self.diag_gru(self.dropout(self.diag_embed(batch.diag)).sum(dim=2))  # (B, V, D)
        p, _ = self.proc_gru(self.dropout(self.proc_embed(batch.proc)).sum(dim=2))
        q = self.query(torch.cat([_last(d, batch.visit_mask), _last(p, batch.visit_mask)], dim=-1))  # (B, D)
        match = torch.sigmoid(q @ self.mpnn().T)  # (B, L) global molecule match
        att = self.match_norm(match + self.match_out(match))  # (B, L)
        local = torch.sigmoid(self.substructure(q)) @ (self.bipartite * self.mask)  # (B, L) bipartite encoder
        return local * att, {}
