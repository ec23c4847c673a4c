"""A label taxonomy of L levels built from training labels: classes, level-to-level edges, ancestors.

Nodes are keyed by ``(level, label)``: a label is one class of its level, whatever its parents.
Real catalogues are not trees: in the Myntra data 25 article types sit under two or three
sub-categories (``Tshirts`` under ``Topwear`` 7,069 times and under ``Belts`` once) and two
sub-categories under two master categories. We keep every edge seen in training, so the graph
between two levels is a many-to-many relation and the transition matrix
``M[l] (K_l, K_{l+1})`` has a 1 for every (parent, child) pair seen; a path (one label per level)
is *consistent* when each consecutive pair is an edge. The alternative (keying a child by its
parent, ``Topwear/Tshirts`` vs ``Belts/Tshirts``) would split one article type into classes that
differ only by a (mostly mislabelled) parent and change the task's label set.

Rare classes are decided on the training split only (:meth:`Taxonomy.rare`): classes with fewer
than ``min_count`` training examples are kept as classes (so every seen label can be predicted) and
their products are reported as a separate subset.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Taxonomy:
    """Classes per level and the edges between consecutive levels.

    Attributes:
        levels: L level (column) names, top first.
        classes: per level, its sorted class labels.
        edges: per consecutive pair of levels (L - 1 of them), the set of (parent, child) labels.
        counts: per level, training examples per class.
    """

    levels: tuple[str, ...]
    classes: tuple[tuple[str, ...], ...]
    edges: tuple[frozenset[tuple[str, str]], ...]
    counts: tuple[dict[str, int], ...]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, levels: Sequence[str]) -> Taxonomy:
        """Build from training rows (one label per level per row)."""
        levels = tuple(levels)
        classes = tuple(tuple(sorted(frame[level].astype(str).unique())) for level in levels)
        edges = tuple(
            frozenset(zip(frame[a].astype(str), frame[b].astype(str), strict=True))
            for a, b in pairwise(levels)
        )
        counts = tuple(dict(Counter(frame[level].astype(str))) for level in levels)
        return cls(levels, classes, edges, counts)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.classes)

    def encode(self, level: int, labels: Iterable[Any]) -> np.ndarray:
        """(N,) int64 class indices of ``labels`` at ``level``; -1 for a label unseen in training."""
        index = {c: i for i, c in enumerate(self.classes[level])}
        return np.array([index.get(str(x), -1) for x in labels], dtype=np.int64)

    def decode(self, level: int, indices: Iterable[int]) -> np.ndarray:
        """(N,) labels of class indices at ``level``."""
        names = np.array(self.classes[level], dtype=object)
        return names[np.asarray(list(indices), dtype=np.int64)]

    def transition(self, level: int) -> np.ndarray:
        """(K_level, K_{level+1}) float32 0/1: 1 where child (column) is seen under parent (row)."""
        rows = {c: i for i, c in enumerate(self.classes[level])}
        cols = {c: i for i, c in enumerate(self.classes[level + 1])}
        m = np.zeros((len(rows), len(cols)), dtype=np.float32)
        for parent, child in self.edges[level]:
            m[rows[parent], cols[child]] = 1.0
        return m

    def multi_parent(self) -> dict[str, dict[str, list[str]]]:
        """Per child level: the labels with more than one parent and their parents."""
        out: dict[str, dict[str, list[str]]] = {}
        for i, edges in enumerate(self.edges):
            parents: dict[str, list[str]] = {}
            for p, c in edges:
                parents.setdefault(c, []).append(p)
            out[self.levels[i + 1]] = {c: sorted(ps) for c, ps in sorted(parents.items()) if len(ps) > 1}
        return out

    def consistent(self, paths: np.ndarray) -> np.ndarray:
        """(N,) bool: every consecutive pair of the (N, L) label paths is a training edge."""
        paths = np.asarray(paths, dtype=object)
        ok = np.ones(len(paths), dtype=bool)
        for i, edges in enumerate(self.edges):
            ok &= np.array([(str(a), str(b)) in edges for a, b in zip(paths[:, i], paths[:, i + 1], strict=True)],
                           dtype=bool)
        return ok

    def ancestors(self, level: int, label: str) -> set[tuple[int, str]]:
        """Every (level, label) node above ``label`` through any chain of training edges (itself excluded)."""
        out: set[tuple[int, str]] = set()
        frontier = {str(label)}
        for i in range(level - 1, -1, -1):
            frontier = {p for p, c in self.edges[i] if c in frontier}
            out |= {(i, p) for p in frontier}
        return out

    def rare(self, level: int, min_count: int) -> frozenset[str]:
        """Classes of ``level`` with fewer than ``min_count`` training examples."""
        return frozenset(c for c, n in self.counts[level].items() if n < min_count)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved in the run folder)."""
        return {
            "levels": list(self.levels),
            "classes": [list(c) for c in self.classes],
            "edges": [sorted([list(e) for e in edges]) for edges in self.edges],
            "counts": [dict(sorted(c.items())) for c in self.counts],
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Taxonomy:
        return cls(tuple(obj["levels"]), tuple(tuple(c) for c in obj["classes"]),
                   tuple(frozenset((p, c) for p, c in e) for e in obj["edges"]),
                   tuple(dict(c) for c in obj["counts"]))


# Stop words, and gender words (a label like "Men Grooming Kit" must not mask the gender in every name).
_STOP = frozenset({"and", "of", "the", "for", "with", "a", "to", "in", "other", "men", "mens", "women", "womens",
                   "boys", "girls", "unisex", "kids"})


def _forms(word: str) -> set[str]:
    """A word lower-cased with punctuation removed, and its forms without a plural "s" / "es"."""
    w = re.sub(r"[^a-z0-9]", "", word.lower())
    forms = {w}
    if len(w) > 3 and w.endswith("s"):
        forms.add(w[:-1])
        if w.endswith("es"):
            forms.add(w[:-2])
    return forms


def class_words(labels: Iterable[str]) -> frozenset[str]:
    """Word forms of class labels ("Tshirts" -> tshirts, tshirt), stop words left out.

    Each label contributes its words and the label with spaces removed ("Flip Flops" -> "flipflops").
    """
    out: set[str] = set()
    for label in labels:
        parts = re.split(r"[\s/]+", str(label))
        for p in [*parts, "".join(parts)]:
            out |= _forms(p)
    return frozenset(w for w in out if w and w not in _STOP)


def mask_class_words(texts: Iterable[str], words: frozenset[str]) -> list[str]:
    """Texts with every word one of whose forms (see :func:`class_words`) is in ``words`` removed.

    Every class's words are removed from every text (not only the text's own label), so which
    words were removed tells nothing about the label. "Men Blue T-shirt" -> "Men Blue".
    """
    out = []
    for text in texts:
        kept = [w for w in str(text).split() if not _forms(w) & words]
        out.append(" ".join(kept))
    return out
