"""A "foreign release" copy of a TCGA cohort table, to exercise harmonisation and imputation on real data.

Another public release of the same cohort typically names expression columns by bare gene symbols,
measures a different, partly overlapping gene panel and orders columns its own way. Without such a
release at hand, :func:`foreign_release` derives one from an MCAT-format table: the ``_rnaseq``
suffix is dropped, a random share of the expression genes and of the copy-number (and mutation)
genes is kept, optionally some kept genes are renamed to an older symbol, and the column order is
shuffled. The manifest says what was done, so a test can check that harmonisation recovers every
kept column and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.io import atomic_path

__all__ = ["ForeignRelease", "foreign_release", "write_foreign_release"]

SUFFIXES = ("_rnaseq", "_cnv", "_mut")


@dataclass
class ForeignRelease:
    """The derived table and what was done to it.

    Attributes:
        frame: the derived table.
        kept: original column -> its name in ``frame`` (gene columns kept).
        dropped: original gene columns left out.
    """

    frame: pd.DataFrame
    kept: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        by = {s: sum(1 for c in self.kept if c.endswith(s)) for s in SUFFIXES}
        total = {s: by[s] + sum(1 for c in self.dropped if c.endswith(s)) for s in SUFFIXES}
        renamed = sum(1 for c, n in self.kept.items() if n.upper() != c.removesuffix("_rnaseq").upper()
                      and not c.endswith(("_cnv", "_mut")))
        return {"kept": by, "of": total, "renamed_to_alias": renamed}


def foreign_release(frame: pd.DataFrame, *, expression_share: float = 0.5, cnv_share: float = 0.1,
                    mutation_share: float = 0.1, seed: int = 0, rename: Mapping[str, str] | None = None
                    ) -> ForeignRelease:
    """Derive a foreign-release copy of an MCAT-format cohort table.

    Args:
        frame: (N, C) the table as read from ``tcga_<cohort>_all_clean.csv.gz``.
        expression_share: share of ``<GENE>_rnaseq`` columns kept (then written as bare ``<GENE>``).
        cnv_share: share of ``<GENE>_cnv`` columns kept (name unchanged).
        mutation_share: share of ``<GENE>_mut`` columns kept (name unchanged).
        seed: seed of the random choices and of the column shuffle.
        rename: gene symbol -> the name the release uses instead (e.g. an older symbol), applied to
            kept expression genes.

    Returns:
        A :class:`ForeignRelease`; non-gene columns are all kept (shuffled among the rest).
    """
    rng = np.random.default_rng(seed)
    rename = {k.upper(): v for k, v in (rename or {}).items()}
    out = ForeignRelease(frame)
    columns: dict[str, str] = {}
    for suffix, share in (("_rnaseq", expression_share), ("_cnv", cnv_share), ("_mut", mutation_share)):
        genes = [c for c in frame.columns if str(c).endswith(suffix)]
        n_keep = round(share * len(genes))
        keep = set(rng.choice(len(genes), size=n_keep, replace=False).tolist()) if genes else set()
        for i, col in enumerate(genes):
            if i not in keep:
                out.dropped.append(col)
                continue
            gene = col.removesuffix(suffix)
            new = rename.get(gene.upper(), gene) if suffix == "_rnaseq" else col
            columns[col] = new
    out.kept = dict(columns)
    gene_cols = {c for c in frame.columns if str(c).endswith(SUFFIXES)}
    other = [c for c in frame.columns if c not in gene_cols]
    chosen = other + list(columns)
    order = [chosen[i] for i in rng.permutation(len(chosen))]
    derived = frame.loc[:, order].copy()
    derived.columns = [columns.get(c, c) for c in order]
    out.frame = derived
    return out


def write_foreign_release(src: str | Path, dst: str | Path, **kwargs: Any) -> ForeignRelease:
    """Read an MCAT-format cohort file, derive a foreign release (see :func:`foreign_release`), write it.

    ``dst`` ending in ``.gz`` is gzipped; the write is atomic.
    """
    frame = pd.read_csv(src, low_memory=False)
    frame = frame.loc[:, [c for c in frame.columns if not str(c).startswith("Unnamed")]]
    release = foreign_release(frame, **kwargs)
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        release.frame.to_csv(tmp, index=False, compression="gzip" if dst.suffix == ".gz" else None)
    return release
