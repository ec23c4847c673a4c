"""PH2 (Mendonça et al., EMBC 2013): 200 dermoscopy images with criteria and expert lesion masks.

Files under ``<data_dir>/ph2``: ``ph2_concepts.csv`` (``image``, ``lesion_mask``, ``id``,
``clinical_diagnosis``, asymmetry, pigment network, dots/globules, streaks, regression areas,
blue-whitish veil, six colour flags), ``images/IMDxxx.jpg``, ``lesion_masks/IMDxxx_lesion.png``.

Each Record: ``inputs = {"image": Path, "mask": Path, "concepts": {concept: value}}``, ``target``
= clinical diagnosis is melanoma (0/1). Unknown values raise :class:`DataError` naming file, row and
field; bad images (or masks) raise or are counted with ``on_bad_image="skip"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from polymodal.data.schema import Record
from polymodal.data.sources.concepts import read_concepts
from polymodal.data.splits import SkipReport
from polymodal.data.tables import read_csv_rows
from polymodal.encoders.image import ImageError, open_image
from polymodal.errors import DataError, MissingDataError

FOLDER = "ph2"
DIAGNOSES = ("common_nevus", "atypical_nevus", "melanoma")
CONCEPT_VALUES: dict[str, tuple[str, ...]] = {
    "asymmetry": ("0", "1", "2"),
    "pigment_network": ("typical", "atypical"),
    "dots_globules": ("absent", "typical", "atypical"),
    "streaks": ("absent", "present"),
    "regression_areas": ("absent", "present"),
    "blue_whitish_veil": ("absent", "present"),
    **{f"color_{c}": ("0", "1") for c in ("white", "red", "light_brown", "dark_brown", "blue_gray", "black")},
}


def load_ph2(data_dir: str | Path, *, on_bad_image: Literal["raise", "skip"] = "raise",
             check_images: bool = True) -> tuple[list[Record], SkipReport]:
    """All PH2 images as Records, in file order, and the counted skips."""
    path = Path(data_dir) / FOLDER / "ph2_concepts.csv"
    if not path.is_file():
        raise MissingDataError(f"{path} not found: PH2 comes from the ADDI project (see SOURCES-images.md)")
    rows = read_csv_rows(path)
    required = ["image", "lesion_mask", "id", "clinical_diagnosis", *CONCEPT_VALUES]
    for column in required:
        if rows and column not in rows[0]:
            raise DataError("missing column", file=path, field=column)
    skips = SkipReport()
    records = []
    for row_no, row in enumerate(rows, start=1):
        diagnosis = row["clinical_diagnosis"].strip()
        if diagnosis not in DIAGNOSES:
            raise DataError(f"unknown diagnosis {diagnosis!r} (known: {', '.join(DIAGNOSES)})", file=path,
                            row=row_no, field="clinical_diagnosis")
        concepts = read_concepts(row, CONCEPT_VALUES, file=path, row_no=row_no)
        image, mask = path.parent / row["image"], path.parent / row["lesion_mask"]
        if check_images:
            try:
                open_image(image)
                open_image(mask, allow_grayscale=True)
            except ImageError as err:
                if on_bad_image == "raise":
                    field = "image" if Path(err.file or "") == image else "lesion_mask"
                    raise ImageError(err.detail, file=path, reason=err.reason, row=row_no,
                                     field=field) from None
                skips.add(f"image {err.reason}", f"{path.name} row {row_no}: {Path(err.file or image).name}")
                continue
        records.append(Record(
            id=f"ph2:{row['id']}",
            inputs={"image": image, "mask": mask, "concepts": concepts},
            target=float(diagnosis == "melanoma"),
            meta={"file": str(path), "row": row_no, "diagnosis": diagnosis, "dataset": "ph2"},
        ))
    return records, skips
