"""Query encoders stored in an index: hashing text, MiniLM with a projection, EfficientNet photo tower."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from polymodal.encoders.text import HashingTextEncoder
from polymodal.errors import DataError
from polymodal.search.encoders import load_query_encoder, write_query_encoder


def test_hashing_text_encoder_round_trip(tmp_path: Path) -> None:
    write_query_encoder(tmp_path / "q", {"text": {"kind": "hashing", "dim": 32}})
    enc = load_query_encoder(tmp_path / "q")
    v = enc.encode_text("navy blue shirt")
    assert v.shape == (32,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(v, HashingTextEncoder(dim=32).encode(["navy blue shirt"])[0], atol=1e-6)
    assert not enc.supports_image
    with pytest.raises(ValueError, match="no image query encoder"):
        enc.encode_image(Image.new("RGB", (32, 32)))


def test_unknown_kind_and_missing_spec_are_data_errors(tmp_path: Path) -> None:
    write_query_encoder(tmp_path / "q", {"text": {"kind": "bert-large"}})
    with pytest.raises(DataError, match="unknown text query encoder kind"):
        load_query_encoder(tmp_path / "q")
    with pytest.raises(DataError, match="no query encoder"):
        load_query_encoder(tmp_path / "absent")


def test_image_tower_standardises_projects_and_adds_bias(tmp_path: Path) -> None:
    import torch

    from polymodal.encoders.image import ImageTransform

    try:
        from polymodal.encoders.image import load_backbone

        backbone = load_backbone("efficientnet-lite0").eval()
    except Exception as err:  # the offline weights package is an optional extra
        pytest.skip(f"EfficientNet-Lite0 weights not available: {err}")
    rng = np.random.default_rng(0)
    proj, bias = rng.normal(size=(1280, 8)), rng.normal(size=8)
    mean, std = rng.normal(size=1280), rng.uniform(0.5, 2.0, size=1280)
    write_query_encoder(tmp_path / "q", {"text": {"kind": "hashing", "dim": 8},
                                         "image": {"kind": "efficientnet-lite0", "projection": "p.npy",
                                                   "bias": "b.npy", "mean": "m.npy", "std": "s.npy"}},
                        {"p.npy": proj, "b.npy": bias, "m.npy": mean, "s.npy": std})
    enc = load_query_encoder(tmp_path / "q")
    image = Image.new("RGB", (64, 80), (200, 30, 30))
    with torch.no_grad():
        feats = backbone(ImageTransform()(image)[None]).numpy()[0]
    expected = ((feats - mean) / std) @ proj + bias
    assert enc.supports_image
    assert np.allclose(enc.encode_image(image), expected / np.linalg.norm(expected), atol=1e-4)
