"""Why does the linear probe on frozen EfficientNet-Lite0 features score PH2 lower than issue #6 says?

    python benchmarks/medgrad_probe_preprocessing.py --data-dir ../shared/data [--cache-dir DIR]

Issue #6 reports a validation-selected logistic-regression probe on frozen EfficientNet-Lite0
features (224 px) at melanoma ROC-AUC 0.784 / 0.786 on the Derm7pt+ symmetric / asymmetric test
sets and 0.80-0.84 on PH2 as an external test. This script varies one preprocessing or probe choice
at a time and reports, for each, the Derm7pt validation ROC-AUC (the only number a choice may be made
on), the Derm7pt test ROC-AUC and the PH2 external ROC-AUC (both reported, never used to choose).

Variants (Derm7pt+ images are 384x384 squares, PH2 images 765x575):

* ``squash``: the whole image resized to 224x224 (the recipe's transform before this study);
* ``centre-crop``: shorter side to 224, centred square (aspect ratio kept);
* ``crop-0.875``: shorter side to 256, centred 224 square (the torchvision/timm eval default);
* ``tf-norm``: ``squash`` with inputs scaled to [-1, 1] (the TF-Lite EfficientNet convention)
  instead of the ImageNet mean/std;
* ``shades-of-grey``: ``centre-crop`` after Shades-of-Grey colour constancy (Minkowski p = 6,
  Finlayson & Trezzi 2004), the usual dermoscopy colour normalisation across devices;
* probe variants on ``centre-crop`` features: a wider C grid, balanced class weights.

Writes benchmarks/results/medgrad_probe_preprocessing.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.baselines import EmbeddingLogisticBaseline  # noqa: E402
from polymodal.data.paths import resolve_cache_dir, resolve_data_dir  # noqa: E402
from polymodal.data.sources.derm7pt import load_derm7pt  # noqa: E402
from polymodal.data.sources.ph2 import load_ph2  # noqa: E402
from polymodal.encoders.cache import EmbeddingCache  # noqa: E402
from polymodal.encoders.image import (  # noqa: E402
    FrozenImageEncoder,
    ImageTransform,
    encode_image_files,
    load_backbone,
    open_image,
)
from polymodal.evaluation import BINARY_METRICS, bootstrap_ci  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class ShadesOfGrey:
    """Shades-of-Grey colour constancy (p-norm illuminant estimate, von Kries scaling), then ``inner``."""

    inner: ImageTransform
    p: float = 6.0

    def balance(self, image: Any) -> Any:
        from PIL import Image

        rgb = np.asarray(image, dtype=np.float64) / 255.0  # (H, W, 3)
        illuminant = np.power(np.mean(np.power(rgb, self.p), axis=(0, 1)), 1.0 / self.p)  # (3,)
        illuminant = illuminant / np.linalg.norm(illuminant)
        scaled = np.clip(rgb / (illuminant * np.sqrt(3.0)), 0.0, 1.0)
        return Image.fromarray((scaled * 255).round().astype(np.uint8))

    def __call__(self, image: Any) -> Any:
        return self.inner(self.balance(image))

    def key(self) -> str:
        return f"{self.inner.key()}:shades-of-grey-p{self.p:g}"


@dataclass(frozen=True)
class Crop0875:
    """Shorter side to size / 0.875, centred ``size`` square (the torchvision/timm eval default)."""

    size: int = 224

    def __call__(self, image: Any) -> Any:
        big = ImageTransform(size=round(self.size / 0.875), resize="centre-crop")(image)  # (3, 256, 256)
        off = (big.shape[-1] - self.size) // 2
        return big[:, off : off + self.size, off : off + self.size]

    def key(self) -> str:
        return f"{self.size}px:crop0.875:imagenet"


TRANSFORMS: dict[str, Any] = {
    "squash": ImageTransform(),
    "centre-crop": ImageTransform(resize="centre-crop"),
    "crop-0.875": Crop0875(),
    "tf-norm": ImageTransform(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    "shades-of-grey": ShadesOfGrey(ImageTransform(resize="centre-crop")),
}
WIDE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _cell(y: np.ndarray, s: np.ndarray, n_boot: int) -> dict[str, float]:
    low, high = bootstrap_ci(BINARY_METRICS["roc_auc"], y, [s], n_boot=n_boot)
    return {"roc_auc": float(BINARY_METRICS["roc_auc"](y, s)), "ci_low": low, "ci_high": high}


def _mask_pixels_kept(ph2: list) -> dict[str, float]:
    """Share of lesion-mask pixels inside the centred square of each PH2 image (at full resolution)."""
    shares, inside = [], 0
    for r in ph2:
        m = np.asarray(open_image(r.inputs["mask"], allow_grayscale=True).convert("L")) > 127  # (H, W)
        h, w = m.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        kept = m[top : top + side, left : left + side].sum() / max(m.sum(), 1)
        shares.append(kept)
        inside += kept >= 0.999
    return {"mean_share_kept": float(np.mean(shares)), "min_share_kept": float(np.min(shares)),
            "images_fully_inside": int(inside), "images": len(ph2)}


def domain_gap(derm: np.ndarray, ph2: np.ndarray) -> float:
    """5-fold cross-validated ROC-AUC of a logistic regression telling Derm7pt+ from PH2 images.

    Uses no diagnosis label at all, so it may guide a preprocessing choice: the closer to 0.5, the
    less the features separate the two datasets (0.5: indistinguishable).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([derm, ph2])
    y = np.r_[np.zeros(len(derm)), np.ones(len(ph2))]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    p = cross_val_predict(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")
    return float(BINARY_METRICS["roc_auc"](y, p[:, 1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # shared 2-core machine (project rule)
    start = time.perf_counter()
    data = resolve_data_dir(args.data_dir)
    splits = {k: load_derm7pt(data, k) for k in ("symmetric", "asymmetric")}
    ph2, _ = load_ph2(data)
    cache = EmbeddingCache(resolve_cache_dir(args.cache_dir) / "embeddings")
    records = {r.id: r for s in splits.values() for _, part in s.items() for r in part}
    records.update({r.id: r for r in ph2})
    ids = sorted(records)
    backbone = load_backbone("efficientnet-lite0")
    features: dict[str, dict[str, np.ndarray]] = {}
    encode_seconds: dict[str, float] = {}
    for name, transform in TRANSFORMS.items():
        t = time.perf_counter()
        enc = FrozenImageEncoder(backbone, transform)  # type: ignore[arg-type]
        vec = encode_image_files(cache, enc, [records[i].inputs["image"] for i in ids])
        features[name] = dict(zip(ids, vec, strict=True))
        encode_seconds[name] = time.perf_counter() - t

    y_ph2 = np.array([r.target for r in ph2])
    rows: list[dict[str, Any]] = []
    probes = [(name, name, {}) for name in TRANSFORMS]
    probes += [("centre-crop, wide C grid", "centre-crop", {"C_grid": WIDE_GRID}),
               ("centre-crop, balanced classes", "centre-crop", {"class_weight": "balanced"}),
               ("squash, wide C grid", "squash", {"C_grid": WIDE_GRID})]
    for label, feat_name, kwargs in probes:
        f = features[feat_name]
        row: dict[str, Any] = {"variant": label}
        for kind, s in splits.items():
            x = {p: np.stack([f[r.id] for r in recs]) for p, recs in s.items()}
            y = {p: np.array([r.target for r in recs]) for p, recs in s.items()}
            probe = EmbeddingLogisticBaseline(**kwargs).fit(x["train"], y["train"], x["valid"], y["valid"])
            row[kind] = {
                "C": probe.best_C_,
                "valid": float(probe.validation_roc_auc_[probe.best_C_]),
                "test": _cell(y["test"], probe.predict_proba(x["test"])[:, 1], args.n_boot),
                "ph2": _cell(y_ph2, probe.predict_proba(np.stack([f[r.id] for r in ph2]))[:, 1], args.n_boot),
            }
        rows.append(row)

    derm_ids = [i for i in ids if not i.startswith("ph2:")]
    gaps = {name: domain_gap(np.stack([f[i] for i in derm_ids]), np.stack([f[r.id] for r in ph2]))
            for name, f in features.items()}
    mask_kept = _mask_pixels_kept(ph2)
    total = time.perf_counter() - start
    env = environment()
    write_json(RESULTS / "medgrad_probe_preprocessing.json", {
        "command": "python benchmarks/medgrad_probe_preprocessing.py", "rows": rows, "domain_gap_roc_auc": gaps,
        "ph2_mask_kept": mask_kept,
        "encode_seconds": encode_seconds, "total_seconds": total, "environment": env})

    def fmt(c: dict[str, float]) -> str:
        return f"{c['roc_auc']:.3f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}]"

    lines = ["# Linear-probe preprocessing study (medgrad-eclip, issue #6 gap 1)", "",
             "Command: `python benchmarks/medgrad_probe_preprocessing.py`. Validation-selected logistic regression "
             "(standardised 1280-d EfficientNet-Lite0 average-pooled features, C on Derm7pt validation ROC-AUC). "
             "Melanoma ROC-AUC [95% bootstrap CI]. Only the `valid` column may drive a choice; `test` and `PH2` are "
             "reported, never used to choose.", "",
             "| variant | sym C | sym valid | sym test | sym → PH2 | asym C | asym valid | asym test | asym → PH2 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s, a = row["symmetric"], row["asymmetric"]
        lines.append(f"| {row['variant']} | {s['C']:g} | {s['valid']:.3f} | {fmt(s['test'])} | {fmt(s['ph2'])} | "
                     f"{a['C']:g} | {a['valid']:.3f} | {fmt(a['test'])} | {fmt(a['ph2'])} |")
    lines += ["", "Label-free domain gap (5-fold CV ROC-AUC of a logistic regression telling Derm7pt+ images from PH2 "
              "images; no diagnosis used; lower = the two datasets look more alike to the features): "
              + ", ".join(f"{k} {v:.3f}" for k, v in gaps.items()) + "."]
    lines += ["", f"PH2 lesion masks inside the centred square of their 765x575 image: mean share of mask pixels "
              f"kept {mask_kept['mean_share_kept']:.3f}, minimum {mask_kept['min_share_kept']:.3f}, "
              f"{mask_kept['images_fully_inside']} of {mask_kept['images']} masks entirely inside.", "",
              "Encoding seconds per variant (0 when the feature cache was warm): "
              + ", ".join(f"{k} {v:.0f}" for k, v in encode_seconds.items()) + f". Total {total:.0f} s.", "",
              "## Environment", "", *[f"- {k}: {v}" for k, v in env.items()], ""]
    write_text(RESULTS / "medgrad_probe_preprocessing.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
