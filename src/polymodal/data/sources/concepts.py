"""Concept annotations shared by the dermoscopy adapters: checked values, errors naming the cell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from polymodal.errors import DataError


def read_concepts(row: Mapping[str, str], allowed_values: Mapping[str, Sequence[str]], *, file: Path,
                  row_no: int) -> dict[str, str]:
    """Each concept's value in ``row``, lower-cased; an unknown value names file, row and field."""
    concepts = {}
    for concept, allowed in allowed_values.items():
        value = row[concept].strip().lower()
        if value not in allowed:
            raise DataError(f"unknown value {row[concept]!r} (known: {', '.join(allowed)})", file=file,
                            row=row_no, field=concept)
        concepts[concept] = value
    return concepts
