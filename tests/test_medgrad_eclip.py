"""MedGrad E-CLIP: image-text losses, a planted learning test, the recipe end to end on tiny folders."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.config import apply_overrides
from polymodal.encoders.image import ImageBackbone
from polymodal.encoders.text import HashingTextEncoder
from polymodal.objectives.contrastive import info_nce
from polymodal.objectives.image_text import clip_loss, masked_bce, prompt_pair_logits
from polymodal.recipes.derm_concepts import (
    BENIGN_DESCRIPTION,
    CRITERIA,
    MELANOMA_DESCRIPTION,
    caption,
    criterion_texts,
)
from polymodal.recipes.medgrad_eclip import MedGradEclipConfig, run
from polymodal.recipes.medgrad_run import prepare
from polymodal.recipes.registry import REGISTRY
from polymodal.training.image_text import FitOptions, ImageTextSet, PromptBank, fit_image_text, score_image_text
from tests.derm_synthetic import write_derm7pt, write_ph2

DATA = Path(os.environ.get("POLYMODAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_clip_loss_equals_info_nce_for_distinct_captions() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    assert clip_loss(a, b, 1 / 0.2) == pytest.approx(float(info_nce(a, b, 0.2)), rel=1e-5)


def test_clip_loss_shares_mass_between_identical_captions() -> None:
    img = torch.ones(2, 4)
    txt = torch.ones(2, 4)  # two images with the same caption: every pairing is right
    assert float(clip_loss(img, txt, 10.0, torch.tensor([3, 3]))) == pytest.approx(math.log(2))


def test_prompt_pair_logits_and_masked_bce() -> None:
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos, neg = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    logits = prompt_pair_logits(img, pos, neg, 5.0)
    assert logits[:, 0].tolist() == pytest.approx([5.0, -5.0])
    labels = torch.tensor([[1.0], [float("nan")]])
    assert float(masked_bce(logits, labels)) == pytest.approx(math.log1p(math.exp(-5.0)), rel=1e-5)


def _planted(n: int, rng: np.random.Generator, proj: np.ndarray, index: dict[str, int]) -> ImageTextSet:
    concepts = (rng.random((n, len(CRITERIA))) < 0.35).astype(np.float32)
    image = concepts @ proj + 0.3 * rng.normal(size=(n, proj.shape[1]))
    ids = np.array([index.setdefault(caption(c), len(index)) for c in concepts])
    return ImageTextSet(image.astype(np.float32), ids, concepts, (concepts.sum(1) >= 3).astype(np.float32))


def test_lit_heads_learn_planted_concepts_and_match_descriptions_zero_shot() -> None:
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(len(CRITERIA), 24))
    index: dict[str, int] = {}
    train, valid, test = (_planted(n, rng, proj, index) for n in (300, 100, 200))
    text = HashingTextEncoder(dim=128)
    pos, neg = criterion_texts()
    captions = sorted(index, key=index.get)  # type: ignore[arg-type]
    prompts = PromptBank(text.encode(captions), text.encode(pos), text.encode(neg),
                         text.encode([MELANOMA_DESCRIPTION, BENIGN_DESCRIPTION]))
    model, history = fit_image_text(train, valid, prompts, FitOptions(dim=32, max_epochs=30, patience=10), seed=0)
    scores = score_image_text(model, test.image, prompts)
    from sklearn.metrics import roc_auc_score

    concept_aucs = [roc_auc_score(test.concepts[:, k], scores["concept_logits"][:, k]) for k in range(len(CRITERIA))]
    assert np.mean(concept_aucs) > 0.85 and min(concept_aucs) > 0.7, concept_aucs
    # The diagnosis was never a training signal; matching the two descriptions still ranks it.
    assert roc_auc_score(test.melanoma, scores["melanoma_logit"]) > 0.8
    assert history["select"] == "concepts"


def test_recipe_registers_with_provenance_and_config_overrides() -> None:
    recipe = REGISTRY.get("medgrad-eclip")
    assert recipe.paper.arxiv_id == "2501.06887" and recipe.deviations and recipe.published
    cfg = apply_overrides(MedGradEclipConfig, {"splits": ["asymmetric"], "dim": 64}, protocol={"seeds": 3})
    assert cfg.splits == ("asymmetric",) and cfg.protocol.seeds == 3 and cfg.train.threads == 1
    assert MedGradEclipConfig.model_validate_json(cfg.model_dump_json()) == cfg


def _tiny_backbone(name: str) -> ImageBackbone:
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Conv2d(3, 16, kernel_size=8, stride=8, bias=False), torch.nn.ReLU())
    backbone = ImageBackbone(trunk, 16, f"tiny:{name}")
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


def test_run_writes_metrics_report_and_gallery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_derm7pt(tmp_path / "data", n=48)
    write_ph2(tmp_path / "data", n=40)
    monkeypatch.setattr("polymodal.encoders.image.load_backbone", _tiny_backbone)
    monkeypatch.setattr("polymodal.recipes.medgrad_run.SentenceTextEncoder", lambda _id: HashingTextEncoder(dim=64))
    cfg = apply_overrides(MedGradEclipConfig, {"image_backbone": "tiny", "image_size": 32, "dim": 16,
                                               "explain_images": 4, "explain_steps": 4, "explain_block": 8,
                                               "gallery_images": 2, "splits": ["symmetric"], "ph2_cv_folds": 2,
                                               "ph2_cv_seeds": 1},
                          train={"max_epochs": 5, "patience": 2}, protocol={"seeds": 2, "n_boot": 50})
    out = tmp_path / "run"
    metrics = run(cfg, data_dir=tmp_path / "data", out_dir=out, cache_dir=tmp_path / "cache")
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["models"]) == {"lit-zeroshot", "lit-trained", "concept-bottleneck", "linear-probe", "prior"}
    ph2 = saved["splits"]["symmetric"]["ph2_external"]["models"]["lit-zeroshot"]
    assert ph2["n"]["test"] == 40 and ph2["seeds"] == 2
    assert set(saved["splits"]["ph2_cross_validation"]["models"]) == {"lit-zeroshot", "lit-trained", "linear-probe"}
    methods = saved["explanations"]["ph2"]["methods"]
    assert {"gradient", "gradcam", "eclip", "medgrad", "random"} <= set(methods)
    assert 0.0 <= methods["medgrad"]["mask_mass"]["mean"] <= 1.0
    report = (out / "report.md").read_text()
    assert "PH2 as an external test set" in report and "cross-validation" in report and "gallery_criteria.png" in report
    assert (out / "gallery_methods.png").stat().st_size > 1000
    assert metrics["cache"]["misses"] > 0
    # A second pass reads every image and text feature from the cache.
    again = prepare(cfg, tmp_path / "data", tmp_path / "cache")
    assert again["cache"].stats.misses == 0 and again["cache"].stats.hits > 0


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "derm7pt_plus").is_dir() or not (DATA / "ph2").is_dir(), reason="image data absent")
def test_real_derm7pt_and_ph2_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    cfg = apply_overrides(MedGradEclipConfig, {"splits": ["symmetric"], "explain_images": 4, "explain_steps": 4,
                                                   "ph2_cv_folds": 0},
                          protocol={"seeds": 3, "n_boot": 200})
    metrics = run(cfg, data_dir=DATA, out_dir=tmp_path / "run")
    models = metrics["splits"]["symmetric"]["derm7pt_test"]["models"]
    assert models["prior"]["splits"]["test"]["roc_auc"]["mean"] == pytest.approx(0.5)
    assert models["linear-probe"]["splits"]["test"]["roc_auc"]["mean"] > 0.7
    assert models["lit-trained"]["splits"]["test"]["roc_auc"]["mean"] > 0.7
    assert models["lit-zeroshot"]["n"]["test"] == 272
    assert metrics["splits"]["symmetric"]["ph2_external"]["models"]["prior"]["n"]["test"] == 200
