"""A tiny product index with generated photos, shared by the service, page and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.encoders.text import HashingTextEncoder
from polymodal.search.encoders import write_query_encoder
from polymodal.search.index import build_index
from polymodal.search.store import AnnConfig

DIM = 64
NAMES = [
    ("Turtle Check Men Navy Blue Shirt", "Men", "Shirts", "Navy Blue"),
    ("Peter England Men Party Blue Jeans", "Men", "Jeans", "Blue"),
    ("Nabaiji Women Cross-back Swimsuit", "Women", "Swimwear", "Black"),
    ("Domyos Unisex Feather-light Jacket", "Unisex", "Jackets", "White"),
    ("Quechua Men Sweat Proof Blue T-shirt", "Men", "Tshirts", "Blue"),
    ("Puma Women Red Running Shoes", "Women", "Sports Shoes", "Red"),
    ("Nike Men Black Running Shoes", "Men", "Sports Shoes", "Black"),
    ("Fossil Women Gold Watch", "Women", "Watches", "Gold"),
    ("Titan Men Silver Watch", "Men", "Watches", "Silver"),
    ("Wrangler Women Navy Blue Jeans", "Women", "Jeans", "Navy Blue"),
    ("Lee Men Navy Blue Casual Shirt", "Men", "Shirts", "Navy Blue"),
    ("Jealous 21 Women Red Top", "Women", "Tops", "Red"),
]
COLOURS = {"Navy Blue": (20, 30, 90), "Blue": (40, 90, 220), "Black": (10, 10, 10), "White": (245, 245, 245),
           "Red": (200, 30, 30), "Gold": (210, 170, 50), "Silver": (190, 190, 200)}


def make_catalog(folder: Path) -> pd.DataFrame:
    """Catalogue of 12 products; each photo is a plain square of the product's colour."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (name, gender, article, colour) in enumerate(NAMES):
        pid = str(100 + i)
        Image.new("RGB", (60, 80), COLOURS[colour]).save(folder / "images" / f"{pid}.jpg")
        rows.append({"id": pid, "name": name, "gender": gender, "articleType": article, "baseColour": colour,
                     "image": f"images/{pid}.jpg"})
    return pd.DataFrame(rows)


def build_test_index(folder: Path) -> Path:
    """Hashed product names as the product vectors, the same hashing as the query encoder."""
    cat = make_catalog(folder / "data")
    vecs = HashingTextEncoder(dim=DIM).encode(cat["name"].tolist())
    build_index(folder / "index", cat, vecs, filter_fields=["gender", "articleType", "baseColour"],
                ann=AnnConfig(kind="none"),
                write_query=lambda d: write_query_encoder(d, {"text": {"kind": "hashing", "dim": DIM}}),
                info={"image_root": str(folder / "data")})
    return folder / "index"


class ColourImageEncoder:
    """A fake query encoder whose photo vector is the hashed name of the nearest catalogue colour."""

    supports_image = True

    def __init__(self) -> None:
        self._text = HashingTextEncoder(dim=DIM)

    def encode_text(self, text: str) -> np.ndarray:
        return self._text.encode([text])[0]

    def encode_image(self, image: object) -> np.ndarray:
        rgb = np.asarray(image, dtype=float).reshape(-1, 3).mean(axis=0)
        colour = min(COLOURS, key=lambda c: float(np.sum((np.array(COLOURS[c]) - rgb) ** 2)))
        return self._text.encode([colour])[0]
