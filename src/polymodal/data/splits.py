"""Named splits of Records, and the counted skips an adapter made while building them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from polymodal.data.schema import Record


@dataclass
class SkipReport:
    """What an adapter skipped or repaired, counted by reason, with a few examples each.

    Nothing is dropped silently: every skip goes through ``add`` and ends up in the run's report.
    """

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 5

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(example)

    def merge(self, other: SkipReport) -> None:
        for reason, n in other.counts.items():
            self.counts[reason] += n
            shown = self.examples.setdefault(reason, [])
            shown.extend(other.examples.get(reason, [])[: self.max_examples - len(shown)])

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {r: {"count": n, "examples": self.examples.get(r, [])} for r, n in sorted(self.counts.items())}


@dataclass
class DatasetSplits:
    """train / valid / test Records plus provenance.

    ``files`` maps split name to the source file it came from, so reports and errors can cite it.
    """

    train: list[Record]
    valid: list[Record]
    test: list[Record]
    skips: SkipReport = field(default_factory=SkipReport)
    files: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def items(self) -> list[tuple[str, list[Record]]]:
        return [("train", self.train), ("valid", self.valid), ("test", self.test)]

    def sizes(self) -> dict[str, int]:
        return {name: len(recs) for name, recs in self.items()}
