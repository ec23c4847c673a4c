"""Tiny synthetic Derm7pt+ and PH2 folders (same layout and columns as the real ones) for fast tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

DERM_COLUMNS = ["index", "diagnosis", "pigment_network", "streaks", "pigmentation", "regression_structures",
                "dots_and_globules", "blue_whitish_veil", "vascular_structures", "derm", "image_path", "melanoma"]
PH2_COLUMNS = ["image", "lesion_mask", "id", "clinical_diagnosis", "histological_diagnosis", "asymmetry",
               "pigment_network", "dots_globules", "streaks", "regression_areas", "blue_whitish_veil", "color_white",
               "color_red", "color_light_brown", "color_dark_brown", "color_blue_gray", "color_black"]


def lesion_image(rng: np.random.Generator, melanoma: bool, size: int = 48) -> Image.Image:
    """A skin-coloured square with a dark blob; melanomas get a bluish, larger, irregular blob."""
    img = np.zeros((size, size, 3), dtype=np.float32) + np.array([200, 160, 140])
    yy, xx = np.mgrid[:size, :size]
    radius = size * (0.32 if melanoma else 0.2)
    blob = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius ** 2
    img[blob] = [60, 60, 140] if melanoma else [110, 70, 50]
    img += rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def write_derm7pt(root: Path, n: int = 60, seed: int = 0) -> Path:
    """``root/derm7pt_plus`` with n images; concept values follow the diagnosis; both split kinds 50/25/25%."""
    rng = np.random.default_rng(seed)
    base = root / "derm7pt_plus"
    (base / "meta").mkdir(parents=True, exist_ok=True)
    (base / "splits").mkdir(parents=True, exist_ok=True)
    (base / "images" / "X").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        mel = i % 3 == 0
        lesion_image(rng, mel).save(base / "images" / "X" / f"x{i:03d}.jpg")
        rows.append({
            "index": i, "diagnosis": "melanoma (in situ)" if mel else "clark nevus",
            "pigment_network": "atypical" if mel else "typical", "streaks": "irregular" if mel else "absent",
            "pigmentation": "diffuse irregular" if mel else "absent",
            "regression_structures": "blue areas" if mel and i % 2 else "absent",
            "dots_and_globules": "irregular" if mel else "regular",
            "blue_whitish_veil": "present" if mel else "absent",
            "vascular_structures": "dotted" if mel and i % 2 else "absent",
            "derm": f"X/x{i:03d}.jpg", "image_path": f"images/X/x{i:03d}.jpg", "melanoma": int(mel),
        })
    with open(base / "meta" / "meta_resolved.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, DERM_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    parts = {"train": range(0, n // 2), "valid": range(n // 2, 3 * n // 4), "test": range(3 * n // 4, n)}
    for kind in ("symmetric", "asymmetric"):
        for part, idx in parts.items():
            (base / "splits" / f"{kind}_{part}_indexes_filtered.csv").write_text(
                "indexes\n" + "".join(f"{i}\n" for i in idx))
    return base


def write_ph2(root: Path, n: int = 20, seed: int = 1) -> Path:
    """``root/ph2`` with n images, masks and criteria."""
    rng = np.random.default_rng(seed)
    base = root / "ph2"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "lesion_masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        mel = i % 4 == 0
        name = f"IMD{i:03d}"
        lesion_image(rng, mel, size=64).save(base / "images" / f"{name}.jpg")
        yy, xx = np.mgrid[:64, :64]
        mask = ((yy - 32) ** 2 + (xx - 32) ** 2 < (64 * (0.32 if mel else 0.2)) ** 2)
        Image.fromarray(mask).save(base / "lesion_masks" / f"{name}_lesion.png")
        rows.append({
            "image": f"images/{name}.jpg", "lesion_mask": f"lesion_masks/{name}_lesion.png", "id": name,
            "clinical_diagnosis": "melanoma" if mel else ("atypical_nevus" if i % 2 else "common_nevus"),
            "histological_diagnosis": "", "asymmetry": 2 if mel else 0,
            "pigment_network": "atypical" if mel else "typical", "dots_globules": "atypical" if mel else "absent",
            "streaks": "present" if mel else "absent", "regression_areas": "absent",
            "blue_whitish_veil": "present" if mel else "absent", "color_white": 0, "color_red": 0,
            "color_light_brown": 1, "color_dark_brown": 1, "color_blue_gray": int(mel), "color_black": 0,
        })
    with open(base / "ph2_concepts.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, PH2_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return base
