"""Generated fashion folders (both layouts) with a planted signal: the article type sets the photo colour."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

# (master, sub, article, colour of its photos); "Tshirts" also appears under "Belts" once (two parents).
TREE = [
    ("Apparel", "Topwear", "Tshirts", (200, 30, 30)),
    ("Apparel", "Topwear", "Shirts", (30, 200, 30)),
    ("Apparel", "Bottomwear", "Jeans", (30, 30, 200)),
    ("Footwear", "Shoes", "Heels", (200, 200, 30)),
    ("Footwear", "Shoes", "Sneakers", (30, 200, 200)),
    ("Accessories", "Belts", "Belts", (200, 30, 200)),
]
BRANDS = ["Nike", "Puma", "Roadster", "Catwalk", "Fastrack", "Wrogn"]
COLOURS = ["Blue", "Black", "Red", "White"]


def write_fashion(root: Path, n: int = 240, seed: int = 0, photo_share: float = 0.6) -> Path:
    """Write fashion_product_hierarchy/ and fashion_product_images/ under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    styles, manifest = [], []
    img_dir = root / "fashion_product_images" / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        m, s, a, rgb = TREE[i % len(TREE)]
        if i == 7:
            s = "Belts"  # a shirt filed under Belts: a second parent
            m = "Accessories"
        gender = ["Men", "Women"][int(rng.integers(2))]
        colour = COLOURS[int(rng.integers(len(COLOURS)))]
        name = f"{BRANDS[int(rng.integers(len(BRANDS)))]} {gender} {colour} {a}"
        pid = 1000 + i
        styles.append([pid, gender, m, s, a, colour, "Summer", 2012, "Casual", name])
        if rng.random() < photo_share:
            noise = rng.integers(-20, 20, size=(64, 48, 3))
            pixels = np.clip(np.array(rgb)[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(img_dir / f"{pid}.jpg")
            manifest.append([pid, f"images/{pid}.jpg", m, s, a])
    hier = root / "fashion_product_hierarchy"
    hier.mkdir(parents=True, exist_ok=True)
    with open(hier / "styles_merged.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year",
                    "usage", "productDisplayName"])
        w.writerows(styles)
    with open(root / "fashion_product_images" / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "image", "masterCategory", "subCategory", "articleType"])
        w.writerows(manifest)
    return root
