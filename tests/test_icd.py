"""ICD-10 hierarchy: normalisation, ancestry, names, and table validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from polymodal.data.icd import CODES_FILE, NAMES_FILE, IcdHierarchy
from polymodal.errors import DataError, MissingDataError

NAMES = {
    "D02": "Carcinoma in situ of middle ear and respiratory system",
    "D022": "Carcinoma in situ of bronchus and lung",
    "F32": "Major depressive disorder, single episode",
    "T360": "Poisoning by penicillins",
}


@pytest.fixture
def icd() -> IcdHierarchy:
    return IcdHierarchy(NAMES, extra_codes=["D0220", "T360X1A"])


def test_normalize_accepts_dotted_and_dotless() -> None:
    assert IcdHierarchy.normalize("D02.20") == "D02.20"
    assert IcdHierarchy.normalize("D0220") == "D02.20"
    assert IcdHierarchy.normalize(" d02 ") == "D02"
    assert IcdHierarchy.normalize("F32.A") == "F32.A"
    for bad in ["", "D2", "02.20", "D02.20000", "D02..2"]:
        with pytest.raises(ValueError, match="not an ICD-10 code"):
            IcdHierarchy.normalize(bad)


def test_ancestors_by_truncation(icd: IcdHierarchy) -> None:
    assert icd.ancestors("D02.20") == ["D02.20", "D02.2", "D02", "D"]
    assert icd.ancestors("D0220") == ["D02.20", "D02.2", "D02", "D"]
    assert icd.ancestors("D02") == ["D02", "D"]
    # "T36.0X1" and "T36.0X" are not named levels: skipped, as HINT skips truncations it cannot find.
    assert icd.ancestors("T36.0X1A") == ["T36.0X1A", "T36.0", "T36", "T"]


def test_names(icd: IcdHierarchy) -> None:
    assert icd.name("D02.2") == "Carcinoma in situ of bronchus and lung"
    assert icd.name("D02.20") is None  # a leaf: known, but the name table has no name for it
    assert icd.name("nonsense") is None


def test_known_codes_and_their_ancestors(icd: IcdHierarchy) -> None:
    assert icd.is_known("D02.20")  # in the code list
    assert icd.is_known("D02.2") and icd.is_known("D02")  # named, and ancestors of a known code
    assert icd.is_known("T36.0X")  # a truncation of the known "T36.0X1A"
    assert not icd.is_known("D02.21")
    assert not icd.is_known("Z58.6")
    assert not icd.is_known("garbage")
    assert "D02.20" in icd and "Z58.6" not in icd


def test_known_ancestor_places_newer_codes(icd: IcdHierarchy) -> None:
    assert icd.known_ancestor("F32.A") == "F32"
    assert icd.known_ancestor("D02.29") == "D02.2"
    assert icd.known_ancestor("D02.20") == "D02.20"
    assert icd.known_ancestor("Z58.6") is None


def _write_tables(folder: Path, names: str, codes: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NAMES_FILE).write_text(names, encoding="utf-8")
    if codes is not None:
        (folder / CODES_FILE).write_text(codes, encoding="utf-8")
    return folder


def test_from_data_dir_reads_top_layout(tmp_path: Path) -> None:
    _write_tables(tmp_path / "TOP_clinical_trial_outcome" / "icdcode",
                  'D02,"Carcinoma in situ, respiratory"\nD022,"Carcinoma in situ of bronchus and lung"\n',
                  "D0220\t2\nD0221\t2\n")
    icd = IcdHierarchy.from_data_dir(tmp_path)
    assert icd.name("D02") == "Carcinoma in situ, respiratory"  # quoted comma kept
    assert icd.is_known("D02.21") and not icd.is_known("D02.29")
    assert IcdHierarchy.from_data_dir(tmp_path / "TOP_clinical_trial_outcome" / "icdcode").is_known("D02.21")


def test_missing_table_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"icd_10_direct_mapping\.csv.*futianfan"):
        IcdHierarchy.from_data_dir(tmp_path)


@pytest.mark.parametrize(
    ("names", "row", "field"),
    [
        ('A00,"Cholera"\nA01,"Typhoid",extra\n', 2, "code"),  # three fields
        ('A00,"Cholera"\nA01,"Typhoid"\n1AB,"Bad code"\n', 3, "code"),
        ('A00,"Cholera"\nA01,""\n', 2, "name"),
        ('A00,"Cholera"\nA00,"Cholera again"\n', 2, "code"),
    ],
)
def test_malformed_name_table_rows(tmp_path: Path, names: str, row: int, field: str) -> None:
    folder = _write_tables(tmp_path, names)
    with pytest.raises(DataError) as err:
        IcdHierarchy.from_data_dir(folder)
    assert (err.value.row, err.value.field) == (row, field)
    assert f"{NAMES_FILE}, row {row}, field '{field}'" in str(err.value)


def test_malformed_code_list_row(tmp_path: Path) -> None:
    folder = _write_tables(tmp_path, 'A00,"Cholera"\n', "A000\t1\n???\t1\n")
    with pytest.raises(DataError, match=rf"{CODES_FILE}, row 2, field 'code'"):
        IcdHierarchy.from_data_dir(folder)
