"""Product-search towers on generated data with a planted signal, and the retrieval task's statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.encoders.text import HashingTextEncoder
from polymodal.search.experiment import COMPARISONS, HEADLINE, exclusive_matches, run_product_search
from polymodal.search.towers import TrainConfig
from polymodal.tasks.retrieval import RetrievalTask, paired_difference

COLOURS = ["Red", "Blue", "Black", "White", "Green", "Yellow"]
TYPES = ["Shirts", "Tshirts", "Jeans", "Watches", "Casual Shoes"]


def planted(n: int = 500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Colour, type and gender are visible in the 'photo' features only; names carry none of them."""
    rng = np.random.default_rng(seed)
    rows, img = [], []
    for i in range(n):
        c, t, g = rng.integers(len(COLOURS)), rng.integers(len(TYPES)), rng.integers(2)
        rows.append({"id": str(i), "name": f"Brand{i % 37} Model{i} Item", "articleType": TYPES[t],
                     "baseColour": COLOURS[c], "gender": ["Men", "Women"][g], "usage": "Casual"})
        x = np.zeros(32)
        x[c], x[10 + t], x[20 + g] = 3.0, 3.0, 3.0
        img.append(x + rng.normal(scale=0.5, size=32))
    names = HashingTextEncoder(dim=64).encode([r["name"] for r in rows])
    return pd.DataFrame(rows), names, np.asarray(img, dtype=np.float32)


@pytest.fixture(scope="module")
def result():
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    products, names, img = planted()
    enc = HashingTextEncoder(dim=64, analyzer="word", ngram_range=(1, 1))
    cfg = TrainConfig(dim=32, max_epochs=12, patience=4, batch_size=64, lr=5e-3, temperature=0.1)
    out = run_product_search(products, names, img, enc.encode, seeds=(0, 1), variants=("text", "image", "mm4"),
                             cfg=cfg)
    torch.set_num_threads(saved)
    return out


def test_towers_find_the_planted_photo_signal(result) -> None:
    pred = result.predictions
    test = pred[(pred["split"] == "test") & (pred["subset"] == "all") & (pred["query_kind"] == "attribute")]
    ndcg = test.groupby("model")["ndcg@10"].mean()
    # the image carries colour, type and gender; names carry nothing -> image and multimodal >> text, random
    assert ndcg["image-tower"] > ndcg["random"] + 0.3
    assert ndcg["mm-4tower"] > ndcg["random"] + 0.3
    assert ndcg["image-tower"] > ndcg["text-tower"] + 0.2
    assert ndcg["tfidf-names"] < ndcg["image-tower"]
    # name queries (model/brand words) are the text tower's and TF-IDF's job
    names = pred[(pred["split"] == "test") & (pred["subset"] == "all") & (pred["query_kind"] == "name")]
    assert names.groupby("model")["mrr"].mean()["tfidf-names"] > 0.5


def test_predictions_are_a_valid_retrieval_table(result) -> None:
    task = RetrievalTask(headline=HEADLINE, selections=("valid", ""), comparisons=COMPARISONS, n_boot=200)
    metrics = task.evaluate(result.predictions)
    models = metrics["models"]
    assert {"text-tower", "image-tower", "mm-4tower", "random", "popular-type", "tfidf-names"} <= set(models)
    stats = models["image-tower"]["splits"]["test"]["ndcg@10"]
    assert stats["ci_low"] <= stats["mean"] <= stats["ci_high"] and len(stats["per_seed"]) == 2
    assert set(models["image-tower"]["splits"]["test"]) == {"recall@10", "ndcg@10", "mrr"}
    assert "name-to-photo" in metrics["subsets"] and "photo-to-name" in metrics["subsets"]
    comp = {(c["model"], c["metric"]): c for c in metrics["comparisons"]}
    assert "p_adjusted" in comp[("mm-4tower vs text-tower", "ndcg@10_diff")]
    ex = exclusive_matches(result.predictions)
    assert set(ex.columns) >= {"query", "product"} and len(ex) > 0


def test_paired_difference_by_hand() -> None:
    out = paired_difference(np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0]), 500, 0)
    assert out["mean"] == pytest.approx(0.5)
    assert 0.0 <= out["ci_low"] < 0.5 < out["ci_high"] <= 1.0
    same = paired_difference(np.ones(5), np.ones(5), 100, 0)
    assert same["mean"] == 0.0 and same["p_value"] == 1.0
