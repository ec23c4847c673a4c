"""The taxonomy-classifier recipe end to end on generated data, its protocol metrics and its config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score
from torch import nn

from polymodal.config import apply_overrides
from polymodal.data.taxonomy import Taxonomy
from polymodal.encoders.image import FrozenImageEncoder, ImageBackbone
from polymodal.encoders.text import HashingTextEncoder
from polymodal.errors import DataError
from polymodal.evaluation.hierarchical_protocol import weighted_metrics
from polymodal.recipes.taxonomy_classifier import TaxonomyClassifierConfig
from tests.fashion_synthetic import write_fashion


class _MeanColour(nn.Module):
    def forward(self, x):
        return x  # (B, 3, H, W): pooled to the mean colour


def _encoders() -> tuple[FrozenImageEncoder, HashingTextEncoder]:
    return FrozenImageEncoder(ImageBackbone(_MeanColour(), 3, "mean-colour")), HashingTextEncoder(dim=64)


def test_weighted_metrics_equal_sklearn_on_an_explicit_resample() -> None:
    rng = np.random.default_rng(0)
    n = 50
    truth = rng.integers(0, 4, size=(n, 2))
    pred = np.where(rng.random((n, 2)) < 0.7, truth, rng.integers(0, 4, size=(n, 2)))
    draw = rng.integers(0, n, n)
    w = np.bincount(draw, minlength=n).astype(float)
    got = weighted_metrics(truth, pred, np.ones(n, bool), np.ones((n, 3)), w, ["a", "b"], [4, 4])
    t, p = truth[draw], pred[draw]
    assert got["accuracy_b"] == pytest.approx(np.mean(t[:, 1] == p[:, 1]))
    assert got["macro_f1_a"] == pytest.approx(f1_score(t[:, 0], p[:, 0], average="macro"))
    assert got["exact_match"] == pytest.approx(np.mean(np.all(t == p, axis=1)))


@pytest.fixture
def tiny_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe builds its configured frozen encoders; swap in a mean-colour image and a hashing text one."""
    monkeypatch.setattr("polymodal.encoders.image.FrozenImageEncoder", lambda *a, **k: _encoders()[0])
    monkeypatch.setattr("polymodal.encoders.text.SentenceTextEncoder", lambda *a, **k: _encoders()[1])


def _run(tmp_path: Path, data: Path, overrides: dict, train: dict, protocol: dict) -> dict:
    from polymodal.recipes.taxonomy_classifier import RECIPE
    from polymodal.runs import run_recipe

    cfg = apply_overrides(TaxonomyClassifierConfig, overrides, train=train, protocol=protocol)
    return run_recipe(RECIPE, cfg, out_dir=tmp_path / "run", data_dir=data, cache_dir=tmp_path / "cache",
                      progress=False)


def test_recipe_end_to_end_on_generated_data(tmp_path: Path, one_torch_thread: None, tiny_encoders: None) -> None:
    data = write_fashion(tmp_path / "data", n=300)
    metrics = _run(tmp_path, data, {
        "settings": ("transitional/all", "flat/all", "transitional/image"),
        "baselines": ("majority", "tfidf-logreg/name", "linear-probe/image"),
        "dim": 16, "hidden": 32, "rare_min_count": 3},
        train={"max_epochs": 40, "patience": 8, "batch_size": 32, "lr": 3e-3}, protocol={"seeds": 2, "n_boot": 20})
    run = tmp_path / "run"
    for f in ("config.json", "split.csv", "metrics.json", "report.md", "artifacts/featurizer.json",
              "jobs/transitional/all/seed_0/network.pt"):
        assert (run / f).is_file(), f
    split = pd.read_csv(run / "split.csv")
    assert split.id.is_unique and set(split.split) == {"train", "valid", "test"}
    tax = Taxonomy.from_dict(json.loads((run / "config.json").read_text())["task"]["spec"]["taxonomy"])
    if 1007 in set(split[split.split == "train"].id):
        assert tax.multi_parent()["articleType"] == {"Shirts": ["Belts", "Topwear"]}
    test = {m: r["splits"]["test"] for m, r in metrics["models"].items()}
    # The planted signal: article type is in the name and in the photo colour; the majority class is not.
    assert test["transitional/all"]["accuracy_articleType"]["mean"] > 0.9
    assert test["transitional/all"]["exact_match"]["mean"] > test["majority"]["exact_match"]["mean"] + 0.4
    assert test["transitional/all"]["exact_match"]["ci_low"] <= test["transitional/all"]["exact_match"]["mean"]
    photo = metrics["subsets"]["with_photo"]
    assert photo["transitional/image"]["splits"]["test"]["accuracy_articleType"]["mean"] > 0.9
    assert {"accuracy_articleType", "macro_f1_articleType", "exact_match", "consistency"} <= set(test["flat/all"])
    comps = metrics["comparisons"]
    assert {"transitional/all vs flat/all", "transitional/all vs majority"} <= {c["model"] for c in comps}
    assert all("p_adjusted" in c for c in comps)
    # polymodal eval reproduces metrics.json from the saved rows alone
    from polymodal.runs import evaluate_run

    _, differences = evaluate_run(run)
    assert differences == []


def test_config_rejects_unknown_keys_and_round_trips() -> None:
    cfg = TaxonomyClassifierConfig()
    assert TaxonomyClassifierConfig.model_validate(cfg.model_dump()) == cfg
    with pytest.raises(Exception, match="setings"):
        apply_overrides(TaxonomyClassifierConfig, {"setings": ()})


def test_predict_reads_products_and_counts_image_fallbacks(tmp_path: Path, one_torch_thread: None,
                                                           tiny_encoders: None) -> None:
    from polymodal.runs import load_run

    data = write_fashion(tmp_path / "data", n=120)
    _run(tmp_path, data, {"settings": ("transitional/all",), "baselines": ("majority",), "dim": 8, "hidden": 8},
         train={"max_epochs": 2, "batch_size": 32}, protocol={"seeds": 2, "n_boot": 10})
    predictor = load_run(tmp_path / "run").predictor(cache_dir=tmp_path / "cache")
    assert len(predictor.example_input(3)) == 3
    inp = tmp_path / "new.csv"
    photo = next((data / "fashion_product_images" / "images").glob("*.jpg"))
    (tmp_path / "broken.jpg").write_bytes(b"no")
    pd.DataFrame({"id": ["a", "b", "c"], "name": ["Nike Men Blue Tshirts", "Puma Women Red Heels", "Belt"],
                  "gender": ["Men", "Women", ""], "year": [2012, "", 2011],
                  "image": [str(photo), "broken.jpg", ""]}).to_csv(inp, index=False)
    out = predictor.predict(predictor.read_input(inp))
    assert list(out["id"]) == ["a", "b", "c"]
    assert out["image_used"].tolist() == [True, False, False]
    assert predictor.skips["image_unreadable"]["count"] == 1
    assert {"masterCategory", "subCategory", "articleType", "confidence_articleType"} <= set(out.columns)
    assert out["confidence_articleType"].between(0, 1).all()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"name": ["x", "y"], "year": ["2012", "soon"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv, row 2, field 'year'"):
        predictor.read_input(bad)


@pytest.mark.slow
def test_real_subset_end_to_end(tmp_path: Path, one_torch_thread: None) -> None:
    """1,500 real products (photos through the real EfficientNet-Lite0 and MiniLM, cached): the recipe row learns."""
    data_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (data_dir / "fashion_product_hierarchy").is_dir():
        data_dir = Path("/work/shared/data")
    if not (data_dir / "fashion_product_hierarchy").is_dir():
        pytest.skip("fashion data not available")
    cfg = apply_overrides(TaxonomyClassifierConfig, {
        "max_products": 1500, "settings": ("transitional/all",), "baselines": ("majority",)},
        protocol={"seeds": 1, "n_boot": 20})
    from polymodal.recipes.taxonomy_classifier import RECIPE
    from polymodal.runs import run_recipe

    metrics = run_recipe(RECIPE, cfg, out_dir=tmp_path / "run", data_dir=data_dir, progress=False)
    test = {m: r["splits"]["test"] for m, r in metrics["models"].items()}
    assert test["transitional/all"]["accuracy_masterCategory"]["mean"] > 0.9
    assert test["transitional/all"]["exact_match"]["mean"] > test["majority"]["exact_match"]["mean"] + 0.3


def test_report_sections_render_subsets_and_comparisons() -> None:
    from polymodal.tasks.hierarchical import HierarchicalTask

    tax = Taxonomy.from_frame(pd.DataFrame({"a": ["A"], "b": ["x"]}), ["a", "b"])
    task = HierarchicalTask(headline="m", taxonomy=tax.to_dict())
    stats = {"mean": 0.5, "std": 0.0, "ci_low": 0.4, "ci_high": 0.6, "per_seed": [0.5]}
    metrics = {"subsets": {"with_photo": {"m": {"kind": "recipe", "n": {"test": 7},
                                                "splits": {"test": {"exact_match": stats}}}}},
               "comparisons": [{"model": "m vs k", "subset": "all", "metric": "exact_match", "mean": 0.1,
                                "ci_low": 0.05, "ci_high": 0.15, "p_value": 0.01, "p_adjusted": 0.02,
                                "verdict": "better", "n": 7}]}
    text = "\n".join(task.report_sections(metrics))
    assert "| m | recipe | 7 |" in text and "0.5000 (0.4000-0.6000)" in text
    assert "| m vs k | all | exact_match | +0.1000 |" in text
