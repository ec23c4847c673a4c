"""The ICD-10 code hierarchy: names, validity and ancestors of codes.

ICD-10 codes are hierarchical by construction: a code's parent is the code with its last character
removed ("D02.20" -> "D02.2" -> "D02"), down to the 3-character category; the first letter groups
the categories into chapters. HINT (``HINT/icdcode_encode.py``) builds its GRAM ancestor lists the
same way, by truncation, keeping the ancestors its ICD-10 library knows. We do the same with the
tables TOP ships in ``icdcode/``:

* ``icd_10_direct_mapping.csv`` (``code,"name"``, codes without the dot) names the categories and
  subcategories (24,628 codes, mostly non-leaf ones);
* ``icd2ccs.txt`` (``code<TAB>ccs``) lists the billable ICD-10-CM codes (72,436); it only adds
  which codes exist, not names.

Codes are written with the dot after the third character, as in TOP ("D02.20").
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from polymodal.errors import DataError, MissingDataError

__all__ = ["IcdHierarchy"]

NAMES_FILE = "icd_10_direct_mapping.csv"
CODES_FILE = "icd2ccs.txt"
TOP_ICD_DIR = Path("TOP_clinical_trial_outcome") / "icdcode"

# A letter, two digits (the category), then up to four more characters; ICD-10-CM uses letters in
# the 4th-7th positions too ("F32.A", "T36.0X1A"). The dot is optional on input.
_CODE = re.compile(r"^([A-Z][0-9][0-9A-Z])\.?([0-9A-Z]{0,4})$")
_CATEGORY_LEN = 3


class IcdHierarchy:
    """ICD-10 code names and ancestry by truncation.

    Args:
        names: code -> name (codes with or without the dot). Every code named here is known.
        extra_codes: further codes that exist but have no name in ``names`` (billable leaves).

    Example:
        >>> icd = IcdHierarchy({"D02": "Carcinoma in situ ...", "D022": "... of bronchus and lung"})
        >>> icd.ancestors("D02.20")
        ['D02.20', 'D02.2', 'D02', 'D']
    """

    def __init__(self, names: Mapping[str, str], extra_codes: Iterable[str] = ()) -> None:
        self._names = {self._key(code): name for code, name in names.items()}
        self._known = set(self._names) | {self._key(code) for code in extra_codes}
        # Every truncation of a known code (down to the category) is a known ancestor.
        self._prefixes = {code[:n] for code in self._known for n in range(_CATEGORY_LEN, len(code) + 1)}

    @classmethod
    def from_data_dir(cls, data_dir: str | Path) -> IcdHierarchy:
        """Load the tables TOP ships: ``<data_dir>/TOP_clinical_trial_outcome/icdcode/``.

        Args:
            data_dir: the polymodal data directory (or the ``icdcode`` folder itself).

        Raises:
            MissingDataError: the name table is absent.
            DataError: a malformed row (names file, row and field).
        """
        folder = Path(data_dir)
        if not (folder / NAMES_FILE).exists():
            folder = folder / TOP_ICD_DIR
        names_path = folder / NAMES_FILE
        if not names_path.exists():
            raise MissingDataError(
                f"ICD-10 name table not found: {names_path}. It comes from the TOP benchmark repository "
                "(github.com/futianfan/clinical-trial-outcome-prediction, data/icdcode/)."
            )
        codes_path = folder / CODES_FILE
        extra = read_code_list(codes_path) if codes_path.exists() else []
        return cls(read_name_table(names_path), extra)

    def to_json(self) -> dict[str, Any]:
        """The table as data (names and known codes), for a run folder: no pickle needed to reload it."""
        return {"names": dict(sorted(self._names.items())), "known": sorted(self._known - set(self._names))}

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> IcdHierarchy:
        """Inverse of :meth:`to_json`."""
        return cls(dict(state["names"]), list(state.get("known", ())))

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and self.is_known(code)

    @staticmethod
    def normalize(code: str) -> str:
        """Canonical form: upper case, dot after the category ("d0220" -> "D02.20").

        Raises:
            ValueError: the text is not shaped like an ICD-10 code.
        """
        match = _CODE.match(code.strip().upper())
        if match is None:
            raise ValueError(f"not an ICD-10 code: {code!r}")
        category, rest = match.groups()
        return f"{category}.{rest}" if rest else category

    def is_known(self, code: str) -> bool:
        """Whether the code is in the tables or is an ancestor (a truncation) of a code that is."""
        try:
            return self._key(code) in self._prefixes
        except ValueError:
            return False

    def known_ancestor(self, code: str) -> str | None:
        """The nearest truncation of ``code`` (itself included) that is known, or None.

        Useful for codes newer than the tables (ICD-10-CM adds codes every year): "F32.A" is not
        in TOP's 2016 tables, but its category "F32" is.
        """
        try:
            key = self._key(code)
        except ValueError:
            return None
        for n in range(len(key), _CATEGORY_LEN - 1, -1):
            if key[:n] in self._prefixes:
                return self.normalize(key[:n])
        return None

    def name(self, code: str) -> str | None:
        """The code's name in the table, or None (leaf codes and chapter letters have none)."""
        try:
            return self._names.get(self._key(code))
        except ValueError:
            return None

    def ancestors(self, code: str) -> list[str]:
        """The code, its named intermediate truncations, its category and its chapter letter.

        Intermediate levels are kept only where the name table has them, as HINT keeps only the
        truncations its library knows: "T36.0X1A" has no "T36.0X" level.

        Example: "D02.20" -> ["D02.20", "D02.2", "D02", "D"].

        Raises:
            ValueError: the text is not shaped like an ICD-10 code.
        """
        key = self._key(code)
        chain = [self.normalize(key)]
        for n in range(len(key) - 1, _CATEGORY_LEN, -1):
            if key[:n] in self._names:
                chain.append(self.normalize(key[:n]))
        if len(key) > _CATEGORY_LEN:
            chain.append(self.normalize(key[:_CATEGORY_LEN]))
        chain.append(key[0])
        return chain

    @classmethod
    def _key(cls, code: str) -> str:
        """Dot-less upper-case form used as the dictionary key."""
        return cls.normalize(code).replace(".", "")


def read_name_table(path: str | Path) -> dict[str, str]:
    """Read ``icd_10_direct_mapping.csv``: rows ``code,"name"`` with no header.

    Raises:
        DataError: wrong number of fields, a malformed code, an empty name or a repeated code.
    """
    names: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row, fields in enumerate(csv.reader(handle), start=1):
            if not fields:
                continue
            if len(fields) != 2:
                raise DataError(f"expected 2 fields (code, name), got {len(fields)}", file=path, row=row,
                                field="code")
            code, name = _checked_code(fields[0], path, row), fields[1].strip()
            if not name:
                raise DataError(f"empty name for code {code!r}", file=path, row=row, field="name")
            if code in names:
                raise DataError(f"code {code!r} appears twice", file=path, row=row, field="code")
            names[code] = name
    return names


def read_code_list(path: str | Path) -> list[str]:
    """Read the codes of ``icd2ccs.txt`` (``code<TAB>ccs`` per line); the CCS column is ignored.

    Raises:
        DataError: a malformed code.
    """
    codes: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for row, line in enumerate(handle, start=1):
            fields = line.split()
            if fields:
                codes.append(_checked_code(fields[0], path, row))
    return codes


def _checked_code(text: str, path: str | Path, row: int) -> str:
    try:
        return IcdHierarchy.normalize(text)
    except ValueError as err:
        raise DataError(str(err), file=path, row=row, field="code") from None
