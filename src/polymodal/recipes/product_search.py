"""product-search: multimodal semantic retrieval over fashion photos and names.

Paper: Dong Liu, Esther Lopez Ramos, "Multimodal semantic retrieval for product search", WWW 2025
companion, arXiv 2501.07365: product towers that combine image and text (3-tower and 4-tower
variants, NT-Xent with in-batch negatives) against a query tower; multimodal product embeddings
improve purchase recall or relevance over text-only ones, and the paper analyses the matches only the
multimodal model finds.

Here (see :mod:`polymodal.search`): the fashion catalogue (11,882 products with a photo), queries
generated from attribute combinations and held-out name words with graded relevance (no query
logs), frozen MiniLM / EfficientNet-Lite0 features with trained projections, each tower its own model
row (text-tower, image-tower, mm-3tower, mm-4tower), baselines TF-IDF over names, zero-shot MiniLM,
popular-type and random, and name-to-photo / photo-to-name retrieval. Each tower's seed-0 model is
exported under its job folder for ``polymodal index build RUN --out INDEX``.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from polymodal.config import TrainConfig
from polymodal.recipes.registry import REGISTRY, Paper, Recipe
from polymodal.runs.problem import Job, JobContext, JobResult, Problem
from polymodal.search.towers import VARIANTS
from polymodal.search.towers import TrainConfig as TowerConfig
from polymodal.tasks.retrieval import RetrievalTask


class ProductSearchConfig(BaseModel):
    """Defaults of the product-search recipe; unknown keys are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeds: int = Field(3, ge=1, description="training seeds per tower")
    variants: tuple[str, ...] = Field(VARIANTS, description="tower variants: text, image, mm3, mm4")
    dim: int = Field(128, ge=2, description="shared embedding width")
    temperature: float = Field(0.05, gt=0, description="NT-Xent temperature")
    query_seed: int = Field(0, description="seed of the name-query word draws")
    limit: int | None = Field(None, ge=10, description="only the first N products with a photo (smoke runs)")
    n_boot: int = Field(1000, ge=10, description="bootstrap resamples over queries")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_epochs=20, patience=3, batch_size=256,
                                                                   lr=2e-3, weight_decay=1e-4, threads=1))


DEVIATIONS = (
    "frozen all-MiniLM-L6-v2 (queries, names) and EfficientNet-Lite0 (photos) with trained linear projections "
    "instead of fine-tuned BiBERT / CLIP towers",
    "no query logs or purchases: queries are generated from attribute combinations and held-out name words, "
    "relevance is graded from catalogue labels; 'popularity' is the train frequency of the product type",
    "3-tower = query, product-text and product-image towers with a fused product vector (NT-Xent query-product); "
    "4-tower adds an NT-Xent alignment of each product's text and image towers; our reading of the paper's "
    "description, not its code",
    "recall@10 is capped (hits / min(10, fully relevant)), since an attribute query matches many products",
)


def frozen_encoders() -> tuple[Any, Any]:
    """(text, image) frozen encoders: MiniLM and EfficientNet-Lite0 (tests replace this function)."""
    from polymodal.encoders.image import FrozenImageEncoder
    from polymodal.encoders.text import SentenceTextEncoder

    return SentenceTextEncoder(), FrozenImageEncoder("efficientnet-lite0")


@lru_cache(maxsize=2)
def _prepared(data_dir: str, cache_dir: str, limit: int | None, query_seed: int) -> Any:
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.search.experiment import prepare
    from polymodal.search.pipeline import load_catalogue

    cache = EmbeddingCache(Path(cache_dir) / "embeddings")
    text, image = frozen_encoders()
    products, names, feats, info = load_catalogue(data_dir, cache, limit, text_encoder=text, image_encoder=image)
    prep = prepare(products, names, feats, lambda texts: cache.encode(text, list(texts)), query_seed)
    return prep, info


def _tower_job(data_dir: str, cache_dir: str, cfg: ProductSearchConfig, variant: str, ctx: JobContext) -> JobResult:
    import time

    import torch

    from polymodal.search.experiment import tower_rows
    from polymodal.search.pipeline import write_tower_exports

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    t0 = time.perf_counter()
    prep, _ = _prepared(data_dir, cache_dir, cfg.limit, cfg.query_seed)
    tcfg = TowerConfig(dim=cfg.dim, temperature=cfg.temperature, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                       batch_size=cfg.train.batch_size, max_epochs=cfg.train.max_epochs, patience=cfg.train.patience)
    rows, model, hist = tower_rows(prep, variant, ctx.seed, tcfg)
    if ctx.seed == 0:
        from polymodal.search.experiment import SearchResult

        result = SearchResult(rows, {(variant, 0): model})
        image_root = Path(data_dir).resolve() / "fashion_product_images"
        text, _ = frozen_encoders()
        spec = ({"kind": "hashing", "dim": text.dim} if type(text).__name__ == "HashingTextEncoder"
                else {"kind": "minilm", "model_id": text.model_id})
        write_tower_exports(ctx.dir, result, prep.products, prep.name_emb, prep.image_feat, image_root,
                            query_spec=spec)
    return JobResult(rows, info={**hist, "seconds": round(time.perf_counter() - t0, 2)})


def _baselines_job(data_dir: str, cache_dir: str, cfg: ProductSearchConfig, ctx: JobContext) -> JobResult:
    from polymodal.search.experiment import baseline_rows

    prep, _ = _prepared(data_dir, cache_dir, cfg.limit, cfg.query_seed)
    return JobResult(baseline_rows(prep, list(range(cfg.seeds))))


def build(cfg: ProductSearchConfig, *, data_dir: str | Path | None, cache_dir: str | Path | None = None) -> Problem:
    """Load the catalogue and features, generate the queries, and hand the runner one job per tower and seed."""
    import pandas as pd

    from polymodal.data.paths import resolve_cache_dir, resolve_data_dir
    from polymodal.search.experiment import COMPARISONS, HEADLINE, TOWER_NAMES
    from polymodal.search.queries import product_split

    for v in cfg.variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown tower variant {v!r}; use {', '.join(VARIANTS)}")
    root, cache = str(resolve_data_dir(data_dir)), str(resolve_cache_dir(cache_dir))
    prep, info = _prepared(root, cache, cfg.limit, cfg.query_seed)
    jobs = [Job(f"{TOWER_NAMES[v]}/seed_{s}", partial(_tower_job, root, cache, cfg, v), seed=s,
                label=f"{TOWER_NAMES[v]} seed {s}") for v in cfg.variants for s in range(cfg.seeds)]
    jobs.append(Job("baselines", partial(_baselines_job, root, cache, cfg), label="baselines"))
    headline = HEADLINE if "mm4" in cfg.variants else TOWER_NAMES[cfg.variants[-1]]
    task = RetrievalTask(headline=headline, selections=("valid", ""), n_boot=cfg.n_boot,
                         comparisons=[c for c in COMPARISONS if all(m in _models(cfg) for m in c)])
    manifest = pd.DataFrame({"id": prep.ids, "split": product_split(prep.products)})
    return Problem(task=task, jobs=jobs,
                   dataset={"description": "fashion_product_images + fashion_product_hierarchy (Myntra, Kaggle)",
                            "version": "shared/data fashion_product_images manifest.csv", **info, **prep.info()},
                   split_manifest=manifest,
                   notes=["Queries are generated (no logs); test queries and products are disjoint from training "
                          "and validation (checked).", "Each tower's seed-0 model is exported for "
                          "`polymodal index build RUN --out INDEX`."],
                   skips=info.get("skips", {}))


def _models(cfg: ProductSearchConfig) -> set[str]:
    from polymodal.search.experiment import TOWER_NAMES

    return {TOWER_NAMES[v] for v in cfg.variants} | {"tfidf-names", "minilm-zero-shot", "random", "popular-type"}


RECIPE = REGISTRY.register(
    Recipe(
        name="product-search",
        paper=Paper("Multimodal semantic retrieval for product search", "2501.07365", "WWW 2025 companion"),
        summary="Text-to-product search over fashion photos and names: text, image and 3/4-tower multimodal towers",
        config_cls=ProductSearchConfig,
        build=build,
        data_licence="Kaggle Fashion Product Images (Myntra): MIT per the Kaggle page (not verified)",
        deviations=DEVIATIONS,
        published_note="the paper reports relative gains on Amazon's internal queries and purchase logs only; "
                       "no absolute number on public data exists to set beside ours",
    )
)
