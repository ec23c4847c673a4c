"""Derm7pt (Kawahara et al. 2018) as cropped and split by "Derm7pt+" (gnapoles/Consistent-Derm7pt).

Files under ``<data_dir>/derm7pt_plus``: ``meta/meta_resolved.csv`` (diagnosis, the seven
7-point-checklist concepts, ``image_path``, ``melanoma``, ``index``) and
``splits/{symmetric,asymmetric}_{train,valid,test}_indexes_filtered.csv`` (row ``index`` values).

Each Record: ``inputs = {"image": Path, "concepts": {concept: value}}``, ``target`` = melanoma
(0/1), ``meta`` = source file and row, diagnosis. Concept values are checked against the
vocabulary below: an unknown value is a :class:`DataError` naming file, row and field. A bad
image (missing, corrupt, grayscale, tiny) raises, or is counted in ``splits.skips`` with
``on_bad_image="skip"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from polymodal.data.schema import Record
from polymodal.data.sources.concepts import read_concepts
from polymodal.data.splits import DatasetSplits, SkipReport
from polymodal.data.tables import read_csv_rows
from polymodal.encoders.image import ImageError, open_image
from polymodal.errors import DataError, MissingDataError

FOLDER = "derm7pt_plus"
CONCEPT_VALUES: dict[str, tuple[str, ...]] = {
    "pigment_network": ("absent", "typical", "atypical"),
    "streaks": ("absent", "regular", "irregular"),
    "pigmentation": ("absent", "diffuse regular", "localized regular", "diffuse irregular", "localized irregular"),
    "regression_structures": ("absent", "blue areas", "white areas", "combinations"),
    "dots_and_globules": ("absent", "regular", "irregular"),
    "blue_whitish_veil": ("absent", "present"),
    "vascular_structures": ("absent", "arborizing", "comma", "hairpin", "within regression", "wreath", "dotted",
                            "linear irregular"),
}
SPLIT_KINDS = ("symmetric", "asymmetric")


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise MissingDataError(f"{path} not found: Derm7pt+ is gnapoles/Consistent-Derm7pt (see SOURCES-images.md)")
    return read_csv_rows(path)


def read_meta(path: Path, *, on_bad_image: Literal["raise", "skip"] = "raise",
              check_images: bool = True) -> tuple[dict[int, Record], SkipReport, set[int]]:
    """Records of ``meta_resolved.csv`` keyed by its ``index`` column, the skips, and the skipped indexes.

    Raises:
        DataError: a missing column, a non-integer index, a melanoma flag not in {0, 1} or an
            unknown concept value (naming file, 1-based row and field); a bad image when
            ``on_bad_image="raise"``.
    """
    rows = _read_rows(path)
    skips = SkipReport()
    skipped: set[int] = set()
    required = ["index", "diagnosis", "image_path", "melanoma", *CONCEPT_VALUES]
    if rows:
        for column in required:
            if column not in rows[0]:
                raise DataError("missing column", file=path, row=None, field=column)
    records: dict[int, Record] = {}
    for row_no, row in enumerate(rows, start=1):
        try:
            index = int(row["index"])
        except ValueError:
            raise DataError(f"index {row['index']!r} is not an integer", file=path, row=row_no, field="index") from None
        concepts = read_concepts(row, CONCEPT_VALUES, file=path, row_no=row_no)
        if row["melanoma"].strip() not in ("0", "1"):
            raise DataError(f"melanoma flag {row['melanoma']!r} is not 0 or 1", file=path, row=row_no, field="melanoma")
        image = path.parent.parent / row["image_path"]
        if check_images:
            try:
                open_image(image)
            except ImageError as err:
                if on_bad_image == "raise":
                    raise ImageError(err.detail, file=path, reason=err.reason, row=row_no,
                                     field="image_path") from None
                skips.add(f"image {err.reason}", f"{path.name} row {row_no}: {image.name}")
                skipped.add(index)
                continue
        records[index] = Record(
            id=f"derm7pt:{index}",
            inputs={"image": image, "concepts": concepts},
            target=float(row["melanoma"]),
            meta={"file": str(path), "row": row_no, "diagnosis": row["diagnosis"], "dataset": "derm7pt"},
        )
    return records, skips, skipped


def load_derm7pt(data_dir: str | Path, split: Literal["symmetric", "asymmetric"] = "symmetric", *,
                 on_bad_image: Literal["raise", "skip"] = "raise", check_images: bool = True) -> DatasetSplits:
    """The Derm7pt+ train/valid/test split of the given kind.

    Args:
        data_dir: the data directory (holding ``derm7pt_plus/``).
        split: ``"symmetric"`` (705 images) or ``"asymmetric"`` (841 images), both concept-consistent.
        on_bad_image: raise on a bad image, or skip it and count it in ``skips``.
        check_images: decode every image once up front (about 1 s per 100 images).
    """
    if split not in SPLIT_KINDS:
        raise ValueError(f"split must be one of {SPLIT_KINDS}, got {split!r}")
    root = Path(data_dir) / FOLDER
    meta_path = root / "meta" / "meta_resolved.csv"
    records, skips, skipped = read_meta(meta_path, on_bad_image=on_bad_image, check_images=check_images)
    parts: dict[str, list[Record]] = {}
    files = {}
    for part in ("train", "valid", "test"):
        split_path = root / "splits" / f"{split}_{part}_indexes_filtered.csv"
        files[part] = str(split_path)
        chosen = []
        for row_no, row in enumerate(_read_rows(split_path), start=1):
            try:
                index = int(row["indexes"])
            except (KeyError, ValueError):
                raise DataError(f"bad index {row.get('indexes')!r}", file=split_path, row=row_no,
                                field="indexes") from None
            if index in records:
                chosen.append(records[index])
            elif index in skipped:
                continue  # its image was bad: already counted in skips
            else:
                raise DataError(f"index {index} is not in {meta_path.name}", file=split_path, row=row_no,
                                field="indexes")
        parts[part] = chosen
    return DatasetSplits(parts["train"], parts["valid"], parts["test"], skips=skips, files=files,
                         description=f"Derm7pt+ {split} split")
