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
from polymodal.recipes.taxonomy_folder import run_to_folder
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


def test_recipe_end_to_end_on_generated_data(tmp_path: Path, one_torch_thread: None) -> None:
    data = write_fashion(tmp_path / "data", n=300)
    cfg = apply_overrides(TaxonomyClassifierConfig, {
        "settings": ("transitional/all", "flat/all", "transitional/image"),
        "baselines": ("majority", "tfidf-logreg/name", "linear-probe/image"),
        "dim": 16, "hidden": 32, "rare_min_count": 3},
        train={"max_epochs": 40, "patience": 8, "batch_size": 32, "lr": 3e-3}, protocol={"seeds": 2, "n_boot": 20})
    image, text = _encoders()
    result = run_to_folder(cfg, data_dir=data, out_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
                           image_encoder=image, text_encoder=text)
    run = tmp_path / "run"
    for f in ("config.json", "split.csv", "taxonomy.json", "predictions.csv.gz", "metrics.csv", "comparisons.csv",
              "report.md", "model/network.pt", "model/model.json"):
        assert (run / f).is_file(), f
    split = pd.read_csv(run / "split.csv")
    assert split.id.is_unique and set(split.split) == {"train", "valid", "test"}
    tax = Taxonomy.from_dict(json.loads((run / "taxonomy.json").read_text()))
    if 1007 in set(split[split.split == "train"].id):
        assert tax.multi_parent()["articleType"] == {"Shirts": ["Belts", "Topwear"]}
    pred = pd.read_csv(run / "predictions.csv.gz")
    assert set(pred.columns) >= {"model", "kind", "seed", "split", "id", "level", "y_true", "y_pred", "confidence"}
    assert not set(pred.loc[pred.split == "test", "id"]) & set(split.loc[split.split == "train", "id"])
    rows = pd.DataFrame(result["rows"])
    test = rows[(rows.split == "test") & (rows.subset == "all")].set_index(["model", "metric"])["mean"]
    # The planted signal: article type is in the name and in the photo colour; the majority class is not.
    assert test[("transitional/all", "accuracy_articleType")] > 0.9
    assert test[("transitional/all", "exact_match")] > test[("majority", "exact_match")] + 0.4
    photo = rows[(rows.split == "test") & (rows.subset == "with_photo")].set_index(["model", "metric"])["mean"]
    assert photo[("transitional/image", "accuracy_articleType")] > 0.9
    assert {"accuracy_articleType", "macro_f1_articleType", "exact_match", "consistency"} <= set(rows.metric)
    comp = pd.DataFrame(result["comparisons"])
    assert set(comp.model) == {"transitional/all"}
    assert {"flat/all", "majority", "transitional/image"} <= set(comp.versus)
    assert "Paired comparisons" in (run / "report.md").read_text()


def test_config_rejects_unknown_keys_and_round_trips() -> None:
    cfg = TaxonomyClassifierConfig()
    assert TaxonomyClassifierConfig.model_validate(cfg.model_dump()) == cfg
    with pytest.raises(Exception, match="setings"):
        apply_overrides(TaxonomyClassifierConfig, {"setings": ()})


def test_predict_reads_products_and_counts_image_fallbacks(tmp_path: Path, one_torch_thread: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from polymodal.recipes import taxonomy_predict

    data = write_fashion(tmp_path / "data", n=120)
    cfg = apply_overrides(TaxonomyClassifierConfig, {"settings": ("transitional/all",), "baselines": ("majority",),
                                                     "dim": 8, "hidden": 8},
                          train={"max_epochs": 2, "batch_size": 32}, protocol={"seeds": 1, "n_boot": 5})
    image, text = _encoders()
    run_to_folder(cfg, data_dir=data, out_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
                  image_encoder=image, text_encoder=text)
    # predict rebuilds the configured encoders; swap in the same tiny ones the run used.
    monkeypatch.setattr("polymodal.encoders.image.FrozenImageEncoder", lambda *a, **k: _encoders()[0])
    monkeypatch.setattr("polymodal.encoders.text.SentenceTextEncoder", lambda *a, **k: _encoders()[1])
    inp = tmp_path / "new.csv"
    photo = next((data / "fashion_product_images" / "images").glob("*.jpg"))
    (tmp_path / "broken.jpg").write_bytes(b"no")
    pd.DataFrame({"id": ["a", "b", "c"], "name": ["Nike Men Blue Tshirts", "Puma Women Red Heels", "Belt"],
                  "gender": ["Men", "Women", ""], "year": [2012, "", 2011],
                  "image": [str(photo), "broken.jpg", ""]}).to_csv(inp, index=False)
    out = taxonomy_predict.predict_taxonomy(tmp_path / "run", inp, tmp_path / "cache")
    assert list(out["id"]) == ["a", "b", "c"]
    assert out["image_used"].tolist() == [True, False, False]
    assert out.attrs["image_fallbacks"] == 1
    assert {"score", "decision", "masterCategory", "articleType"} <= set(out.columns)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"name": ["x", "y"], "year": ["2012", "soon"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv, row 2, field 'year'"):
        taxonomy_predict.predict_taxonomy(tmp_path / "run", bad, tmp_path / "cache")


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
    result = run_to_folder(cfg, data_dir=data_dir, out_dir=tmp_path / "run")
    rows = pd.DataFrame(result["rows"])
    test = rows[(rows.split == "test") & (rows.subset == "all")].set_index(["model", "metric"])["mean"]
    assert test[("transitional/all", "accuracy_masterCategory")] > 0.9
    assert test[("transitional/all", "exact_match")] > test[("majority", "exact_match")] + 0.3
