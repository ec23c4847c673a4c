"""Fashion products (Myntra, Kaggle "Fashion Product Images"): names, attributes, a 3-level taxonomy, photos.

Two folders under the data directory (see docs/datasets.md and ../shared/data/SOURCES*.md):

* ``fashion_product_hierarchy/styles_merged.csv``: 44,446 products; columns ``id, gender, masterCategory,
  subCategory, articleType, baseColour, season, year, usage, productDisplayName``;
* ``fashion_product_images/manifest.csv`` + ``images/<id>.jpg``: 11,882 photos of a subset of those ids;
  the manifest repeats the labels, which must agree with the styles table.

:func:`load_fashion` returns one products table (one row per id) with ``image`` = the photo's path or
``None``. Validation: a missing file or column is a :class:`~polymodal.errors.MissingDataError` /
:class:`~polymodal.errors.DataError`; a non-integer or duplicate id, an empty taxonomy label, a bad year
or a manifest row whose labels disagree with the styles table is a :class:`DataError` naming the file,
the 1-based row (header excluded) and the field, or, with ``on_bad_row="skip"``, a counted skip. Missing
names and attributes are kept (name ``""``, attribute ``"Unknown"``, year ``NaN``) and counted as repairs,
because the products themselves are fine; a manifest row whose image file is absent keeps the product
without a photo (counted).

:func:`fashion_image_features` gives frozen EfficientNet-Lite0 features of the photos through the
content-addressed embedding cache (keyed by the image bytes, as the medgrad-eclip recipe does), with a
missing or undecodable photo a counted fallback (feature row of zeros, ``has_image`` False).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from polymodal.data.splits import SkipReport
from polymodal.errors import DataError, MissingDataError

HIERARCHY_FOLDER = "fashion_product_hierarchy"
IMAGES_FOLDER = "fashion_product_images"
STYLES_FILE = "styles_merged.csv"
MANIFEST_FILE = "manifest.csv"
LEVELS: tuple[str, ...] = ("masterCategory", "subCategory", "articleType")
CATEGORICAL_ATTRIBUTES: tuple[str, ...] = ("gender", "baseColour", "season", "usage")
ATTRIBUTES: tuple[str, ...] = (*CATEGORICAL_ATTRIBUTES, "year")
COLUMNS: tuple[str, ...] = ("id", "name", *ATTRIBUTES, *LEVELS, "image")
UNKNOWN = "Unknown"
MISSING_MARKERS = frozenset({"", "NA"})  # the Kaggle export writes "NA" for a missing colour, usage or name
_STYLES_REQUIRED = ("id", *ATTRIBUTES, *LEVELS, "productDisplayName")
_MANIFEST_REQUIRED = ("id", "image", *LEVELS)

OnBadRow = Literal["raise", "skip"]


@dataclass
class FashionData:
    """The products table and what loading skipped or repaired.

    Attributes:
        products: one row per product, columns :data:`COLUMNS` (``year`` float with NaN for missing,
            ``image`` an absolute path string or None), sorted by id.
        skips: counted skips and repairs (reason -> count and examples).
        files: the files read, by role.
    """

    products: pd.DataFrame
    skips: SkipReport = field(default_factory=SkipReport)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def n_with_image(self) -> int:
        return int(self.products["image"].notna().sum())


def _read_csv(path: Path, required: Sequence[str], hint: str) -> list[dict[str, str]]:
    if not path.is_file():
        raise MissingDataError(f"{path} not found: {hint}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for column in required:
            if column not in header:
                raise DataError("missing column", file=path, field=column)
        return list(reader)


def _parse_id(raw: str | None, path: Path, row_no: int) -> int:
    text = (raw or "").strip()
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"id {raw!r} is not an integer", file=path, row=row_no, field="id") from None
    if value < 0:
        raise DataError(f"id {value} is negative", file=path, row=row_no, field="id")
    return value


def _parse_year(raw: str | None, path: Path, row_no: int) -> float:
    text = (raw or "").strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"year {raw!r} is not a number", file=path, row=row_no, field="year") from None
    if not value.is_integer() or not 1900 <= value <= 2100:
        raise DataError(f"year {raw!r} is not a plausible calendar year", file=path, row=row_no, field="year")
    return value


def read_styles(path: Path, *, on_bad_row: OnBadRow = "raise", skips: SkipReport | None = None) -> pd.DataFrame:
    """The styles table as products without images (``image`` None), validated row by row.

    Raises:
        MissingDataError: the file is absent.
        DataError: a missing column; a bad/duplicate id, empty label or bad year (``on_bad_row="raise"``).
    """
    skips = skips if skips is not None else SkipReport()
    rows = _read_csv(path, _STYLES_REQUIRED, "the Myntra styles table (see SOURCES.md, fashion_product_hierarchy)")
    out: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    for row_no, row in enumerate(rows, start=1):
        try:
            pid = _parse_id(row.get("id"), path, row_no)
            if pid in seen:
                raise DataError(f"duplicate id {pid} (first at row {seen[pid]})", file=path, row=row_no, field="id")
            labels = {}
            for level in LEVELS:
                value = (row.get(level) or "").strip()
                if not value:
                    raise DataError("empty taxonomy label", file=path, row=row_no, field=level)
                labels[level] = value
            year = _parse_year(row.get("year"), path, row_no)
        except DataError as err:
            if on_bad_row == "raise":
                raise
            skips.add(f"styles_bad_row:{err.field}", str(err))
            continue
        seen[pid] = row_no
        name = (row.get("productDisplayName") or "").strip()
        if name in MISSING_MARKERS:
            name = ""
            skips.add("repaired:name_missing", f"id {pid} (row {row_no}) kept with an empty name")
        attrs: dict[str, Any] = {}
        for attr in CATEGORICAL_ATTRIBUTES:
            value = (row.get(attr) or "").strip()
            if value in MISSING_MARKERS:
                skips.add(f"repaired:{attr}_missing", f"id {pid} (row {row_no}) -> {UNKNOWN!r}")
                value = UNKNOWN
            attrs[attr] = value
        if math.isnan(year):
            skips.add("repaired:year_missing", f"id {pid} (row {row_no}) -> NaN")
        out.append({"id": pid, "name": name, **attrs, "year": year, **labels, "image": None})
    return pd.DataFrame(out, columns=list(COLUMNS))


def attach_images(products: pd.DataFrame, manifest: Path, *, on_bad_row: OnBadRow = "raise",
                  skips: SkipReport | None = None) -> pd.DataFrame:
    """A copy of ``products`` with ``image`` set from the photo manifest.

    A manifest row must name a known id, and its taxonomy labels must equal the styles table's; an
    absent image file is a counted ``image_file_missing`` (the product stays, without a photo).

    Raises:
        MissingDataError: the manifest is absent.
        DataError: a missing column, bad or duplicate id, unknown id or label disagreement
            (``on_bad_row="raise"``), naming manifest row and field.
    """
    skips = skips if skips is not None else SkipReport()
    rows = _read_csv(manifest, _MANIFEST_REQUIRED, "the photo manifest (see SOURCES-images.md, fashion_product_images)")
    products = products.copy()
    position = {int(pid): i for i, pid in enumerate(products["id"])}
    known = {level: list(products[level]) for level in LEVELS}
    images: list[Any] = list(products["image"])
    seen: dict[int, int] = {}
    for row_no, row in enumerate(rows, start=1):
        try:
            pid = _parse_id(row.get("id"), manifest, row_no)
            if pid in seen:
                raise DataError(f"duplicate id {pid} (first at row {seen[pid]})", file=manifest, row=row_no, field="id")
            if pid not in position:
                raise DataError(f"id {pid} is not in {STYLES_FILE}", file=manifest, row=row_no, field="id")
            i = position[pid]
            for level in LEVELS:
                value = (row.get(level) or "").strip()
                expected = known[level][i]
                if value != expected:
                    raise DataError(f"label {value!r} disagrees with {STYLES_FILE} ({expected!r}) for id {pid}",
                                    file=manifest, row=row_no, field=level)
            rel = (row.get("image") or "").strip()
            if not rel:
                raise DataError("empty image path", file=manifest, row=row_no, field="image")
        except DataError as err:
            if on_bad_row == "raise":
                raise
            skips.add(f"manifest_bad_row:{err.field}", str(err))
            continue
        seen[pid] = row_no
        path = manifest.parent.resolve() / rel
        if not path.is_file():
            skips.add("image_file_missing", f"{manifest.name} row {row_no}: {path}")
            continue
        images[i] = str(path)
    products["image"] = pd.Series(images, index=products.index, dtype=object)
    return products


def load_fashion(data_dir: str | Path, *, on_bad_row: OnBadRow = "raise", images: bool = True) -> FashionData:
    """Load both fashion folders into one products table (see the module docstring).

    Args:
        data_dir: the data directory holding ``fashion_product_hierarchy/`` (and ``fashion_product_images/``).
        on_bad_row: ``"raise"`` a :class:`DataError` on the first bad row, or ``"skip"`` and count it.
        images: attach photos from ``fashion_product_images/manifest.csv``; a missing images folder
            is then an error (pass False to load names and attributes only).

    Returns:
        :class:`FashionData`, products sorted by id.
    """
    root = Path(data_dir)
    skips = SkipReport()
    styles = root / HIERARCHY_FOLDER / STYLES_FILE
    products = read_styles(styles, on_bad_row=on_bad_row, skips=skips)
    files = {"styles": str(styles)}
    if images:
        manifest = root / IMAGES_FOLDER / MANIFEST_FILE
        products = attach_images(products, manifest, on_bad_row=on_bad_row, skips=skips)
        files["manifest"] = str(manifest)
    products = products.sort_values("id", kind="stable").reset_index(drop=True)
    return FashionData(products=products, skips=skips, files=files)


def fashion_image_features(paths: Sequence[str | Path | None], cache: Any, encoder: Any | None = None, *,
                           skips: SkipReport | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frozen image features of product photos through the embedding cache, with counted fallbacks.

    Args:
        paths: N image paths, or None for a product without a photo.
        cache: an :class:`~polymodal.encoders.cache.EmbeddingCache` (items keyed by the sha256 of the bytes).
        encoder: a :class:`~polymodal.encoders.image.FrozenImageEncoder`; default EfficientNet-Lite0,
            224 px squash (the photos are 224x224 or 225x300 product shots on white; squashing keeps the
            whole product in view).
        skips: where ``image_unreadable`` fallbacks (missing or undecodable file) are counted.

    Returns:
        features (N, D) float32, zero rows where there is no usable photo; has_image (N,) bool.
    """
    from polymodal.encoders.image import FrozenImageEncoder, ImageError, image_digest

    encoder = encoder if encoder is not None else FrozenImageEncoder("efficientnet-lite0")
    skips = skips if skips is not None else SkipReport()
    has = np.zeros(len(paths), dtype=bool)
    digests: dict[int, str] = {}
    for i, path in enumerate(paths):
        if path is None or (isinstance(path, float) and math.isnan(path)):
            continue
        try:
            digest = image_digest(path)
        except ImageError as err:
            skips.add("image_unreadable", err.detail)
            continue
        encoder.register(digest, path)
        digests[i] = digest
    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)  # (N, D)
    # A corrupt file raises inside the batch encode; drop it (counted) and retry. Shards written before
    # the failure are kept, so a retry only reads them back.
    while digests:
        try:
            feats = cache.encode(encoder, list(digests.values()))  # (M, D)
        except ImageError as err:
            bad = {d for i, d in digests.items() if Path(str(paths[i])) == Path(err.file or "")}
            if not bad:
                raise
            for i in [i for i, d in digests.items() if d in bad]:
                skips.add("image_unreadable", f"{paths[i]}: {err.detail}")
                digests.pop(i)
            continue
        rows = list(digests)
        out[rows] = feats
        has[rows] = True
        break
    return out, has
