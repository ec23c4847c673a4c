"""NLA-MMR: the model with and without each modality, vocabularies fitted per training fold (the
leak fix), a planted-signal run through the one runner, the CLI on the MIMIC-IV layout,
registration and docs."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.baselines.medication import MostFrequentSet
from polymodal.config import apply_overrides
from polymodal.data.sources.drug_vocab import load_drug_vocab
from polymodal.data.sources.mimic import build_cohort, read_mimic3
from polymodal.encoders.text import HashingTextEncoder
from polymodal.errors import ConfigError
from polymodal.objectives.ddi import MedicationObjective
from polymodal.recipes.nla_mmr import DROPPABLE, RECIPE, NlaMmrConfig, NlaMmrModel
from polymodal.runs import evaluate_run, run_recipe
from polymodal.runs.medication_jobs import patient_folds
from polymodal.tasks.medication import UNKNOWN, collate, make_problem, medication_views
from polymodal.tasks.multilabel import choose_set_threshold, per_visit_metrics
from tests.mimic_synthetic import write_drug_tables, write_mimic3, write_mimic4

DOCS = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
FAST = {"text_model": "hashing", "folds": 3, "repeats": 1, "train": {"max_epochs": 30, "patience": 8, "lr": 5e-3},
        "protocol": {"seeds": 1, "n_boot": 50}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mimic")
    write_drug_tables(root)
    write_mimic3(root / "mimic_iii_demo_1.4", n_patients=36)
    write_mimic4(root / "mimic-iv-2.2", n_patients=24)
    return root


def _problem(data_dir: Path, history: bool = True):  # type: ignore[no-untyped-def]
    vocab = load_drug_vocab(data_dir)
    cohort = build_cohort(read_mimic3(data_dir / "mimic_iii_demo_1.4"), vocab, "safedrug")
    problem = make_problem(cohort, vocab, history=history)
    enc = HashingTextEncoder(dim=32)
    from polymodal.encoders.molecule import MorganEncoder

    views = medication_views(problem.labels, vocab, enc.encode, MorganEncoder(n_bits=64).encode)
    code_text = np.vstack([np.zeros((1, 32), np.float32), enc.encode(problem.code_text)])
    return problem, views, code_text


@pytest.mark.parametrize("drop", [None, *DROPPABLE])
def test_forward_backward_with_and_without_each_modality(data_dir: Path, drop: str | None) -> None:
    problem, views, code_text = _problem(data_dir)
    model = NlaMmrModel(code_text, views, dim=16, heads=2)
    batch, y = collate(problem.samples[:6])
    assert batch.visit_mask.shape[1] >= 2  # history is there
    logits, aux = model(batch, frozenset({drop}) if drop else frozenset())
    assert logits.shape == (6, len(problem.labels)) and torch.isfinite(logits).all()
    parts = MedicationObjective(torch.as_tensor(problem.ddi), align_weight=0.1)(logits, y, aux)
    parts["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_gamenet_reads_earlier_visits_medications(data_dir: Path) -> None:
    """The dynamic memory: changing the earlier visits' medications moves the scores of visits with a
    history and of no other visit; the loss back-propagates."""
    from polymodal.baselines.medication import GameNet

    problem, _, _ = _problem(data_dir)
    y = problem.targets
    ehr = ((y.T @ y) > 0).astype(np.float32)
    torch.manual_seed(0)
    model = GameNet(len(problem.codes) + 1, ehr, problem.ddi, dim=16).eval()
    batch, target = collate(problem.samples[:8])
    has_history = batch.visit_mask.sum(dim=1) > 1
    assert has_history.any() and (~has_history).any()
    base, _ = model(batch)
    batch.history_meds = 1.0 - batch.history_meds
    moved, _ = model(batch)
    changed = (moved - base).abs().amax(dim=1) > 1e-6
    assert torch.equal(changed, has_history)
    model.train()
    MedicationObjective(torch.as_tensor(problem.ddi))(model(batch)[0], target)["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_patient_folds_never_split_a_patient() -> None:
    groups = np.repeat(np.arange(10), 3)
    folds = patient_folds(groups, 5, seed=0)
    tested = np.concatenate([te for _, _, te in folds])
    assert sorted(tested) == list(range(30))  # each visit tested once
    for tr, va, te in folds:
        parts = [set(groups[i]) for i in (tr, va, te)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])


def test_vocabularies_and_filters_are_fitted_on_the_training_fold_only(data_dir: Path) -> None:
    """A code and a medication that only a test-fold patient has stay out of that fold's vocabularies:
    the code becomes the unknown id, the medication is no label but stays in the visit's true set; the
    top-medication filter counts training visits only."""
    vocab = load_drug_vocab(data_dir)
    cohort = build_cohort(read_mimic3(data_dir / "mimic_iii_demo_1.4"), vocab, "all-admissions", top_meds=None,
                          top_diagnoses=None)
    subjects = sorted(cohort.patients)
    groups = np.array([s for s in subjects for _ in cohort.patients[s]])
    train, _, test = patient_folds(groups, 3, seed=0)[0]
    victim = int(groups[test[0]])
    first = cohort.patients[victim][0]
    cohort.patients[victim][0] = dataclasses.replace(first, diagnoses=(*first.diagnoses, "D9:TESTONLY"),
                                                     medications=(*first.medications, "Z99Z"))
    problem = make_problem(cohort, vocab, history=False, train_subjects=set(groups[train]))
    assert problem.codes[0] == UNKNOWN and "D9:TESTONLY" not in problem.codes
    assert "Z99Z" not in problem.labels
    sample = next(s for s in problem.samples if s.hadm_id == first.hadm_id)
    assert 1 in sample.diagnoses[-1] and "Z99Z" in sample.true_set
    # fitted on every patient (the old, leaking way) the test-only code and medication would be in
    leaky = make_problem(cohort, vocab, history=False)
    assert "D9:TESTONLY" in leaky.codes and "Z99Z" in leaky.labels
    # the top-1 medication is the most frequent among training visits (N02B: every visit has it)
    assert make_problem(cohort, vocab, history=False, train_subjects=set(groups[train]), top_meds=1).labels == ["N02B"]


def test_runner_learns_planted_signal_and_eval_reproduces(data_dir: Path, tmp_path: Path) -> None:
    protocol = {"seeds": 1, "n_boot": 20, "robustness": False, "baselines": False}
    cfg = apply_overrides(NlaMmrConfig, {**FAST, "cohorts": ["all-admissions"], "protocol": protocol})
    metrics = run_recipe(RECIPE, cfg, out_dir=tmp_path / "run", data_dir=data_dir, cache_dir=tmp_path / "cache",
                         progress=False)
    assert metrics is not None
    ours = metrics["models"]["nla-mmr"]["splits"]["test"]
    # the most-frequent set on the same folds, vocabularies fitted on each training fold, validation threshold
    vocab = load_drug_vocab(data_dir)
    cohort = build_cohort(read_mimic3(data_dir / "mimic_iii_demo_1.4"), vocab, "all-admissions", top_meds=None,
                          top_diagnoses=None)
    groups = np.array([s for s in sorted(cohort.patients) for _ in cohort.patients[s]])
    jac, pr = [], []
    for tr, va, te in patient_folds(groups, 3, seed=0):
        problem = make_problem(cohort, vocab, history=False, train_subjects=set(groups[tr]))
        y = problem.targets
        freq = MostFrequentSet().fit(None, y[tr])  # type: ignore[arg-type]
        thr = choose_set_threshold(y[va], freq.predict_proba(va))
        pv = per_visit_metrics(y[te], freq.predict_proba(te), thr, problem.ddi)
        jac += list(pv["jaccard"])
        pr += list(pv["pr_auc"])
    # the planted diagnosis -> medication links are learnt: above the most-frequent set
    assert ours["jaccard"]["mean"] > np.mean(jac) + 0.05
    assert ours["pr_auc"]["mean"] > np.mean(pr)
    assert ours["pr_auc"]["ci_low"] <= ours["pr_auc"]["mean"] <= ours["pr_auc"]["ci_high"]
    assert metrics["bootstrap_unit"] == "patient" and metrics["task"] == "multilabel"
    assert evaluate_run(tmp_path / "run")[1] == []


def test_cli_runs_mimic4_layout(data_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from polymodal.cli import app

    args = ["run", "nla-mmr", "--source", "mimic4", "--data-dir", str(data_dir / "mimic-iv-2.2"),
            "--drug-dir", str(data_dir), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"),
            "--json", "--cohorts", '["all-admissions"]', "--text-model", "hashing", "--folds", "3", "--repeats", "1",
            "--seeds", "1", "--max-epochs", "20", "--protocol", json.dumps({"n_boot": 20, "baselines": False,
                                                                             "robustness": False})]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]  # stdout holds only the JSON document
    assert {r["model"] for r in rows} == {"nla-mmr"}
    assert "MIMIC-IV" in (tmp_path / "run" / "report.md").read_text()


def test_registered_config_and_docs() -> None:
    assert RECIPE.name == "nla-mmr" and RECIPE.paper.arxiv_id == "2501.07166"
    cfg = NlaMmrConfig()
    assert NlaMmrConfig.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ConfigError, match="unknown option"):
        apply_overrides(NlaMmrConfig, {"no_such_option": 1})
    docs = DOCS.read_text()
    assert "`nla-mmr`" in docs and "2501.07166" in docs
    for published in RECIPE.published:
        assert f"{published.value:.3f}" in docs


DATA = Path(os.environ.get("POLYMODAL_DATA", "/work/shared/data"))


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "mimic_iii_demo_1.4").is_dir(), reason="MIMIC-III demo not present")
def test_demo_end_to_end_small(tmp_path: Path) -> None:
    """The real demo through the one runner with MiniLM (1 repeat, 1 seed, 3 folds, at most 15 epochs,
    no literature baselines: about a minute), then `polymodal eval` on its run folder."""
    cfg = apply_overrides(NlaMmrConfig, {"folds": 3, "repeats": 1, "train": {"max_epochs": 15},
                                         "protocol": {"seeds": 1, "n_boot": 100, "baselines": False}})
    metrics = run_recipe(RECIPE, cfg, out_dir=tmp_path / "run", data_dir=DATA, progress=False)
    assert metrics is not None
    assert metrics["dataset"]["sizes"]["safedrug: patients"] == 13
    assert metrics["dataset"]["sizes"]["all-admissions: visits"] == 122
    assert metrics["subsets"]["all-admissions"]["nla-mmr"]["splits"]["test"]["pr_auc"]["mean"] > 0.5
    assert evaluate_run(tmp_path / "run")[1] == []


def test_molecule_graphs_follow_safedrug_featurisation() -> None:
    """Ethanol with hydrogens: 9 atoms, 8 bonds, 5 radius-1 fingerprints (CH3 carbon, CH2 carbon, O,
    H on carbon, H on oxygen); methane adds its carbon only; a medication without molecules gets zeros."""
    from polymodal.encoders.molecule_graph import MolecularGraphNetwork, molecule_graphs

    graphs = molecule_graphs([["CCO"], ["C", "not a smiles"], []])
    assert len(graphs.fingerprints) == 9 + 5 and graphs.edges.shape == (2, 2 * (8 + 4))
    assert len(set(graphs.fingerprints[:9].tolist())) == 5 and graphs.n_fingerprints == 6
    np.testing.assert_array_equal(graphs.projection, [[1, 0], [0, 1], [0, 0]])
    net = MolecularGraphNetwork(graphs, dim=8)
    out = net()
    assert out.shape == (3, 8) and torch.equal(out[2], torch.zeros(8))
    out[:2].sum().backward()
    assert net.embed.weight.grad is not None and net.embed.weight.grad.abs().sum() > 0  # trained end to end
