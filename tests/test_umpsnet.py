"""The UMPSNet recipe: build, forward/backward without each modality, the one runner end to end on a
synthetic TCGA folder with a planted signal (resume after a kill, eval, predict, zero-shot), and
(slow) the real BLCA + LUAD run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
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
from polymodal.runs import evaluate_run, run_recipe
from polymodal.runs.api import _differences
from tests.tcga_synthetic import write_tcga

DATA = Path(os.environ.get("POLYMODAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RECIPE = REGISTRY.get("umpsnet")


def _small_cfg(**kw: object) -> umpsnet.UMPSNetConfig:
    base = {"cohorts": ["AAA", "BBB"], "text_model": "hashing", "n_folds": 2, "dim": 16, "snn_hidden": 16,
            "n_experts": 3, "with_treatment": False, "per_cancer": False}
    base.update(kw)
    return apply_overrides(umpsnet.UMPSNetConfig, base,
                           train={"max_epochs": 20, "patience": 6, "lr": 1e-2, "batch_size": 16, "progress": False},
                           protocol={"seeds": 1, "n_boot": 50})


def test_registered_with_provenance() -> None:
    assert RECIPE.paper.arxiv_id == "2501.07016" and RECIPE.deviations
    assert RECIPE.build is umpsnet.build and RECIPE.predictor is umpsnet.UMPSNetPredictor
    assert "zero_shot" in RECIPE.extra and RECIPE.evaluate_tables is not None
    assert {p.value for p in RECIPE.published} >= {0.541, 0.539, 0.624, 0.620, 0.725}
    cfg = umpsnet.UMPSNetConfig()
    assert umpsnet.UMPSNetConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert cfg.seeds == 3 and cfg.train.threads == 1


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("tcga")
    write_tcga(root, cohorts=("AAA", "BBB", "CCC"), n=120)  # CCC: never trained on (zero-shot)
    cache = tmp_path_factory.mktemp("cache")
    return umpsnet.build(_small_cfg(), data_dir=root, cache_dir=cache), root, cache


def _feat(prob):  # type: ignore[no-untyped-def]
    """The first fold's featuriser (fitted on its inner training patients) and those patients."""
    job = next(j for j in prob.jobs if j.key.endswith("seed_0"))
    fold = job.run.args[1]
    return fold.featurizer, fold.train


@pytest.mark.parametrize("missing", [None, "genomics", "metadata", "cancer", "treatment"])
def test_forward_backward_with_and_without_each_modality(problem, missing: str | None) -> None:  # type: ignore[no-untyped-def]
    prob, _, _ = problem
    cfg = _small_cfg()
    feat, records = _feat(prob)
    mods = ("cancer", "genomics", "metadata", "treatment")
    model = umpsnet.build_umpsnet(cfg, feat, mods, n_groups=2)
    samples = [({m: f[m] for m in mods}, np.float32(0)) for f in feat.transform(records[:6])]
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
    feat, records = _feat(prob)
    mods = ("cancer", "genomics", "metadata")
    tokens, _ = Collator(mods)([({m: f[m] for m in mods}, np.float32(0)) for f in feat.transform(records[:6])])
    risk = umpsnet.build_umpsnet(cfg, feat, mods, n_groups=2)(tokens).logits
    assert risk.shape == (6,)
    CoxPartialLikelihood()(risk, torch.arange(6.0), torch.ones(6))["cox"].backward()


def test_featurizer_scales_on_training_patients_and_encodes_clinical(problem) -> None:  # type: ignore[no-untyped-def]
    prob, _, _ = problem
    feat, records = _feat(prob)
    x = feat.transform(records[:3])
    assert x[0]["genomics"].shape == (1, len(feat.columns)) and x[0]["metadata"].shape[0] == 2
    assert np.abs(x[1]["genomics"]).max() <= 5.0  # the planted 9000 outlier is bounded
    clinical = feat.clinical(records[:4])
    assert list(clinical.columns) == ["age", "female", "stage", "t", "n", "m"]
    assert clinical.notna().all().all()  # NX / MX filled with training medians
    assert umpsnet._ordinal("Stage IIIA", "STAGE") == 3 and np.isnan(umpsnet._ordinal("NX", "N"))


def test_featurizer_state_round_trips_as_json(problem) -> None:  # type: ignore[no-untyped-def]
    prob, _, _ = problem
    feat, records = _feat(prob)
    state = json.loads(json.dumps(feat.state()))
    again = umpsnet.UMPSNetFeaturizer.from_state(state, feat.genomics, feat.text)
    for a, b in zip(feat.transform(records[:5]), again.transform(records[:5]), strict=True):
        assert all(np.array_equal(a[m], b[m]) for m in a)
    pd.testing.assert_frame_equal(feat.clinical(records[:5]), again.clinical(records[:5]))


def test_jobs_cover_every_fold_network_and_seed(problem) -> None:  # type: ignore[no-untyped-def]
    prob, _, _ = problem
    keys = [j.key for j in prob.jobs]
    assert keys == ["fold_0/umpsnet/all/seed_0", "fold_0/snn-genomic/AAA/seed_0", "fold_0/snn-genomic/BBB/seed_0",
                    "fold_0/baselines", "fold_1/umpsnet/all/seed_0", "fold_1/snn-genomic/AAA/seed_0",
                    "fold_1/snn-genomic/BBB/seed_0", "fold_1/baselines"]
    split = prob.split_manifest
    for k in (0, 1):  # a fold's test patients are never its train or valid ones
        fold = split[split["fold"] == k]
        assert not set(fold.loc[fold["split"] == "test", "id"]) & set(fold.loc[fold["split"] != "test", "id"])
    assert set(split.loc[split["split"] == "test", "id"]) == set(split["id"])  # every patient tested once


@pytest.fixture(scope="module")
def finished(problem, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    _, root, cache = problem
    out = tmp_path_factory.mktemp("run")
    cfg = _small_cfg(genomic_only=False)  # the SNN baseline is exercised by the slow real-data test
    metrics = run_recipe(RECIPE, cfg, out_dir=out, data_dir=root, cache_dir=cache, progress=False)
    return out, metrics, cfg, root, cache


def test_runner_finds_the_planted_signal(finished) -> None:  # type: ignore[no-untyped-def]
    out, metrics, _, _, _ = finished
    models = metrics["models"]
    assert set(models) == {"umpsnet", "cox-clinical", "kaplan-meier"}
    assert metrics["task"] == "survival" and metrics["primary_metric"] == "c_index_mean"
    ours = models["umpsnet"]["splits"]["test"]
    assert ours["c_index_mean"]["mean"] > 0.6, ours["c_index_mean"]  # the planted gene + stage signal
    for c in ("aaa", "bbb"):
        s = ours[f"c_index_{c}"]
        assert s["mean"] > 0.55, (c, s)
        assert s["ci_low"] <= s["mean"] <= s["ci_high"] and len(s["per_fold"]) == 2
    assert models["kaplan-meier"]["splits"]["test"]["c_index_mean"]["mean"] == pytest.approx(0.5)
    assert set(metrics["subsets"]) == {"AAA", "BBB"}  # each cohort its own table
    assert metrics["subsets"]["AAA"]["umpsnet"]["splits"]["test"]["c_index"] == ours["c_index_aaa"]
    timed = metrics["time_dependent"]
    for name in ("umpsnet", "cox-clinical", "kaplan-meier"):  # sksurv IBS from each model's survival curves
        ibs = timed[name]["ibs_aaa"]
        assert 0.0 < ibs["mean"] < 0.5 and len(ibs["per_fold"]) == 2, (name, ibs)
    assert timed["umpsnet"]["td_auc_bbb"]["mean"] > 0.55
    assert set(metrics["robustness"]) == {"none", "drop:cancer", "drop:genomics", "drop:metadata"}
    assert {c["b"] for c in metrics["comparisons"]} == {"cox-clinical", "kaplan-meier"}
    for name in ("config.json", "split.csv", "predictions.csv", "tables/survival_curves.csv",
                 "tables/train_targets.csv", "artifacts/featurizer.json", "metrics.json", "report.md",
                 "jobs/fold_1/umpsnet/all/seed_0/model.pt"):
        assert (out / name).exists(), name
    assert "c_index_aaa" in (out / "report.md").read_text()


def test_eval_reproduces_metrics_json_exactly(finished) -> None:  # type: ignore[no-untyped-def]
    out = finished[0]
    _, differences = evaluate_run(out)
    assert differences == []
    result = CliRunner().invoke(app, ["eval", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert {"umpsnet", "umpsnet | AAA", "umpsnet vs kaplan-meier"} <= {r["model"] for r in rows}


def test_a_killed_job_is_rerun_and_the_metrics_match(finished, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, metrics, cfg, root, cache = finished
    copy = tmp_path / "killed"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "jobs" / "fold_1" / "umpsnet")  # as if killed while training this job
    (copy / "metrics.json").unlink()
    again = run_recipe(RECIPE, cfg, out_dir=copy, data_dir=root, cache_dir=cache, progress=False)
    assert again["runs"][-1]["jobs_run"] == ["fold_1/umpsnet/all/seed_0"]
    assert _differences(metrics, again) == []
    assert (copy / "predictions.csv").read_bytes() == (out / "predictions.csv").read_bytes()


def test_predict_scores_one_row_per_input_row(finished, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, _, _, _, cache = finished
    example, scored = tmp_path / "example.csv", tmp_path / "scored.csv"
    result = CliRunner().invoke(app, ["predict", str(out), "--example-input", str(example)])
    assert result.exit_code == 0, result.output
    given = pd.read_csv(example)
    assert "survival_months" not in given.columns and len(given) == 5
    result = CliRunner().invoke(app, ["predict", str(out), "--input", str(example), "--output", str(scored),
                                      "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(scored)
    assert list(got["id"]) == list(given["case_id"]) and np.isfinite(got["risk"]).all()
    assert (got["models"] == 2).all()  # 2 folds x 1 seed
    broken = tmp_path / "broken.csv"
    given.assign(metadata="not json").to_csv(broken, index=False)
    bad = CliRunner().invoke(app, ["predict", str(out), "--input", str(broken), "--output", str(scored)])
    assert bad.exit_code != 0 and "metadata" in str(bad.exception)


def test_zero_shot_cohort_through_eval(finished) -> None:  # type: ignore[no-untyped-def]
    """A cohort file the run never saw, through `polymodal eval RUN --data-dir DIR --cohort NAME`."""
    out, _, _, root, cache = finished
    result = CliRunner().invoke(app, ["eval", str(out), "--data-dir", str(root), "--cohort", "CCC",
                                      "--cache-dir", str(cache), "--json"])
    assert result.exit_code == 0, result.output
    shot = json.loads((out / "zero_shot_ccc" / "metrics.json").read_text())
    assert shot["zero_shot"] is True and "never seen in training" in (out / "zero_shot_ccc" / "report.md").read_text()
    c = shot["models"]["umpsnet (zero-shot)"]["splits"]["test"]["c_index"]
    assert c["mean"] > 0.6 and c["ci_low"] < c["mean"] < c["ci_high"]  # the planted signal transfers
    assert shot["models"]["kaplan-meier"]["splits"]["test"]["c_index"]["mean"] == 0.5
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
    metrics = run_recipe(RECIPE, cfg, out_dir=tmp_path / "run", data_dir=DATA, cache_dir=None, progress=False)
    test = metrics["models"]["umpsnet"]["splits"]["test"]
    for c in ("blca", "luad"):
        assert 0.55 < test[f"c_index_{c}"]["mean"] < 0.9
    assert (tmp_path / "run" / "report.md").exists()


def test_step_survival_curves_read_at_any_time() -> None:
    """S = 1 before the first knot, then the value of the last knot at or before t (hand-computed)."""
    from polymodal.tasks.survival_time import step_values as _step_values

    knots = np.array([2.0, 5.0])
    values = np.array([[0.9, 0.4], [0.8, 0.7]])
    got = _step_values(knots, values, np.array([1.0, 2.0, 4.9, 5.0, 9.0]))
    np.testing.assert_allclose(got, [[1.0, 0.9, 0.9, 0.4, 0.4], [1.0, 0.8, 0.8, 0.7, 0.7]])
