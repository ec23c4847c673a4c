"""Utterance text repair and preceding dialogue context, shared by the MELD and MIntRec loaders.

Two things every conversational-text source needs:

* :func:`fix_text` — the MELD CSVs circulate in several encodings. The declare-lab release has
  Windows-1252 punctuation read as Latin-1, so an apostrophe shows up as the C1 control character
  ``"\\x92"`` (or, after a second round of UTF-8 encoding, as the mojibake ``"â\\x80\\x99"``);
  other copies (including the one under ``shared/data``) are clean UTF-8 with curly quotes. All
  of them are mapped to one plain form: C1 characters are decoded as the Windows-1252 characters
  they stand for, UTF-8 mojibake is undone, curly quotes / dashes / ellipses become ASCII, and
  whitespace is collapsed. The same utterance therefore gets the same text (and the same cache key)
  whichever copy is read.
* :func:`preceding_context` — for each utterance, the text of the *earlier* utterances of the same
  dialogue (strictly smaller order key), most recent last, truncated to the last ``max_turns``.
  Nothing later in the dialogue, and nothing from another dialogue, can leak in.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.errors import DataError

__all__ = ["UtteranceTable", "fix_text", "parse_int", "parse_label", "preceding_context", "preceding_indices",
           "read_text_file", "require_columns"]

# Typographic punctuation -> ASCII, so "don’t" and "don't" are the same string.
_ASCII_PUNCT = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ",
})
_C1 = re.compile("[\u0080-\u009f]")
_MOJIBAKE = re.compile("[\u00c2\u00c3\u00e2][\u0080-\u00bf]")
_SPACE = re.compile(r"\s+")


def _undo_c1(text: str) -> str:
    # A C1 control character in text is almost always a Windows-1252 byte decoded as Latin-1
    # ("\x92" is cp1252's right single quote); decode it as the character it stood for.
    def one(match: re.Match[str]) -> str:
        try:
            return bytes([ord(match.group())]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d are undefined in cp1252
            return " "

    return _C1.sub(one, text)


def _undo_mojibake(text: str) -> str:
    # "â€™" / "Ã©": UTF-8 bytes decoded as cp1252/Latin-1; re-encode and decode once, if that works.
    if not _MOJIBAKE.search(text) and "â€" not in text:
        return text
    for codec in ("cp1252", "latin-1"):
        try:
            return text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
    return text


def fix_text(text: str) -> str:
    """One plain form of an utterance: encodings repaired, punctuation ASCII, spaces collapsed.

    Args:
        text: a raw utterance as read from the file.

    Returns:
        The repaired text (may be empty).

    Example:
        >>> fix_text("You must\\x92ve had your hands full\\x85")
        "You must've had your hands full..."
    """
    text = _undo_mojibake(text)
    text = _undo_c1(text)
    text = unicodedata.normalize("NFC", text).translate(_ASCII_PUNCT)
    return _SPACE.sub(" ", text).strip()


def preceding_indices(frame: pd.DataFrame, *, dialogue: str, order: str, max_turns: int = 8) -> list[np.ndarray]:
    """Row positions of each row's earlier utterances in its dialogue (oldest first).

    Args:
        frame: one row per utterance; any row order.
        dialogue: column naming the dialogue (NaN: no dialogue known, no earlier utterances).
        order: column ordering utterances inside a dialogue (numeric).
        max_turns: keep only the last ``max_turns`` earlier utterances (0: always empty).

    Returns:
        One int array per row of ``frame`` (same order) of positions (0-based, into ``frame``) of
        utterances with a strictly smaller ``order`` in the same dialogue, the most recent last.
    """
    if max_turns < 0:
        raise ValueError(f"max_turns must be >= 0, got {max_turns}")
    empty = np.zeros(0, dtype=np.int64)
    out = [empty] * len(frame)
    if max_turns == 0 or len(frame) == 0:
        return out
    keys = frame[dialogue].to_numpy()
    orders = frame[order].to_numpy(dtype=float)
    positions = np.arange(len(frame))
    known = ~pd.isna(keys)
    for _, idx in pd.Series(positions[known]).groupby(pd.Series(keys[known]).to_numpy()):
        rows = idx.to_numpy()
        rows = rows[np.argsort(orders[rows], kind="stable")]
        sorted_orders = orders[rows]
        for j, row in enumerate(rows):
            # Strictly earlier: a duplicate order key (same turn twice) is not context for itself.
            earlier = rows[: int(np.searchsorted(sorted_orders, sorted_orders[j], side="left"))]
            out[row] = earlier[-max_turns:]
    return out


def preceding_context(
    frame: pd.DataFrame,
    *,
    dialogue: str,
    order: str,
    text: str,
    speaker: str | None = None,
    max_turns: int = 8,
    sep: str = " | ",
) -> list[str]:
    """The earlier utterances of each row's dialogue, joined into one string.

    Args:
        frame: one row per utterance; any row order.
        dialogue: column naming the dialogue (NaN: no dialogue known, context is empty).
        order: column ordering utterances inside a dialogue (numeric).
        text: column with the utterance text.
        speaker: optional column; when given each turn reads ``"Speaker: text"``.
        max_turns: keep only the last ``max_turns`` earlier utterances (0: always empty).
        sep: separator between turns.

    Returns:
        One string per row of ``frame`` (same order); ``""`` for a dialogue's first utterance.
        Only utterances with a strictly smaller ``order`` in the same dialogue appear.
    """
    turns = frame[text].astype(str)
    if speaker is not None:
        turns = frame[speaker].astype(str) + ": " + turns
    turn_list = turns.tolist()
    return [sep.join(turn_list[k] for k in idx)
            for idx in preceding_indices(frame, dialogue=dialogue, order=order, max_turns=max_turns)]


def read_text_file(path: str | Path, actions: list[str]) -> str:
    """Read a text file as UTF-8 (a BOM is dropped), falling back to Windows-1252 with a note.

    Args:
        path: the file.
        actions: list to which a line is appended when the fallback was needed.

    Returns:
        The decoded text.
    """
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        actions.append(f"{Path(path).name}: not valid UTF-8 (byte {err.start}); read as Windows-1252")
        return raw.decode("cp1252", errors="replace")


@dataclass
class UtteranceTable:
    """Utterances of one conversational corpus, with their official split and labels.

    Attributes:
        frame: one row per kept utterance with columns ``id`` (unique), ``split``
            ("train"/"valid"/"test"), ``dialogue`` (unique across splits, or NaN when the source
            has no dialogue ids), ``order`` (position inside the dialogue), ``speaker``, ``text``
            (repaired by :func:`fix_text`), ``context`` (earlier utterances of the dialogue) and one
            column per label set (a class name).
        labels: label set name -> its classes in a fixed order (the class index order of the model).
        skips: reason -> number of rows skipped for it (every skip is counted here).
        actions: human-readable lines describing repairs made while reading.
    """

    frame: pd.DataFrame
    labels: dict[str, tuple[str, ...]]
    skips: dict[str, int] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)

    def split(self, name: str) -> pd.DataFrame:
        """Rows of one official split (a copy, index reset)."""
        return self.frame[self.frame["split"] == name].reset_index(drop=True)


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], path: str | Path) -> None:
    """Raise a DataError naming the file and the first missing column."""
    for name in columns:
        if name not in frame.columns:
            raise DataError(f"missing column (found {list(frame.columns)})", file=path, field=name)


def parse_int(value: str, *, path: str | Path, row: int, field_name: str) -> int:
    """An integer cell, or a DataError naming file, row (1-based, header excluded) and field."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise DataError(f"not an integer: {value!r}", file=path, row=row, field=field_name) from None


def parse_label(value: str, classes: tuple[str, ...], *, path: str | Path, row: int, field_name: str) -> str:
    """A label cell that must be one of ``classes`` (case and surrounding spaces ignored)."""
    lookup = {c.lower(): c for c in classes}
    got = lookup.get(str(value).strip().lower())
    if got is None:
        raise DataError(f"unknown label {value!r}; expected one of {list(classes)}", file=path, row=row,
                        field=field_name)
    return got
