"""Query encoders stored inside an index: text (and optionally a photo) -> one vector in the product space.

A query encoder is described by ``query/encoder.json`` in the index version plus optional
projection matrices (``.npy``) beside it, so serving needs no training code:

* ``{"text": {"kind": "hashing", "dim": D}}``: hashed character n-grams (tests, a model-free fallback);
* ``{"text": {"kind": "minilm", "model_id": ..., "projection": "text_proj.npy"}}``: frozen MiniLM
  sentence embedding (384), times a trained (384, D) projection when given;
* ``"image"`` (optional): ``{"kind": "efficientnet-lite0", "projection": "image_proj.npy", "mean": ...,
  "std": ..., "bias": ...}``: frozen EfficientNet-Lite0 pooled features (1280), standardised with
  ``mean``/``std`` (1280,) when given, times a (1280, D) projection, plus a (D,) ``bias`` when given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import DataError
from polymodal.io import write_json
from polymodal.search.store import normalise_rows

SPEC = "encoder.json"


class QueryEncoder:
    """Encodes a query text (and a photo when the index has an image tower) into the product space."""

    def __init__(self, spec: Mapping[str, Any], folder: Path | None = None) -> None:
        self.spec = dict(spec)
        self.folder = folder
        self._text = _load_text(self.spec["text"], folder)
        self._image = _load_image(self.spec["image"], folder) if self.spec.get("image") else None

    @property
    def supports_image(self) -> bool:
        return self._image is not None

    def encode_text(self, text: str) -> np.ndarray:
        """(D,) unit vector for one query text."""
        return normalise_rows(self._text([text]))[0]

    def encode_image(self, image: Any) -> np.ndarray:
        """(D,) unit vector for one RGB ``PIL.Image``; ValueError when the index has no image tower."""
        if self._image is None:
            raise ValueError("this index has no image query encoder; search by text")
        return normalise_rows(self._image([image]))[0]


def write_query_encoder(folder: Path, spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None
                        ) -> dict[str, Any]:
    """Write ``spec`` and its projection arrays (file name -> array) into ``folder``; returns the spec."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in (arrays or {}).items():
        np.save(folder / name, np.asarray(arr, dtype=np.float32))
    write_json(folder / SPEC, dict(spec))
    return dict(spec)


def load_query_encoder(folder: Path) -> QueryEncoder:
    try:
        spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DataError(f"{folder / SPEC}: the index has no query encoder") from err
    return QueryEncoder(spec, folder)


def _projection(spec: Mapping[str, Any], folder: Path | None, key: str = "projection") -> np.ndarray | None:
    name = spec.get(key)
    if not name:
        return None
    if folder is None:
        raise DataError("a projection file needs the encoder folder")
    return np.load(folder / name)


def _load_text(spec: Mapping[str, Any], folder: Path | None) -> Any:
    kind = spec.get("kind")
    if kind == "hashing":
        from polymodal.encoders.text import HashingTextEncoder

        enc: Any = HashingTextEncoder(dim=int(spec["dim"]))
    elif kind == "minilm":
        from polymodal.encoders.text import MINILM_ID, SentenceTextEncoder

        enc = SentenceTextEncoder(spec.get("model_id", MINILM_ID))
    else:
        raise DataError(f"unknown text query encoder kind {kind!r}", field="text.kind")
    proj = _projection(spec, folder)
    if proj is None:
        return enc.encode
    return lambda texts: normalise_rows(enc.encode(texts)) @ proj


def _load_image(spec: Mapping[str, Any], folder: Path | None) -> Any:
    kind = spec.get("kind")
    if kind != "efficientnet-lite0":
        raise DataError(f"unknown image query encoder kind {kind!r}", field="image.kind")
    import torch

    from polymodal.encoders.image import ImageTransform, load_backbone

    backbone = load_backbone(kind).eval()
    transform = ImageTransform()
    proj = _projection(spec, folder)
    mean, std, bias = (_projection(spec, folder, k) for k in ("mean", "std", "bias"))

    @torch.no_grad()
    def encode(images: list[Any]) -> np.ndarray:
        x = torch.stack([transform(im) for im in images])  # (n, 3, 224, 224)
        feats = backbone(x).float().numpy()  # (n, 1280)
        if proj is None:
            return feats
        if mean is not None and std is not None:
            feats = (feats - mean) / std
        out = feats @ proj
        return out + bias if bias is not None else out

    return encode
