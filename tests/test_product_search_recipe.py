"""The product-search recipe through the one runner on a generated catalogue, then `index build` from the run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("lancedb", reason="the `search` extra (lancedb) is not installed")

from typer.testing import CliRunner

from polymodal.encoders.image import FrozenImageEncoder, ImageBackbone
from polymodal.encoders.text import HashingTextEncoder
from tests.test_search_pipeline import _MeanColour, write_fashion


def test_recipe_runs_evaluates_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from polymodal.config import TrainConfig
    from polymodal.recipes import get, product_search
    from polymodal.runs import run_recipe
    from polymodal.search.cli import mount
    from polymodal.tasks import flat_rows

    monkeypatch.setattr(product_search, "frozen_encoders", lambda: (
        HashingTextEncoder(dim=64, analyzer="word", ngram_range=(1, 1)),
        FrozenImageEncoder(ImageBackbone(_MeanColour(), 3, "mean-colour"))))
    product_search._prepared.cache_clear()
    data = write_fashion(tmp_path / "data")
    recipe = get("product-search")
    cfg = recipe.config_cls(seeds=2, variants=("text", "mm4"), dim=16, n_boot=50,
                            train=TrainConfig(max_epochs=3, patience=2, batch_size=32, threads=1, progress=False))
    metrics = run_recipe(recipe, cfg, out_dir=tmp_path / "run", data_dir=data, cache_dir=tmp_path / "cache",
                         progress=False)
    product_search._prepared.cache_clear()
    rows = flat_rows(metrics)
    names = {(r["model"], r["metric"]) for r in rows if r.get("split") == "test"}
    for model in ("text-tower", "mm-4tower", "tfidf-names", "random", "popular-type", "minilm-zero-shot"):
        assert {(model, "recall@10"), (model, "ndcg@10"), (model, "mrr")} <= names
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert set(pred["seed"][pred["model"] == "mm-4tower"]) == {0, 1}

    app = typer.Typer()
    mount(app)
    res = CliRunner().invoke(app, ["index", "build", str(tmp_path / "run"), "--out", str(tmp_path / "idx"),
                                   "--ann", "none"])
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    assert manifest["count"] == 240 and manifest["info"]["tower"] in {"text-tower", "mm-4tower"}
    res = CliRunner().invoke(app, ["search", str(tmp_path / "idx"), "red shirt", "--k", "5", "--json"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)) == 5
