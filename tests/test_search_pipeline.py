"""The product-search run folder end to end on a generated fashion catalogue (small encoders)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

pytest.importorskip("lancedb", reason="the `search` extra (lancedb) is not installed")

from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.image import FrozenImageEncoder, ImageBackbone
from polymodal.encoders.text import HashingTextEncoder
from polymodal.search.encoders import load_query_encoder
from polymodal.search.export import read_export
from polymodal.search.index import build_index
from polymodal.search.towers import TrainConfig

COLOURS = {"Red": (220, 30, 30), "Blue": (30, 60, 220), "Black": (15, 15, 15), "White": (240, 240, 240)}
TYPES = [("Apparel", "Topwear", "Shirts"), ("Apparel", "Bottomwear", "Jeans"), ("Footwear", "Shoes", "Casual Shoes")]


class _MeanColour(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def write_fashion(root: Path, n: int = 240) -> Path:
    rng = np.random.default_rng(0)
    styles, manifest = [], []
    for i in range(n):
        colour = list(COLOURS)[rng.integers(4)]
        master, sub, article = TYPES[rng.integers(3)]
        gender = ["Men", "Women"][rng.integers(2)]
        pid = 1000 + i
        styles.append([pid, gender, master, sub, article, colour, "Summer", "2012.0", "Casual",
                       f"Brand{i % 11} {gender} Style{i} {article}"])
        manifest.append([pid, f"images/{pid}.jpg", master, sub, article])
        path = root / "fashion_product_images" / "images" / f"{pid}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 40), COLOURS[colour]).save(path)
    for rel, header, rows in [
        ("fashion_product_hierarchy/styles_merged.csv", ["id", "gender", "masterCategory", "subCategory",
         "articleType", "baseColour", "season", "year", "usage", "productDisplayName"], styles),
        ("fashion_product_images/manifest.csv", ["id", "image", "masterCategory", "subCategory", "articleType"],
         manifest)]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(root / rel, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([header, *rows])
    return root


def test_run_folder_metrics_exports_and_index(tmp_path: Path) -> None:
    from polymodal.search.pipeline import run_product_search_folder

    torch.set_num_threads(1)
    data = write_fashion(tmp_path / "data")
    text = HashingTextEncoder(dim=64, analyzer="word", ngram_range=(1, 1))
    image = FrozenImageEncoder(ImageBackbone(_MeanColour(), 3, "mean-colour"))
    metrics = run_product_search_folder(
        data, tmp_path / "run", EmbeddingCache(tmp_path / "cache"), seeds=(0,), variants=("text", "mm4"),
        cfg=TrainConfig(dim=16, max_epochs=4, patience=2, batch_size=32), n_boot=50, text_encoder=text,
        image_encoder=image, query_spec={"kind": "hashing", "dim": 64})
    run = tmp_path / "run"
    assert {"text-tower", "mm-4tower", "tfidf-names", "random"} <= set(metrics["models"])
    assert set(metrics["models"]["mm-4tower"]["splits"]["test"]) == {"recall@10", "ndcg@10", "mrr"}
    pred = pd.read_csv(run / "predictions.csv")
    assert {"model", "kind", "seed", "split", "id", "recall@10", "ndcg@10", "mrr", "top10"} <= set(pred.columns)
    assert (run / "exclusive_matches.csv").exists()
    selected = json.loads((run / "search" / "selected.json").read_text())["tower"]
    assert selected in {"text-tower", "mm-4tower"}
    folder, meta, catalog, vectors = read_export(run)
    assert meta["tower"] == selected and len(catalog) == 240 and vectors.shape == (240, 16)
    # the export builds an index whose query encoder maps text into the tower's space
    version = build_index(tmp_path / "idx", catalog, vectors, filter_fields=meta["filter_fields"],
                          write_query=lambda d: __import__("shutil").copytree(folder / "query", d) and {})
    enc = load_query_encoder(version / "query")
    assert enc.encode_text("red shirt").shape == (16,)
