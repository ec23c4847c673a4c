"""Image-text objectives: symmetric InfoNCE with shared captions, and text-prompt matching losses.

Captions built from concept annotations repeat (many lesions share one combination), so the plain
InfoNCE of :func:`polymodal.objectives.contrastive.info_nce` would push apart an image and a
caption that is in fact its own. :func:`clip_loss` uses soft targets instead: every caption equal to
an image's own caption is a positive, with the probability mass shared among them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor | float,
              caption_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric image-text InfoNCE (CLIP) with duplicate-caption-aware targets.

    Args:
        image: (B, D) image embeddings (normalised here).
        text: (B, D) text embeddings of each image's caption (normalised here).
        scale: the logit scale (inverse temperature), a scalar.
        caption_ids: (B,) int ids; equal ids mark identical captions. ``None``: all distinct,
            which is exactly CLIP's loss.

    Returns:
        Scalar: mean of the image->text and text->image cross-entropies.
    """
    image = F.normalize(image, dim=-1)
    text = F.normalize(text, dim=-1)
    logits = scale * image @ text.T  # (B, B)
    if caption_ids is None:
        target = torch.eye(len(image), device=image.device)
    else:
        target = (caption_ids[:, None] == caption_ids[None, :]).float()  # (B, B), symmetric
    target = target / target.sum(dim=1, keepdim=True)
    loss_i = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_i + loss_t)


def prompt_pair_logits(image: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                       scale: torch.Tensor | float) -> torch.Tensor:
    """Logit of "positive prompt rather than negative prompt" per image and prompt pair.

    This is two-way description matching: ``softmax([s_pos, s_neg])[0] = sigmoid(s_pos - s_neg)``.

    Args:
        image: (B, D) image embeddings.
        positive: (K, D) embeddings of the positive prompts.
        negative: (K, D) embeddings of the negative prompts.
        scale: the logit scale.

    Returns:
        (B, K) logits.
    """
    image = F.normalize(image, dim=-1)
    pos = F.normalize(positive, dim=-1)
    neg = F.normalize(negative, dim=-1)
    return scale * (image @ pos.T - image @ neg.T)  # (B, K)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over entries whose label is not NaN (an unannotated concept).

    Args:
        logits: (B, K).
        labels: (B, K) in {0, 1} or NaN.
    """
    known = ~torch.isnan(labels)
    if not bool(known.any()):
        return logits.new_zeros(())
    return F.binary_cross_entropy_with_logits(logits[known], labels[known])
