"""The UMPSNet recipe: build, forward/backward without each modality, the CV runner end to end on a
synthetic TCGA folder with a planted signal, and (slow) the real BLCA + LUAD run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.config import apply_overrides
from polymodal.data.collate import Collator
from polymodal.data.sources.tcga import load_cohorts
from polymodal.objectives.survival import DiscreteTimeSurvivalNLL
from polymodal.recipes import umpsnet
from polymodal.recipes.registry import REGISTRY
from tests.tcga_synthetic import write_tcga

DATA = Path(os.environ.get("POLYMODAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _small_cfg(**kw: object) -> umpsnet.UMPSNetConfig:
    base = {"cohorts": ["AAA", "BBB"], "text_model": "hashing", "n_folds": 2, "dim": 16, "snn_hidden": 16,
            "n_experts": 3, "with_treatment": False, "per_cancer": False}
    base.update(kw)
    return apply_overrides(umpsnet.UMPSNetConfig, base,
                           train={"max_epochs": 20, "patience": 6, "lr": 1e-2, "batch_size": 16, "progress": False},
                           protocol={"seeds": 1, "n_boot": 50})


def test_registered_with_provenance() -> None:
    recipe = REGISTRY.get("umpsnet")
    assert recipe.paper.arxiv_id == "2501.07016" and recipe.deviations
    assert {p.value for p in recipe.published} >= {0.541, 0.539, 0.624, 0.620, 0.725}
    cfg = umpsnet.UMPSNetConfig()
    assert umpsnet.UMPSNetConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert cfg.seeds == 3 and cfg.train.threads == 1


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("tcga")
    write_tcga(root, cohorts=("AAA", "BBB", "CCC"), n=120)  # CCC: never trained on (zero-shot)
    cache = tmp_path_factory.mktemp("cache")
    return umpsnet.make_problem(_small_cfg(), root, cache), root, cache


@pytest.mark.parametrize("missing", [None, "genomics", "metadata", "cancer", "treatment"])
def test_forward_backward_with_and_without_each_modality(problem, missing: str | None) -> None:  # type: ignore[no-untyped-def]
    prob, _, _ = problem
    cfg = _small_cfg()
    feat = prob.make_featurizer(prob.records).fit(prob.records[:60])
    mods = ("cancer", "genomics", "metadata", "treatment")
    model = umpsnet.build_umpsnet(cfg, feat, mods, n_groups=2)
    samples = [({m: f[m] for m in mods}, np.float32(0)) for f in feat.transform(prob.records[:6])]
    tokens, _ = Collator(mods)(samples)
    if missing:
        tokens[missing] = tokens[missing].drop()
    out = model(tokens)
    assert out.logits.shape == (6, cfg.n_bins) and torch.isfinite(out.logits).all()
    loss = DiscreteTimeSurvivalNLL()(out.logits, torch.zeros(6, dtype=torch.long), torch.ones(6))["nll"]
    (loss + out.aux["group_logits"].sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_cox_loss_gives_one_log_hazard_per_patient(problem) -> None:  # type: ignore[no-untyped-def]
    from polymodal.objectives.survival import CoxPartialLikelihood

    prob, _, _ = problem
    cfg = _small_cfg(loss="cox")
    feat = prob.make_featurizer(prob.records).fit(prob.records[:60])
    mods = ("cancer", "genomics", "metadata")
    tokens, _ = Collator(mods)([({m: f[m] for m in mods}, np.float32(0)) for f in feat.transform(prob.records[:6])])
    risk = umpsnet.build_umpsnet(cfg, feat, mods, n_groups=2)(tokens).logits
    assert risk.shape == (6,)
    CoxPartialLikelihood()(risk, torch.arange(6.0), torch.ones(6))["cox"].backward()


def test_featurizer_scales_on_training_patients_and_encodes_clinical(problem) -> None:  # type: ignore[no-untyped-def]
    prob, _, _ = problem
    feat = prob.make_featurizer(prob.records).fit(prob.records[:50])
    x = feat.transform(prob.records[:3])
    assert x[0]["genomics"].shape == (1, len(feat.columns)) and x[0]["metadata"].shape[0] == 2
    assert np.abs(x[1]["genomics"]).max() <= 5.0  # the planted 9000 outlier is bounded
    clinical = feat.clinical(prob.records[:4])
    assert list(clinical.columns) == ["age", "female", "stage", "t", "n", "m"]
    assert clinical.notna().all().all()  # NX / MX filled with training medians
    assert umpsnet._ordinal("Stage IIIA", "STAGE") == 3 and np.isnan(umpsnet._ordinal("NX", "N"))


def test_runner_finds_the_planted_signal_and_writes_the_run(problem, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, root, cache = problem
    out = tmp_path / "run"
    cfg = _small_cfg(genomic_only=False)  # the SNN baseline is exercised by the slow real-data test
    metrics = umpsnet.run(cfg, data_dir=root, out_dir=out, cache_dir=cache)
    models = metrics["models"]
    assert set(models) == {"umpsnet", "cox-clinical", "kaplan-meier"}
    ours = models["umpsnet"]["splits"]["test"]
    assert ours["c_index_mean"]["mean"] > 0.6, ours["c_index_mean"]  # the planted gene + stage signal
    for c in ("aaa", "bbb"):
        s = ours[f"c_index_{c}"]
        assert s["mean"] > 0.55, (c, s)
        assert s["ci_low"] <= s["mean"] <= s["ci_high"] and len(s["per_fold"]) == 2
    assert models["kaplan-meier"]["splits"]["test"]["c_index_mean"]["mean"] == pytest.approx(0.5)
    for name in ("umpsnet", "cox-clinical", "kaplan-meier"):  # sksurv IBS from each model's survival curves
        ibs = models[name]["splits"]["test"]["ibs_aaa"]
        assert 0.0 < ibs["mean"] < 0.5 and len(ibs["per_fold"]) == 2, (name, ibs)
    assert set(metrics["robustness"]) == {"none", "drop:cancer", "drop:genomics", "drop:metadata"}
    for name in ("config.json", "metrics.json", "predictions.csv", "report.md", "fold_0/split.json"):
        assert (out / name).exists(), name
    split = json.loads((out / "fold_0" / "split.json").read_text())
    assert not set(split["test"]) & (set(split["train"]) | set(split["valid"]))
    assert "c_index_aaa" in (out / "report.md").read_text()
    again = umpsnet.run(cfg, data_dir=root, out_dir=out, cache_dir=cache)  # resumes: nothing retrains
    redo = again["models"]["umpsnet"]["splits"]["test"]
    assert all(redo[k] == ours[k] for k in ours if k.startswith("c_index"))

    # zero-shot: a cohort file the run never saw, through `polymodal eval RUN --data-dir DIR --cohort NAME`
    result = CliRunner().invoke(app, ["eval", str(out), "--data-dir", str(root), "--cohort", "CCC",
                                      "--cache-dir", str(cache), "--json"])
    assert result.exit_code == 0, result.output
    shot = json.loads((out / "zero_shot_ccc" / "metrics.json").read_text())
    assert shot["zero_shot"] is True and "never seen in training" in (out / "zero_shot_ccc" / "report.md").read_text()
    c = shot["models"]["umpsnet (zero-shot)"]["splits"]["test"]["c_index"]
    assert c["mean"] > 0.6 and c["ci_low"] < c["mean"] < c["ci_high"]  # the planted signal transfers
    bad = CliRunner().invoke(app, ["eval", str(out), "--data-dir", str(root), "--cohort", "DDD"])
    assert bad.exit_code != 0 and "tcga_ddd_all_clean" in bad.output + str(bad.exception)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "tcga_survival_mcat_umpsnet").exists(), reason="TCGA data not available")
def test_real_blca_luad_end_to_end(tmp_path: Path) -> None:
    """Five folds, one seed, headline + baselines on the real cohorts (a few minutes on 2 cores)."""
    cfg = apply_overrides(umpsnet.UMPSNetConfig, {"with_treatment": False, "per_cancer": False,
                                                  "genomic_only": False},
                          train={"progress": False, "max_epochs": 12}, protocol={"seeds": 1, "n_boot": 100})
    assert len(load_cohorts(DATA, cfg.cohorts).records) == 826
    # the default embedding cache ($POLYMODAL_CACHE): a warm one saves re-encoding 3,304 sentences
    metrics = umpsnet.run(cfg, data_dir=DATA, out_dir=tmp_path / "run", cache_dir=None)
    test = metrics["models"]["umpsnet"]["splits"]["test"]
    for c in ("blca", "luad"):
        assert 0.55 < test[f"c_index_{c}"]["mean"] < 0.9
    assert (tmp_path / "run" / "report.md").exists()


def test_step_survival_curves_read_at_any_time() -> None:
    """S = 1 before the first knot, then the value of the last knot at or before t (hand-computed)."""
    from polymodal.survival_experiment import _step_values

    knots = np.array([2.0, 5.0])
    values = np.array([[0.9, 0.4], [0.8, 0.7]])
    got = _step_values(knots, values, np.array([1.0, 2.0, 4.9, 5.0, 9.0]))
    np.testing.assert_allclose(got, [[1.0, 0.9, 0.9, 0.4, 0.4], [1.0, 0.8, 0.8, 0.7, 0.7]])
