"""The metammf recipe end to end through the one runner, on generated MovieLens files (both layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.config import TrainConfig
from polymodal.errors import DataError
from polymodal.recipes.metammf import RECIPE, MetaMMFConfig, RankingProtocol, prepare
from polymodal.runs.api import evaluate_run, load_run, predict_file
from polymodal.runs.runner import run_recipe

GENRES = ["Action", "Comedy", "Drama"]


def write_movielens(root: Path, n_users: int = 24, n_items: int = 45, seed: int = 0) -> Path:
    """ml-latest-small layout; users prefer one genre (a planted signal), a few items are rare."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    genre = np.arange(n_items) % 3
    movies = pd.DataFrame({"movieId": np.arange(1, n_items + 1),
                           "title": [f"{GENRES[g]} film {i} ({1990 + i % 20})" for i, g in enumerate(genre)],
                           "genres": [GENRES[g] for g in genre]})
    movies.to_csv(root / "movies.csv", index=False)
    rows = []
    for u in range(1, n_users + 1):
        own = np.flatnonzero(genre == u % 3)
        for i in rng.choice(own, 10, replace=False):
            rows.append((u, int(i) + 1, 4.0, 1000 + len(rows)))
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(root / "ratings.csv", index=False)
    tags = pd.DataFrame({"userId": 1, "movieId": [1, 2, 3], "tag": ["fast", "funny", "sad"], "timestamp": 1})
    tags.to_csv(root / "tags.csv", index=False)
    return root


def tiny_config(**kw: object) -> MetaMMFConfig:
    base = {"text_model": "hashing", "eval_every": 1, "dim": 8, "proj_dim": 4, "d_meta": 4, "cp_rank": 2,
            "cold_max_train": 2, "protocol": RankingProtocol(seeds=1, n_boot=20),
            "train": TrainConfig(workers=1, progress=False, max_epochs=2, batch_size=64, lr=0.01, threads=1)}
    return MetaMMFConfig(**{**base, **kw})


@pytest.mark.usefixtures("one_torch_thread")
def test_recipe_runs_through_runner_eval_and_predict(tmp_path: Path) -> None:
    data = write_movielens(tmp_path / "data" / "movielens_latest_small")
    cfg = tiny_config(modalities=("title", "genres"))
    metrics = run_recipe(RECIPE, cfg, out_dir=tmp_path / "run", data_dir=tmp_path / "data",
                         cache_dir=tmp_path / "cache", progress=False)
    assert metrics is not None and metrics["task"] == "ranking" and metrics["bootstrap_unit"] == "user"
    models = metrics["models"]
    assert {"metammf", "concat-gcn", "mmgcn", "content", "lightgcn", "bpr-mf", "popularity",
            "metammf -title", "metammf -genres"} <= set(models)
    test = models["metammf"]["splits"]["test"]
    assert {"recall@10", "ndcg@10", "precision@10", "hr@10", "recall@20", "ndcg@20"} <= set(test)
    assert set(metrics["robustness"]) == {"none", "drop:genres", "drop:title"}
    assert "cold_items" in metrics.get("subsets", {})
    assert metrics["ranking_cost"]["metammf"]["rank_pairs_per_second"] > 0
    assert (tmp_path / "run" / "split.csv").is_file()
    # eval recomputes the same numbers from predictions.csv.
    again, differences = evaluate_run(tmp_path / "run")
    assert differences == [] and again["models"]["metammf"] == models["metammf"]
    # predict: known users get the model's list; an unknown user is an error naming the row.
    (tmp_path / "users.csv").write_text("user_id\n1\n2\n")
    assert predict_file(tmp_path / "run", tmp_path / "users.csv", tmp_path / "recs.csv") == 2
    recs = pd.read_csv(tmp_path / "recs.csv")
    assert list(recs["id"]) == [1, 2] and len(recs["items"].iloc[0].split()) == 20
    assert set(recs["source"]) == {"metammf"}
    (tmp_path / "bad.csv").write_text("user_id\n1\n999\n")
    with pytest.raises(DataError, match=r"bad.csv, row 2, field 'user_id'"):
        load_run(tmp_path / "run").predictor().read_input(tmp_path / "bad.csv")
    assert data.exists()


def test_prepare_reads_ml100k_layout(tmp_path: Path) -> None:
    from tests.test_movielens_source import write_100k

    rows = "".join(f"{u}\t{i}\t3\t{u * 10 + i}\n" for u in range(1, 6) for i in (1, 2))
    write_100k(tmp_path, data=rows)
    ranking, split, data, _ = prepare(tiny_config(source="ml100k"), tmp_path, tmp_path / "cache")
    assert data.source == "ml100k" and split.n_users == 5 and split.n_items == 2
    assert set(ranking.features) == {"title", "tags", "genres", "year"}
    assert not ranking.features["tags"].any()  # ml-100k has no tags: the modality is all zeros


def test_item_features_shapes_missing_text_and_extra(tmp_path: Path) -> None:
    from polymodal.data.sources.movielens import load_movielens
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.encoders.text import HashingTextEncoder
    from polymodal.recipes.metammf_features import item_features, reduce_text, year_features

    data = load_movielens(write_movielens(tmp_path / "ml"))
    ids = data.items["item_id"].to_numpy()
    np.savez(tmp_path / "visual.npz", item_id=np.array([2, 3]), features=np.ones((2, 5), dtype=np.float32))
    feats = item_features(data, ids, ("title", "tags", "genres", "year", "visual"), HashingTextEncoder(32),
                          EmbeddingCache(tmp_path / "cache"), {"visual": tmp_path / "visual.npz"}, text_dim=0)
    assert feats["title"].shape == (45, 32) and feats["genres"].shape == (45, 3) and feats["year"].shape == (45, 2)
    assert np.abs(feats["tags"][:3]).sum(axis=1).all() and not feats["tags"][3:].any()  # 3 tagged movies
    assert feats["visual"][:, 0].tolist()[:4] == [0, 1, 1, 0]
    # PCA keeps items without text at zero; year standardised with a missing flag.
    reduced = reduce_text(np.vstack([np.zeros((2, 6)), np.random.default_rng(0).normal(size=(8, 6))]), 3)
    assert reduced.shape == (10, 3) and not reduced[:2].any()
    years = year_features(np.array([1990.0, np.nan, 2000.0]))
    assert years[:, 1].tolist() == [0, 1, 0] and years[:, 0].tolist() == [-1, 0, 1]
