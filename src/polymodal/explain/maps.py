"""Heat maps of an image-text similarity: plain gradients, Grad-CAM, E-CLIP-style and MedGrad E-CLIP.

All methods explain ``s = cos(image embedding, text embedding)`` of an :class:`ImageTextScorer`
(frozen backbone + trained LiT projection + fixed text features) and return (B, S, S) maps in
[0, 1] at the input resolution.

* ``gradient``: |ds/dx| (max over colour channels), Simonyan et al. 2014.
* ``gradcam``: ReLU(sum_c mean_hw(ds/dA_c) A_c) on the last feature map A, via the
  ``pytorch-grad-cam`` library (``pip install polymodal[gradcam]`` plus a torchvision built for the
  installed torch) when it is usable, else the same formula here (:func:`gradcam_backend` says which).
* ``eclip``: Grad-ECLIP adapted to a pooled CNN: channel weights w_c = ds/d(pooled feature)_c and
  a spatial importance lambda(h, w) = ReLU(cos(projected local feature A(:, h, w), text)) taking the
  place of the attention-pool relevance a ViT/attention-pool CLIP has:
  ReLU(sum_c w_c A_c(h, w)) * lambda(h, w).
* ``medgrad``: MedGrad E-CLIP's entropy weighting on top: each channel's spatial distribution
  p_c = ReLU(A_c) / sum ReLU(A_c) gets the weight e_c = 1 - H(p_c) / log(hw), so focused (low
  entropy) channels count more than ones spread over the whole image:
  ReLU(sum_c e_c w_c A_c(h, w)) * lambda(h, w).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polymodal.encoders.image import ImageBackbone
from polymodal.encoders.image_text import ImageTextProjector

METHODS = ("gradient", "gradcam", "eclip", "medgrad")


class ImageTextScorer(nn.Module):
    """Pixels -> (B, T) cosine similarities with T fixed texts; differentiable end to end.

    Args:
        backbone: the frozen image backbone.
        projector: the trained LiT heads.
        text_features: (T, Dt) frozen text features of the prompts to explain.
    """

    def __init__(self, backbone: ImageBackbone, projector: ImageTextProjector, text_features: torch.Tensor) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector.eval()
        self.register_buffer("text", projector.embed_text(text_features.float()).detach())  # (T, d)

    def from_feature_map(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, T)."""
        return self.projector.embed_image(self.backbone.pool(fmap)) @ self.text.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, T)."""
        return self.from_feature_map(self.backbone.feature_map(x))

    def local_similarity(self, fmap: torch.Tensor, target: int) -> torch.Tensor:
        """(B, C, h, w) -> (B, h, w): cosine of each location's projected feature with text ``target``."""
        local = self.projector.embed_image(fmap.permute(0, 2, 3, 1))  # (B, h, w, d)
        return local @ self.text[target]


def _normalise(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(B, h, w) >= 0 -> (B, size, size) in [0, 1] (bilinear upsampling, min-max per map)."""
    up = F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    low = up.flatten(1).min(1).values.view(-1, 1, 1)
    high = up.flatten(1).max(1).values.view(-1, 1, 1)
    return ((up - low) / (high - low).clamp_min(1e-12)).detach()


def _fmap_grads(scorer: ImageTextScorer, x: torch.Tensor,
                target: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        fmap = scorer.backbone.feature_map(x)  # (B, C, h, w)
    fmap = fmap.detach().requires_grad_(True)
    pooled = scorer.backbone.pool(fmap)  # (B, C)
    pooled.retain_grad()
    s = (scorer.projector.embed_image(pooled) @ scorer.text[target]).sum()
    s.backward()
    return fmap.detach(), fmap.grad.detach(), pooled.grad.detach()  # type: ignore[union-attr]


def gradient_map(scorer: ImageTextScorer, x: torch.Tensor, target: int) -> torch.Tensor:
    """Plain input gradients: (B, 3, S, S) -> (B, S, S)."""
    x = x.detach().clone().requires_grad_(True)
    scorer(x)[:, target].sum().backward()
    saliency = x.grad.abs().amax(dim=1)  # type: ignore[union-attr]  # (B, S, S)
    return _normalise(saliency, x.shape[-1])


_GRADCAM_LIBRARY: tuple[Any, Any] | str | None = None  # (GradCAM, ClassifierOutputTarget) or why it failed


def gradcam_library() -> tuple[Any, Any] | str:
    """pytorch-grad-cam's ``(GradCAM, ClassifierOutputTarget)``, or the reason it cannot be used.

    The library imports torchvision. On a CPU-only torch the PyPI torchvision wheel is the CUDA
    build: its ``_C.so`` links ``libtorch_cuda.so`` and importing it raises ``RuntimeError:
    operator torchvision::nms does not exist``, not ``ImportError``, so every error is caught here
    (once) and the same formula runs in :func:`gradcam_map` instead.
    """
    global _GRADCAM_LIBRARY
    if _GRADCAM_LIBRARY is None:
        try:
            from pytorch_grad_cam import GradCAM
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            _GRADCAM_LIBRARY = (GradCAM, ClassifierOutputTarget)
        except Exception as err:  # ImportError, or torchvision's RuntimeError/OSError
            _GRADCAM_LIBRARY = f"{type(err).__name__}: {err}".splitlines()[0]
    return _GRADCAM_LIBRARY


def gradcam_backend() -> str:
    """Which Grad-CAM implementation :func:`gradcam_map` uses here (for run reports)."""
    lib = gradcam_library()
    return "pytorch-grad-cam" if isinstance(lib, tuple) else f"polymodal (pytorch-grad-cam unusable: {lib})"


def gradcam_map(scorer: ImageTextScorer, x: torch.Tensor, target: int, *, use_library: bool = True) -> torch.Tensor:
    """Grad-CAM on the backbone's target layer: (B, 3, S, S) -> (B, S, S).

    ``use_library``: pytorch-grad-cam's ``GradCAM`` when it is usable (see :func:`gradcam_library`),
    else the same formula here; ``False`` always uses the formula here.
    """
    lib = gradcam_library() if use_library else None
    if isinstance(lib, tuple):
        grad_cam, classifier_target = lib
        with grad_cam(model=scorer, target_layers=[scorer.backbone.target_layer]) as cam:
            # The backbone is frozen: the input must require grad or the target layer gets none.
            inputs = x.detach().clone().requires_grad_(True)
            maps = cam(input_tensor=inputs, targets=[classifier_target(target)] * len(x))  # (B, S, S) numpy
        return torch.as_tensor(maps, dtype=torch.float32)
    fmap, grad, _ = _fmap_grads(scorer, x, target)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    return _normalise(F.relu((weights * fmap).sum(dim=1)), x.shape[-1])


def channel_entropy_weights(fmap: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C) in [0, 1]: 1 - normalised spatial entropy of each ReLU'd channel (0 if empty)."""
    act = F.relu(fmap).flatten(2)  # (B, C, hw)
    total = act.sum(dim=2, keepdim=True)
    p = act / total.clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(dim=2) / math.log(max(act.shape[2], 2))  # (B, C)
    return torch.where(total[..., 0] > 0, 1.0 - entropy, torch.zeros_like(entropy))


def eclip_map(scorer: ImageTextScorer, x: torch.Tensor, target: int, *, entropy: bool = False) -> torch.Tensor:
    """E-CLIP-style map, or MedGrad E-CLIP's with ``entropy=True``: (B, 3, S, S) -> (B, S, S)."""
    fmap, _, pooled_grad = _fmap_grads(scorer, x, target)
    weights = pooled_grad  # (B, C)
    if entropy:
        weights = weights * channel_entropy_weights(fmap)
    with torch.no_grad():
        spatial = F.relu(scorer.local_similarity(fmap, target))  # (B, h, w)
    raw = F.relu((weights[:, :, None, None] * fmap).sum(dim=1)) * spatial  # (B, h, w)
    return _normalise(raw, x.shape[-1])


def medgrad_map(scorer: ImageTextScorer, x: torch.Tensor, target: int) -> torch.Tensor:
    return eclip_map(scorer, x, target, entropy=True)


EXPLAINERS: dict[str, Callable[[ImageTextScorer, torch.Tensor, int], torch.Tensor]] = {
    "gradient": gradient_map,
    "gradcam": gradcam_map,
    "eclip": eclip_map,
    "medgrad": medgrad_map,
}


def explain(scorer: ImageTextScorer, x: torch.Tensor, target: int, method: str) -> torch.Tensor:
    """One heat map per image for text ``target`` with ``method`` (one of :data:`METHODS`)."""
    if method not in EXPLAINERS:
        raise ValueError(f"unknown explanation method {method!r}; known: {', '.join(METHODS)}")
    return EXPLAINERS[method](scorer, x, target)
