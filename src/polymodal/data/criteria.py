"""Eligibility criteria text -> inclusion and exclusion statements.

ClinicalTrials.gov stores a trial's eligibility criteria as one text block: section headers
("Inclusion Criteria:", "Key Exclusion Criteria:" ...), then items that begin with a bullet
("-  ", "1. ", "a) " ...), wrapped at about 90 columns with deeper indentation for the wrapped
lines, and separated by blank lines. HINT (Fu et al., 2022; ``HINT/protocol_encode.py``) splits
the block at the first line that mentions "inclusion" and the first that mentions "exclusion",
and treats every non-empty line as one sentence. We keep that shape (two lists of statements,
no headers means everything is inclusion) but do it more carefully:

* a header is a short line that *is* a header, not any line that mentions the word
  ("Other exclusion criteria may apply" stays a statement);
* wrapped continuation lines are joined to their item, so one criterion is one statement
  (HINT would cut "... congestive heart failure > NYHA Class" from "II; patients must ...");
* bullets and item numbers are removed, inner whitespace collapsed;
* statements with almost no content (a lone "-" or "1.") are dropped.

Case is kept (HINT lower-cases): text encoders decide that themselves.
"""

from __future__ import annotations

import re

__all__ = ["split_criteria"]

# A bullet or an item number at the start of an item: "-", "*", "•", "1.", "12)", "a)", "(a)", "(iv)".
# Parenthesised letters are single letters or roman numerals so that "(SUD) for ..." is text.
# Numbers need a following space so that "1.5 x ULN" is not read as item "1." with text "5 x ULN".
_BULLET = re.compile(
    r"^(?:[-–—*•·]+|\d{1,3}[.)]|\(\d{1,3}\)|[a-zA-Z][.)]|\([a-zA-Z]\)|\(?[ivxIVX]{1,5}[.)])(?=\s)\s*"
)
# "Inclusion Criteria", "Key exclusion criteria", "General Medical Exclusions", "INCLUSION": a
# line that consists of the keyword with at most two qualifiers before it and, perhaps, a qualifier
# after a dash, a parenthesis or "for" ("Exclusion Criteria - for Phase I", "... for Part B").
_BARE_HEADER = re.compile(
    r"^(?:[\w-]+\s+){0,2}(inclusion|exclusion)(?:s|ary)?(?:\s+criteria)?(?:\s+(?:[-–(]|for\s)[^.]{0,80})?$",
    re.IGNORECASE,
)
_KEYWORD = re.compile(r"\b(inclusion|exclusion)(?:s|ary)?\b", re.IGNORECASE)
# A header inlined with the first item: "Inclusion Criteria: - Age >= 18. - ECOG 0-1".
_INLINE_HEADER = re.compile(r"^((?:[\w-]+\s+){0,2}(?:inclusion|exclusion)\s+criteria)\s*:\s*(\S.*)$",
                            re.IGNORECASE)
# Items flattened into one paragraph ("... tumour. - Have measurable disease ..."): a dash that
# follows the end of a sentence starts a new item. A dash inside a sentence ("(ICH) - GCP") does not.
_FLAT_ITEM = re.compile(r"(?<=[.;])\s+-\s+(?=\S)")
_NON_ALNUM = re.compile(r"[\W_]+")
_MAX_COLON_HEADER_WORDS = 8


def split_criteria(text: str, *, min_chars: int = 3) -> tuple[list[str], list[str]]:
    """Split an eligibility-criteria text into inclusion and exclusion statements.

    Args:
        text: the raw criteria block, as ClinicalTrials.gov wrote it (may be empty).
        min_chars: statements with fewer alphanumeric characters than this are dropped.

    Returns:
        ``(inclusion, exclusion)``: lists of single-line statements without bullets, in text
        order. Text before any header, and all text when there is no header, counts as inclusion.
    """
    sections: dict[str, list[str]] = {"inclusion": [], "exclusion": []}
    current = "inclusion"
    for item in _items(text):
        header, rest = _header(item)
        if header is not None:
            current = header
            if not rest:
                continue
            item = rest
        for statement in _FLAT_ITEM.split(item):
            statement = _strip_bullet(statement)
            if len(_NON_ALNUM.sub("", statement)) >= min_chars:
                sections[current].append(statement)
    return sections["inclusion"], sections["exclusion"]


def _items(text: str) -> list[str]:
    """The text's items, each joined into one line, in order.

    Blank lines separate items. Inside a paragraph a line starts a new item when it is a section
    header, when it is less indented than the current item's first line (wrapped lines never are),
    or when it begins with a bullet at the same indentation (lists written without blank lines);
    any other line is a wrapped continuation and is joined to the item. A paragraph that begins
    in lower case, without a bullet, right after an item that did not end a sentence continues
    that item: some records carry a stray blank line inside an item ("(between 1500-3000" /
    "mg/day) or dual therapy ...").
    """
    items: list[str] = []
    for paragraph in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        first = True
        for item in _paragraph_items(paragraph):
            if first and items and _continues(items[-1], item):
                items[-1] = f"{items[-1]} {item}"
            else:
                items.append(item)
            first = False
    return [" ".join(item.split()) for item in items]


def _paragraph_items(paragraph: str) -> list[str]:
    """One paragraph's items (see ``_items``)."""
    items: list[str] = []
    lines: list[str] = []
    indent = 0
    for raw in paragraph.split("\n"):
        line = raw.strip()
        if not line:
            continue
        depth = len(raw) - len(raw.lstrip())
        if _is_bare_header(line):  # a header line that lost its blank line: an item of its own
            items.extend([" ".join(lines), line] if lines else [line])
            lines = []
            continue
        if lines and (depth < indent or (depth == indent and _BULLET.match(line))):
            items.append(" ".join(lines))
            lines = []
        if not lines:
            indent = depth
        lines.append(line)
    if lines:
        items.append(" ".join(lines))
    return items


def _continues(previous: str, item: str) -> bool:
    """Whether ``item`` is the rest of ``previous``, cut by a stray blank line."""
    return (
        item[:1].islower()
        and not _BULLET.match(item)
        and not previous.rstrip().endswith((".", ":", ";"))
        and not _is_bare_header(previous)
    )


def _header(item: str) -> tuple[str | None, str]:
    """Whether an item is a section header: ``(section or None, text after the header)``."""
    line = _strip_bullet(item)
    inline = _INLINE_HEADER.match(line)
    if inline:
        return _section_of(inline.group(1)), inline.group(2)
    core = line.rstrip(" :")
    keywords = {m.group(1).lower() for m in _KEYWORD.finditer(core)}
    if len(keywords) != 1:  # no keyword, or "inclusion and exclusion criteria": not a section header
        return None, item
    if _BARE_HEADER.match(core):
        return keywords.pop(), ""
    # "Exclusion criteria for all subjects:", "Inclusion Criteria (all must apply):"
    if line.endswith(":") and len(core.split()) <= _MAX_COLON_HEADER_WORDS and "." not in core:
        return keywords.pop(), ""
    return None, item


def _is_bare_header(line: str) -> bool:
    section, rest = _header(line)
    return section is not None and not rest


def _section_of(header: str) -> str:
    return "exclusion" if "exclusion" in header.lower() else "inclusion"


def _strip_bullet(statement: str) -> str:
    return _BULLET.sub("", statement.strip(), count=1).strip()
