"""Query and product towers over frozen features, trained with NT-Xent on in-batch negatives.

Inputs are frozen features from the embedding cache: MiniLM sentence embeddings (384) of query texts
and product names, EfficientNet-Lite0 pooled features (1280) of product photos. Each tower is a
trained linear projection into a shared D-dimensional space (cosine similarity):

* query tower ``Q``: MiniLM(query) @ W_q (no bias, so serving is MiniLM then one matrix product);
* product towers, one per variant:

  - ``text``: T(name), a projection of MiniLM(name);
  - ``image``: I(photo), a projection of the standardised photo features;
  - ``mm3`` (3 towers: query, product text, product image): product = normalise(F [T(name); I(photo)]),
    F a trained fusion layer; loss NT-Xent(Q, product);
  - ``mm4`` (4 towers: the three plus a language-visual alignment of the product's own text and photo
    towers): the same product embedding, loss NT-Xent(Q, product) + NT-Xent(T(name), I(photo)).

This is our reading of arXiv 2501.07365 (3tMM / 4tMM) from its abstract and summaries: the paper's
towers are fine-tuned BERT / CLIP encoders, here they are frozen encoders with trained projections.

NT-Xent: symmetric cross-entropy over the (B, B) cosine-similarity matrix divided by a temperature,
the diagonal being the positives and every other row of the batch a negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VARIANTS: tuple[str, ...] = ("text", "image", "mm3", "mm4")


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over in-batch negatives; a, b (B, D) rows paired by index."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature  # (B, B)
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class Towers(nn.Module):
    """The query tower and one product-tower variant.

    Args:
        variant: one of :data:`VARIANTS`.
        text_dim: width of the frozen text features (384 for MiniLM).
        image_dim: width of the frozen photo features (1280 for EfficientNet-Lite0).
        dim: the shared space D.
        image_mean, image_std: (image_dim,) standardisation of the photo features (from train products).
    """

    def __init__(self, variant: str, text_dim: int, image_dim: int, dim: int = 128,
                 image_mean: np.ndarray | None = None, image_std: np.ndarray | None = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.query = nn.Linear(text_dim, dim, bias=False)
        self.text = nn.Linear(text_dim, dim) if variant != "image" else None
        self.image = nn.Linear(image_dim, dim) if variant != "text" else None
        self.fuse = nn.Linear(2 * dim, dim) if variant in ("mm3", "mm4") else None
        mean = torch.zeros(image_dim) if image_mean is None else torch.as_tensor(image_mean, dtype=torch.float32)
        std = torch.ones(image_dim) if image_std is None else torch.as_tensor(image_std, dtype=torch.float32)
        self.register_buffer("image_mean", mean)
        self.register_buffer("image_std", std)

    def encode_query(self, q: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) -> (B, D) unit vectors."""
        return F.normalize(self.query(q), dim=-1)

    def encode_text(self, name: torch.Tensor) -> torch.Tensor:
        assert self.text is not None
        return F.normalize(self.text(name), dim=-1)

    def encode_image(self, img: torch.Tensor) -> torch.Tensor:
        assert self.image is not None
        return F.normalize(self.image((img - self.image_mean) / self.image_std), dim=-1)

    def encode_product(self, name: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        """(B, text_dim), (B, image_dim) -> (B, D) unit product vectors."""
        if self.variant == "text":
            return self.encode_text(name)
        if self.variant == "image":
            return self.encode_image(img)
        assert self.fuse is not None
        return F.normalize(self.fuse(torch.cat([self.encode_text(name), self.encode_image(img)], dim=-1)), dim=-1)

    def loss(self, q: torch.Tensor, name: torch.Tensor, img: torch.Tensor, temperature: float) -> torch.Tensor:
        out = nt_xent(self.encode_query(q), self.encode_product(name, img), temperature)
        if self.variant == "mm4":
            out = out + nt_xent(self.encode_text(name), self.encode_image(img), temperature)
        return out


@dataclass(frozen=True)
class TrainConfig:
    dim: int = 128
    temperature: float = 0.05
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 4


def train_towers(variant: str, pairs_query: np.ndarray, pairs_product: np.ndarray, product_text: np.ndarray,
                 product_image: np.ndarray, valid_score: object, cfg: TrainConfig, seed: int,
                 attribute_pool: list[np.ndarray] | None = None) -> tuple[Towers, dict[str, object]]:
    """Train one variant with early stopping on a validation score.

    Args:
        pairs_query: (P, text_dim) query features of the training pairs.
        pairs_product: (P,) product row of each pair; -1 where ``attribute_pool[i]`` is sampled instead
            (an attribute query has many fully relevant products: one is drawn per epoch).
        product_text, product_image: (N, text_dim), (N, image_dim) train product features.
        valid_score: ``f(model) -> float``, higher is better (validation queries and products only).
        attribute_pool: per pair, the product rows to draw from when ``pairs_product`` is -1.

    Returns:
        (the model with its best validation weights, {"best_epoch", "valid_history"}).
    """
    from polymodal.training.best_weights import BestWeights

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_img = product_image
    model = Towers(variant, product_text.shape[1], product_image.shape[1], cfg.dim,
                   image_mean=train_img.mean(axis=0), image_std=train_img.std(axis=0) + 1e-6)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    q_all = torch.as_tensor(pairs_query, dtype=torch.float32)
    t_all = torch.as_tensor(product_text, dtype=torch.float32)
    i_all = torch.as_tensor(product_image, dtype=torch.float32)
    keeper = BestWeights(model, patience=cfg.patience, mode="max")
    for epoch in range(cfg.max_epochs):
        targets = pairs_product.copy()
        if attribute_pool is not None:
            for j in np.flatnonzero(targets < 0):
                targets[j] = rng.choice(attribute_pool[j])
        order = rng.permutation(len(targets))
        model.train()
        for start in range(0, len(order), cfg.batch_size):
            b = order[start : start + cfg.batch_size]
            if len(b) < 2:
                continue
            prod = torch.as_tensor(targets[b])
            loss = model.loss(q_all[b], t_all[prod], i_all[prod], cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            score = float(valid_score(model))  # type: ignore[operator]
        if keeper.update(score, epoch):
            break
    keeper.restore()
    model.eval()
    return model, {"best_epoch": keeper.best_epoch, "valid_history": keeper.history}


@torch.no_grad()
def product_vectors(model: Towers, text: np.ndarray, image: np.ndarray) -> np.ndarray:
    """(N, D) unit product vectors."""
    return model.encode_product(torch.as_tensor(text, dtype=torch.float32),
                                torch.as_tensor(image, dtype=torch.float32)).numpy()


@torch.no_grad()
def query_vectors(model: Towers, queries: np.ndarray) -> np.ndarray:
    """(Q, D) unit query vectors."""
    return model.encode_query(torch.as_tensor(queries, dtype=torch.float32)).numpy()
