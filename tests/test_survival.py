"""Survival: losses against hand values, C-index and baselines, the breast-cancer adapter, and a
learning test on a synthetic cohort with a planted risk."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from sksurv.util import Surv
from torch import nn
from torch.utils.data import DataLoader

from polymodal.baselines.survival import CoxBaseline, KaplanMeierBaseline, survival_targets
from polymodal.data.collate import Collator, FeatureDataset
from polymodal.data.sources import sksurv_breast
from polymodal.errors import DataError
from polymodal.objectives.survival import CoxPartialLikelihood, DiscreteTimeSurvivalNLL, discrete_time_risk
from polymodal.recipes.quickstart import build_network
from polymodal.tasks.survival import (
    SurvivalTask,
    assign_time_bins,
    bootstrap_survival_ci,
    evaluate_survival,
    quantile_time_bins,
    survival_metrics,
)
from polymodal.training.survival_system import SurvivalSystem
from polymodal.training.trainer import TrainConfig, make_trainer, seed_everything


@pytest.fixture
def one_thread() -> Iterator[None]:
    # Tiny matrices: extra intra-op threads only add contention on a busy CI machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- losses


def test_cox_hand_value_no_ties() -> None:
    # times 1, 2, 3; events at 1 and 3; exp(risk) = 1, 2, 3.
    # event at t=1: risk set {1,2,3}: 0 - log 6; event at t=3: risk set {3}: r - r = 0.
    risk = torch.tensor([0.0, math.log(2), math.log(3)])
    loss = CoxPartialLikelihood()(risk, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.0, 1.0]))["cox"]
    assert loss.item() == pytest.approx(math.log(6) / 2, rel=1e-6)


def test_cox_breslow_ties_and_order_invariance() -> None:
    # two events tied at t=1 both see the full risk set (Breslow): -[(0 - log 6) + (log 2 - log 6)] / 2
    risk = torch.tensor([0.0, math.log(2), math.log(3)])
    time = torch.tensor([1.0, 1.0, 2.0])
    event = torch.tensor([1.0, 1.0, 0.0])
    expected = (2 * math.log(6) - math.log(2)) / 2
    assert CoxPartialLikelihood()(risk, time, event)["cox"].item() == pytest.approx(expected, rel=1e-6)
    perm = torch.tensor([2, 0, 1])
    shuffled = CoxPartialLikelihood()(risk[perm], time[perm], event[perm])["cox"]
    assert shuffled.item() == pytest.approx(expected, rel=1e-6)


def test_cox_no_events_is_zero_with_grad() -> None:
    risk = torch.randn(4, requires_grad=True)
    loss = CoxPartialLikelihood()(risk, torch.arange(4.0), torch.zeros(4))["cox"]
    assert loss.item() == 0.0
    loss.backward()
    assert risk.grad is not None and torch.equal(risk.grad, torch.zeros(4))


def test_cox_gradient_pushes_early_event_up() -> None:
    risk = torch.zeros(3, requires_grad=True)
    CoxPartialLikelihood()(risk, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.0, 0.0]))["cox"].backward()
    assert risk.grad is not None and risk.grad[0] < 0 < risk.grad[1]


def test_discrete_time_nll_hand_value() -> None:
    # hazards h0 = 0.2, h1 = 0.75 for every sample (logit = log(h / (1 - h))).
    logits = torch.tensor([[math.log(0.25), math.log(3.0)]]).repeat(3, 1)
    bins = torch.tensor([1, 1, 0])
    event = torch.tensor([1.0, 0.0, 1.0])
    terms = [
        -math.log(0.8) - math.log(0.75),  # event in bin 1: survived bin 0, then the event
        -math.log(0.8 * 0.25),  # censored in bin 1: survived through bin 1
        -math.log(0.2),  # event in bin 0
    ]
    nll = DiscreteTimeSurvivalNLL()(logits, bins, event)["nll"]
    assert nll.item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    uncensored = [terms[0], 0.0, terms[2]]
    weighted = DiscreteTimeSurvivalNLL(alpha=0.4)(logits, bins, event)["nll"]
    assert weighted.item() == pytest.approx(0.6 * sum(terms) / 3 + 0.4 * sum(uncensored) / 3, rel=1e-6)


def test_discrete_time_risk_orders_curves() -> None:
    early, late = torch.tensor([[2.0, 2.0]]), torch.tensor([[-2.0, -2.0]])
    assert discrete_time_risk(early).item() > discrete_time_risk(late).item()
    with pytest.raises(ValueError, match="bin indices"):
        DiscreteTimeSurvivalNLL()(torch.zeros(2, 3), torch.tensor([0, 3]), torch.ones(2))


# --------------------------------------------------------------------------- metrics and protocol


def test_c_index_hand_example() -> None:
    time, event = [1, 2, 3, 4], [1, 1, 0, 1]
    # comparable pairs (event i, later j): (1,2) (1,3) (1,4) (2,3) (2,4); only (2,3) is discordant.
    assert survival_metrics(time, event, [4, 2, 3, 1])["c_index"] == pytest.approx(4 / 5)
    # a tied risk counts one half
    assert survival_metrics(time, event, [4, 2, 2, 1])["c_index"] == pytest.approx(4.5 / 5)
    assert math.isnan(survival_metrics(time, [0, 0, 0, 0], [4, 2, 3, 1])["c_index"])


def test_evaluate_survival_schema_and_ci() -> None:
    rng = np.random.default_rng(0)
    n = 60
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    event = rng.random(n) < 0.7
    seeds = [risk + 0.1 * rng.normal(size=n) for _ in range(3)]
    res = evaluate_survival(time, event, seeds, time, event, seeds, n_boot=200)
    test = res["splits"]["test"]["c_index"]
    assert set(res) >= {"splits", "n", "seeds", "bootstrap"} and res["seeds"] == 3
    assert len(test["per_seed"]) == 3 and test["ci_low"] <= test["mean"] <= test["ci_high"]
    assert test["mean"] > 0.6
    assert bootstrap_survival_ci(time, event, seeds, n_boot=200) == (test["ci_low"], test["ci_high"])
    with pytest.raises(ValueError, match="per-seed"):
        evaluate_survival(time, event, risk, time, event, [risk])


def _table(rows: list[dict]) -> pd.DataFrame:
    """Long predictions rows with the common columns' defaults."""
    base = {"kind": "recipe", "selection": "valid", "fold": 0, "seed": 0, "condition": "none", "subset": "all"}
    return pd.DataFrame([{**base, **r} for r in rows])


def _rows(model: str, split: str, time, event, risk, **kw) -> list[dict]:  # type: ignore[no-untyped-def]
    return [{"model": model, "split": split, "id": f"p{i}", "time": t, "event": e, "risk": r, **kw}
            for i, (t, e, r) in enumerate(zip(time, event, risk, strict=True))]


def test_survival_task_hand_value_and_the_quickstart_bootstrap() -> None:
    """C-index of the hand example; per-seed mean and CI equal evaluate_survival's (one group: same draws)."""
    time, event = [1, 2, 3, 4], [1, 1, 0, 1]
    rows = _rows("m", "valid", time, event, [4, 2, 3, 1]) + _rows("m", "test", time, event, [4, 2, 3, 1])
    rows += _rows("m", "valid", time, event, [4, 2, 2, 1], seed=1)
    rows += _rows("m", "test", time, event, [4, 2, 2, 1], seed=1)
    metrics = SurvivalTask(headline="m", selections=("valid",), n_boot=200).evaluate(_table(rows))
    test = metrics["models"]["m"]["splits"]["test"]["c_index"]
    assert test["per_seed"] == pytest.approx([4 / 5, 4.5 / 5]) and test["mean"] == pytest.approx(0.85)
    expected = evaluate_survival(time, event, [[4, 2, 3, 1], [4, 2, 2, 1]], time, event,
                                 [[4, 2, 3, 1], [4, 2, 2, 1]], n_boot=200, seed=0)["splits"]["test"]["c_index"]
    assert (test["ci_low"], test["ci_high"]) == (expected["ci_low"], expected["ci_high"])


def test_survival_task_bootstrap_is_paired_across_models() -> None:
    """Two models ranking patients identically get identical CIs and a paired difference of exactly 0
    (issue 11: a fresh resample per model gave them different CIs); the planted risk beats noise."""
    rng = np.random.default_rng(1)
    n = 80
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    event = (rng.random(n) < 0.7).astype(int)
    noisy = rng.normal(size=n)  # no information
    rows = []
    for fold in (0, 1):
        part = slice(0, n // 2) if fold == 0 else slice(n // 2, n)
        for name, r in (("a", risk), ("b", 3 * risk + 1), ("c", noisy)):
            for split in ("valid", "test"):
                rows += [{**row, "id": f"{fold}-{row['id']}"} for row in
                         _rows(name, split, time[part], event[part], r[part], fold=fold, kind="baseline")]
    metrics = SurvivalTask(headline="a", selections=("valid",), n_boot=300, ensemble=True).evaluate(_table(rows))
    a, b = (metrics["models"][m]["splits"]["test"]["c_index"] for m in ("a", "b"))
    assert a == b and len(a["per_fold"]) == 2
    comp = {c["b"]: c for c in metrics["comparisons"]}
    assert comp["b"]["mean"] == 0 and comp["b"]["ci_low"] == comp["b"]["ci_high"] == 0 and comp["b"]["p_value"] == 1
    assert comp["c"]["mean"] > 0.1 and comp["c"]["ci_low"] > 0  # the planted risk beats noise, paired
    assert set(metrics["models"]["a"]["risk_groups"]["all"]) == {"n_high", "n_low", "logrank_p"}


def test_survival_task_cohorts_fold_ensembles_and_errors() -> None:
    """c_index_<cohort> per cohort and their mean; a fold's ensemble is the mean standardised risk."""
    rng = np.random.default_rng(2)
    rows = []
    for cohort in ("X", "Y"):
        for fold in (0, 1):
            t, e = rng.exponential(size=20), (rng.random(20) < 0.6).astype(int)
            for seed in (0, 1):
                for split in ("valid", "test"):
                    rows += [{**row, "id": f"{cohort}{fold}{row['id']}"} for row in
                             _rows("m", split, t, e, rng.normal(size=20) * (seed + 1), fold=fold, seed=seed,
                                   subset=cohort)]
    table = _table(rows)
    metrics = SurvivalTask(headline="m", n_boot=50, ensemble=True).evaluate(table)
    test = metrics["models"]["m"]["splits"]["test"]
    assert metrics["primary_metric"] == "c_index_mean" and set(metrics["subsets"]) == {"X", "Y"}
    assert test["c_index_mean"]["per_fold"] == pytest.approx(np.mean([test["c_index_x"]["per_fold"],
                                                                      test["c_index_y"]["per_fold"]], axis=0))
    part = table[(table["subset"] == "X") & (table["fold"] == 1)]
    centred = []
    for seed in (0, 1):  # standardised on the seed's own validation rows
        v = part[(part["seed"] == seed) & (part["split"] == "valid")]["risk"]
        centred.append((part[(part["seed"] == seed) & (part["split"] == "test")]["risk"].to_numpy() - v.median())
                       / v.std())
    first = part[(part["seed"] == 0) & (part["split"] == "test")]
    expected = survival_metrics(first["time"], first["event"], np.mean(centred, axis=0))["c_index"]
    assert test["c_index_x"]["per_fold"][1] == pytest.approx(expected)
    bad = table.copy()
    bad.loc[5, "event"] = 2
    with pytest.raises(DataError, match="event must be 0 or 1") as err:
        SurvivalTask(headline="m").evaluate(bad)
    assert err.value.row == 6


def test_quantile_time_bins() -> None:
    time = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    event = np.array([1, 1, 1, 1, 0])
    edges = quantile_time_bins(time, event, 2)
    assert edges[0] == 0 and np.isinf(edges[-1]) and edges[1] == pytest.approx(2.5)
    assert assign_time_bins(time, edges).tolist() == [0, 0, 1, 1, 1]


# --------------------------------------------------------------------------- baselines


def _cohort(n: int, seed: int, f: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Features whose first column drives an exponential hazard; random censoring."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    t_event = rng.exponential(np.exp(-1.5 * x[:, 0]))
    t_cens = rng.exponential(2.0, size=n)
    return x, np.column_stack([np.minimum(t_event, t_cens), t_event <= t_cens])


def test_kaplan_meier_is_constant_half() -> None:
    x, y = _cohort(50, 0)
    km = KaplanMeierBaseline().fit(x, y)
    risk = km.predict(x)
    assert np.all(risk == risk[0])
    assert survival_metrics(y[:, 0], y[:, 1], risk)["c_index"] == 0.5
    structured = Surv.from_arrays(event=y[:, 1].astype(bool), time=y[:, 0])
    assert np.allclose(survival_targets(structured)[0], y[:, 0])


def test_cox_baseline_learns_and_selects_on_validation() -> None:
    x, y = _cohort(300, 1)
    xv, yv = _cohort(100, 2)
    cox = CoxBaseline(penalizer=(0.01, 1.0, 100.0)).fit(x, y, xv, yv)
    assert set(cox.validation_c_index_) == {0.01, 1.0, 100.0}
    assert cox.validation_c_index_[cox.best_penalizer_] == max(cox.validation_c_index_.values())
    xt, yt = _cohort(100, 3)
    assert survival_metrics(yt[:, 0], yt[:, 1], cox.predict(xt))["c_index"] > 0.7
    with pytest.raises(ValueError, match="X_valid"):
        CoxBaseline(penalizer=(0.1, 1.0)).fit(x, y)


# --------------------------------------------------------------------------- the breast-cancer adapter


def test_breast_records_and_saved_split(tmp_path) -> None:  # type: ignore[no-untyped-def]
    records = sksurv_breast.load_records()
    assert len(records) == 198
    r = records[0]
    assert r.inputs["genes"].shape == (76,) and set(r.inputs["clinical"]) == {"age", "er", "grade", "size"}
    splits = sksurv_breast.load_splits(tmp_path / "split.json", seed=0)
    assert splits.sizes() == {"train": 118, "valid": 40, "test": 40}
    for recs in (splits.train, splits.valid, splits.test):  # stratified: about a quarter have events
        assert 0.2 < np.mean([rec.target[1] for rec in recs]) < 0.33
    saved = json.loads((tmp_path / "split.json").read_text())
    again = sksurv_breast.load_splits(tmp_path / "split.json", seed=99)  # the saved split wins over the seed
    assert [rec.id for rec in again.test] == saved["test"] == [rec.id for rec in splits.test]


# --------------------------------------------------------------------------- learning


def _token_cohort(n: int, seed: int) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Two modalities of one token each; the planted risk is a[0] + b[0]."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 6)), rng.normal(size=(n, 4))
    risk = a[:, 0] + b[:, 0]
    t_event = rng.exponential(np.exp(-risk))
    t_cens = rng.exponential(3.0, size=n)
    y = np.column_stack([np.minimum(t_event, t_cens), t_event <= t_cens])
    feats = [{"a": a[i : i + 1].astype(np.float32), "b": b[i : i + 1].astype(np.float32)} for i in range(n)]
    return feats, y


def test_network_learns_planted_risk(tmp_path, one_thread) -> None:  # type: ignore[no-untyped-def]
    seed_everything(0)
    data = {
        name: FeatureDataset(*_token_cohort(n, s))
        for name, n, s in (("train", 400, 0), ("valid", 150, 1), ("test", 150, 2))
    }
    collator = Collator(["a", "b"])
    model = build_network({"a": 6, "b": 4}, ["a", "b"], dim=8, dropout=0.0)
    system = SurvivalSystem(model, lr=1e-2)
    cfg = TrainConfig(max_epochs=40, patience=10, batch_size=128, progress=False)
    trainer = make_trainer(tmp_path, cfg, monitor="val_c_index", mode="max")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(
            system,
            DataLoader(data["train"], batch_size=128, shuffle=True, collate_fn=collator),
            DataLoader(data["valid"], batch_size=256, collate_fn=collator),
        )
    assert trainer.callback_metrics["val_c_index"] > 0.7
    model.eval()
    with torch.no_grad():
        tokens, targets = collator([data["test"][i] for i in range(len(data["test"]))])
        risk = model(tokens).logits.numpy()
    assert survival_metrics(targets[:, 0].numpy(), targets[:, 1].numpy(), risk)["c_index"] > 0.75


def test_system_trains_discrete_time_head() -> None:
    feats, y = _token_cohort(32, 3)
    edges = quantile_time_bins(y[:, 0], y[:, 1], 4)
    targets = np.column_stack([y, assign_time_bins(y[:, 0], edges)])
    tokens, target_tensor = Collator(["a", "b"])(list(zip(feats, targets, strict=True)))
    model = build_network({"a": 6, "b": 4}, ["a", "b"], dim=8, dropout=0.0)
    model.head = nn.Linear(model.fusion.out_dim, 4)  # (B, 4) hazard logits
    system = SurvivalSystem(model, DiscreteTimeSurvivalNLL())
    system.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no Trainer attached
    loss = system.training_step((tokens, target_tensor), 0)
    loss.backward()
    assert torch.isfinite(loss) and model.head.weight.grad is not None
