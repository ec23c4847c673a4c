"""Derm7pt+ and PH2 adapters: records, concept checks, bad images (error or counted skip), real files."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from polymodal.data.sources.derm7pt import load_derm7pt
from polymodal.data.sources.ph2 import load_ph2
from polymodal.encoders.image import ImageError
from polymodal.errors import DataError, MissingDataError
from tests.derm_synthetic import write_derm7pt, write_ph2

DATA = Path(os.environ.get("POLYMODAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _edit_csv(path: Path, row: int, field: str, value: str) -> None:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fieldnames = list(rows[0])
    rows[row - 1][field] = value
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def test_derm7pt_records_and_splits(tmp_path: Path) -> None:
    write_derm7pt(tmp_path, n=12)
    splits = load_derm7pt(tmp_path, "symmetric")
    assert splits.sizes() == {"train": 6, "valid": 3, "test": 3}
    rec = splits.train[0]
    assert rec.target == 1.0 and rec.inputs["concepts"]["pigment_network"] == "atypical"
    assert rec.inputs["image"].is_file() and rec.meta["row"] == 1


def test_derm7pt_unknown_concept_names_file_row_field(tmp_path: Path) -> None:
    base = write_derm7pt(tmp_path, n=8)
    _edit_csv(base / "meta" / "meta_resolved.csv", 3, "streaks", "wavy")
    with pytest.raises(DataError, match=r"meta_resolved.csv, row 3, field 'streaks': unknown value 'wavy'"):
        load_derm7pt(tmp_path)


def test_derm7pt_missing_image_raises_or_is_counted(tmp_path: Path) -> None:
    base = write_derm7pt(tmp_path, n=8)
    (base / "images" / "X" / "x002.jpg").unlink()
    with pytest.raises(ImageError, match=r"meta_resolved.csv, row 3, field 'image_path': .*x002.jpg"):
        load_derm7pt(tmp_path)
    splits = load_derm7pt(tmp_path, on_bad_image="skip")
    assert splits.skips.counts["image missing"] == 1
    assert sum(splits.sizes().values()) == 7


def test_derm7pt_corrupt_image_is_counted(tmp_path: Path) -> None:
    base = write_derm7pt(tmp_path, n=8)
    (base / "images" / "X" / "x005.jpg").write_bytes(b"garbage")
    splits = load_derm7pt(tmp_path, on_bad_image="skip")
    assert splits.skips.to_dict()["image corrupt"]["examples"] == ["meta_resolved.csv row 6: x005.jpg"]


def test_derm7pt_missing_folder_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="Consistent-Derm7pt"):
        load_derm7pt(tmp_path)


def test_ph2_records_masks_and_bad_values(tmp_path: Path) -> None:
    base = write_ph2(tmp_path, n=8)
    records, skips = load_ph2(tmp_path)
    assert len(records) == 8 and not skips.counts
    assert records[0].target == 1.0 and records[0].inputs["mask"].is_file()
    _edit_csv(base / "ph2_concepts.csv", 2, "clinical_diagnosis", "freckle")
    with pytest.raises(DataError, match=r"ph2_concepts.csv, row 2, field 'clinical_diagnosis'"):
        load_ph2(tmp_path)


def test_ph2_missing_mask_names_it(tmp_path: Path) -> None:
    base = write_ph2(tmp_path, n=6)
    (base / "lesion_masks" / "IMD003_lesion.png").unlink()
    with pytest.raises(ImageError, match=r"row 4, field 'lesion_mask': .*IMD003_lesion.png"):
        load_ph2(tmp_path)
    records, skips = load_ph2(tmp_path, on_bad_image="skip")
    assert len(records) == 5 and skips.counts["image missing"] == 1


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "derm7pt_plus").is_dir() or not (DATA / "ph2").is_dir(), reason="image data absent")
def test_real_files_load_with_no_skips() -> None:
    sym = load_derm7pt(DATA, "symmetric")
    asym = load_derm7pt(DATA, "asymmetric")
    assert sym.sizes() == {"train": 298, "valid": 135, "test": 272}
    assert asym.sizes() == {"train": 346, "valid": 171, "test": 324}
    records, skips = load_ph2(DATA)
    assert len(records) == 200 and sum(r.target for r in records) == 40
    assert not sym.skips.counts and not asym.skips.counts and not skips.counts
