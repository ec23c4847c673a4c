"""The fashion products source: validation of both folders and the cached image features."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from polymodal.data.sources.fashion import (
    COLUMNS,
    UNKNOWN,
    fashion_image_features,
    load_fashion,
)
from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.image import FrozenImageEncoder, ImageBackbone
from polymodal.errors import DataError, MissingDataError

STYLE_HEADER = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year",
                "usage", "productDisplayName"]
STYLES = [
    ["3", "Men", "Apparel", "Topwear", "Tshirts", "Blue", "Summer", "2012.0", "Casual", "Nike Men Blue Tshirt"],
    ["1", "Women", "Footwear", "Shoes", "Heels", "Red", "Fall", "2011.0", "", "Catwalk Women Red Heels"],
    ["2", "Men", "Accessories", "Bags", "Backpacks", "NA", "Winter", "", "Casual", "NA"],
]
MANIFEST_HEADER = ["id", "image", "masterCategory", "subCategory", "articleType"]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _image(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 64), colour).save(path)


def _folders(root: Path, styles: list[list[str]] | None = None, manifest: list[list[str]] | None = None) -> Path:
    _write(root / "fashion_product_hierarchy" / "styles_merged.csv", STYLE_HEADER, styles or STYLES)
    rows = manifest if manifest is not None else [
        ["3", "images/3.jpg", "Apparel", "Topwear", "Tshirts"],
        ["1", "images/1.jpg", "Footwear", "Shoes", "Heels"],
    ]
    _write(root / "fashion_product_images" / "manifest.csv", MANIFEST_HEADER, rows)
    _image(root / "fashion_product_images" / "images" / "3.jpg", (0, 0, 255))
    _image(root / "fashion_product_images" / "images" / "1.jpg", (255, 0, 0))
    return root


def test_load_joins_images_and_counts_repairs(tmp_path: Path) -> None:
    data = load_fashion(_folders(tmp_path))
    p = data.products
    assert list(p.columns) == list(COLUMNS)
    assert list(p["id"]) == [1, 2, 3]  # sorted by id
    assert p.loc[p.id == 3, "image"].item().endswith("3.jpg")
    assert p.loc[p.id == 2, "image"].item() is None
    assert data.n_with_image == 2
    assert p.loc[p.id == 1, "usage"].item() == UNKNOWN
    assert np.isnan(p.loc[p.id == 2, "year"].item())
    assert p.loc[p.id == 2, "name"].item() == ""
    counts = data.skips.counts
    assert counts["repaired:usage_missing"] == 1
    assert counts["repaired:baseColour_missing"] == 1
    assert counts["repaired:year_missing"] == 1
    assert counts["repaired:name_missing"] == 1


def test_bad_styles_rows_name_file_row_and_field(tmp_path: Path) -> None:
    bad = [list(r) for r in STYLES]
    bad[1][4] = " "  # empty articleType on row 2
    _folders(tmp_path, styles=bad)
    with pytest.raises(DataError, match=r"styles_merged.csv, row 2, field 'articleType'"):
        load_fashion(tmp_path)
    data = load_fashion(tmp_path, on_bad_row="skip", images=False)
    assert data.skips.counts["styles_bad_row:articleType"] == 1
    assert list(data.products["id"]) == [2, 3]


@pytest.mark.parametrize(("row", "value", "field"), [(0, "x7", "id"), (2, "3", "id"), (1, "20x1", "year")])
def test_bad_ids_and_years(tmp_path: Path, row: int, value: str, field: str) -> None:
    bad = [list(r) for r in STYLES]
    bad[row][STYLE_HEADER.index(field)] = value
    _folders(tmp_path, styles=bad)
    with pytest.raises(DataError, match=rf"row {row + 1}, field '{field}'"):
        load_fashion(tmp_path, images=False)


def test_manifest_disagreement_unknown_id_and_missing_file(tmp_path: Path) -> None:
    _folders(tmp_path, manifest=[["3", "images/3.jpg", "Apparel", "Bottomwear", "Tshirts"]])
    with pytest.raises(DataError, match=r"manifest.csv, row 1, field 'subCategory'"):
        load_fashion(tmp_path)
    _folders(tmp_path, manifest=[["3", "images/3.jpg", "Apparel", "Topwear", "Tshirts"],
                                 ["99", "images/99.jpg", "Apparel", "Topwear", "Tshirts"]])
    with pytest.raises(DataError, match=r"manifest.csv, row 2, field 'id'"):
        load_fashion(tmp_path)
    data = load_fashion(tmp_path, on_bad_row="skip")
    assert data.skips.counts["manifest_bad_row:id"] == 1
    _folders(tmp_path, manifest=[["2", "images/2.jpg", "Accessories", "Bags", "Backpacks"]])
    data = load_fashion(tmp_path)
    assert data.skips.counts["image_file_missing"] == 1
    assert data.n_with_image == 0


def test_missing_file_and_column(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"styles_merged\.csv"):
        load_fashion(tmp_path)
    _write(tmp_path / "fashion_product_hierarchy" / "styles_merged.csv", STYLE_HEADER[:-1], [r[:-1] for r in STYLES])
    with pytest.raises(DataError, match="field 'productDisplayName'"):
        load_fashion(tmp_path, images=False)


class _MeanColour(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x  # (B, 3, H, W): the pooled feature is the mean normalised colour


def test_image_features_cached_by_bytes_with_counted_fallbacks(tmp_path: Path) -> None:
    data = load_fashion(_folders(tmp_path / "data"))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg")
    paths = [*data.products["image"], str(corrupt), str(tmp_path / "absent.jpg")]
    encoder = FrozenImageEncoder(ImageBackbone(_MeanColour(), 3, "mean-colour"))
    cache = EmbeddingCache(tmp_path / "cache")
    feats, has = fashion_image_features(paths, cache, encoder)
    assert feats.shape == (5, 3)
    assert has.tolist() == [True, False, True, False, False]
    assert feats[0, 0] > feats[0, 2]  # id 1 is red
    assert feats[2, 2] > feats[2, 0]  # id 3 is blue
    assert not feats[1].any()
    skips = data.skips
    feats2, _ = fashion_image_features(paths, cache, encoder, skips=skips)
    assert skips.counts["image_unreadable"] == 2
    np.testing.assert_array_equal(feats, feats2)
    assert cache.stats.misses == 2  # each photo encoded once over both calls; the second read them back
    assert cache.stats.hits >= 2
