"""Run a survival recipe over K cross-validation folds under the evaluation protocol.

For each fold the training part is split again (stratified by cohort and event) into an inner
training set and an inner validation set: the featuriser, time bins, early stopping, checkpoint
choice and every baseline's penalty use those only, and the fold's held-out part is scored once.
Each network is trained pan-cancer (one model on every cohort) or one model per cohort; baselines
(Kaplan-Meier, a penalised Cox on clinical variables per cohort) are fitted on the same records.

Metrics are per cohort: the C-index of each fold's model, the ensemble of its seeds (the mean of
the seeds' risks, each standardised on the inner validation split), summarised as mean and std over
folds (the MCAT / UMPSNet protocol) with a 95% percentile bootstrap CI of the fold mean (patients
resampled within each fold, stratified by event); ``c_index_mean`` averages the cohorts (UMPSNet's
headline). A time-dependent AUC and an integrated Brier score (scikit-survival; the IBS wherever a
model gives survival curves) are added, as are Kaplan-Meier risk groups split at each fold's
inner-validation median risk with a log-rank test (lifelines), and a missing-modality table for the
headline network.

A rerun skips every finished (fold, network, seed) and the run folder gets config.json,
metrics.json, predictions.csv, report.md and Kaplan-Meier plots.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lifelines.statistics import logrank_test
from sklearn.model_selection import train_test_split
from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score
from sksurv.util import Surv
from torch import nn
from torch.utils.data import DataLoader

from polymodal.baselines.survival import CoxBaseline
from polymodal.data.collate import Collator, FeatureDataset
from polymodal.data.schema import Record
from polymodal.data.splits import SkipReport
from polymodal.io import atomic_path, write_json
from polymodal.objectives.survival import CoxPartialLikelihood, DiscreteTimeSurvivalNLL
from polymodal.tasks.survival import _c_index, assign_time_bins, quantile_time_bins
from polymodal.training.survival_system import SurvivalSystem, risk_from_logits

__all__ = ["GuidedSurvivalSystem", "NetworkSpec", "SurvivalCVProblem", "inner_split", "run_survival_cv"]


class SurvivalFeaturizer(Protocol):
    modalities: list[str]

    def fit(self, records: Sequence[Record]) -> SurvivalFeaturizer: ...
    def transform(self, records: Sequence[Record]) -> list[dict[str, np.ndarray]]: ...
    def clinical(self, records: Sequence[Record]) -> pd.DataFrame: ...


@dataclass(frozen=True)
class NetworkSpec:
    """A network of the run: what it sees, how it is built, and whether it is trained per cohort.

    ``build(featurizer, modalities, n_groups) -> MultimodalModel`` whose logits are (B, K) hazards.
    """

    name: str
    kind: str  # "recipe" or "baseline"
    modalities: tuple[str, ...]
    build: Callable[[Any, tuple[str, ...], int], nn.Module]
    per_cohort: bool = False
    robustness: bool = False  # score the test fold with each modality dropped
    seeds: int | None = None  # training seeds of this network (None: the run's seeds)


@dataclass
class SurvivalCVProblem:
    name: str
    records: list[Record]  # cohort in meta["cohort"], target (time, event)
    folds: list[tuple[list[str], list[str]]]
    make_featurizer: Callable[[Sequence[Record]], SurvivalFeaturizer]  # (records of every cohort) -> unfitted
    networks: list[NetworkSpec]
    description: str = ""
    files: dict[str, str] = field(default_factory=dict)
    version: str = ""
    skips: SkipReport = field(default_factory=SkipReport)
    published: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class GuidedSurvivalSystem(SurvivalSystem):
    """SurvivalSystem plus a cross-entropy on the model's ``group_logits`` (UMPSNet's data loss), and
    a validation C-index averaged over groups.

    Targets are (B, 4) ``[time, event, bin, group]``.
    """

    def __init__(self, model: nn.Module, objective: nn.Module, *, group_weight: float = 0.0, lr: float = 2e-4,
                 weight_decay: float = 1e-5) -> None:
        super().__init__(model, objective, lr=lr, weight_decay=weight_decay)
        self.group_weight = group_weight

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
        tokens, targets = batch
        out = self.model(tokens)
        parts = self._losses(out.logits, targets)
        if self.group_weight > 0 and "group_logits" in out.aux:
            parts["group"] = self.group_weight * F.cross_entropy(out.aux["group_logits"], targets[:, 3].long())
        loss = torch.stack(list(parts.values())).sum()
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(targets))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:  # type: ignore[no-untyped-def]
        tokens, targets = batch
        risk = risk_from_logits(self.model(tokens).logits)  # (B,)
        self._val.append(torch.stack([targets[:, 0], targets[:, 1], risk.float(), targets[:, 3]], dim=1).detach())

    def on_validation_epoch_end(self) -> None:
        """``val_c_index`` = mean over groups of the within-group C-index.

        A C-index pooled over cancers would also reward ranking the cancers against each other
        (their baseline hazards differ), which is not what the per-cohort test metric measures.
        """
        if not self._val:
            return
        rows = torch.cat(self._val)  # (N_local, 4)
        if self.trainer.world_size > 1:
            rows = self.all_gather(rows).reshape(-1, 4)
        t, e, r, g = rows.cpu().double().numpy().T
        values = [_c_index(t[g == k], e[g == k].astype(bool), r[g == k]) for k in np.unique(g)]
        c = float(np.nanmean(values)) if np.isfinite(values).any() else 0.5
        self.log("val_c_index", c, prog_bar=True, sync_dist=False)
        self._val = []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel for every parameter; the per-tensor loop of the default AdamW took a
        # third of a training step on CPU (the SNN has ~1M parameters in many small tensors).
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True)


def _targets(records: Sequence[Record], edges: np.ndarray, groups: Mapping[str, int]) -> np.ndarray:
    t = np.array([float(r.target[0]) for r in records])
    e = np.array([float(r.target[1]) for r in records])
    g = np.array([groups.get(str(r.meta["cohort"]), 0) for r in records], dtype=float)
    return np.stack([t, e, assign_time_bins(t, edges).astype(float), g], axis=1)  # (N, 4)


@torch.no_grad()
def _survival(model: nn.Module, data: FeatureDataset, collator: Collator) -> np.ndarray:
    """(N, K) discrete-time survival S_k = P(T beyond bin k) from (B, K) hazard logits; (N, 0) for a Cox head."""
    model.eval()
    out = []
    for tokens, _ in DataLoader(data, batch_size=256, shuffle=False, collate_fn=collator):
        logits = model(tokens).logits
        if logits.ndim != 2:
            return np.zeros((len(data), 0))
        out.append(torch.cumprod(torch.sigmoid(-logits), dim=-1).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


@torch.no_grad()
def _risk(model: nn.Module, data: FeatureDataset, collator: Collator, drop: str | None = None) -> np.ndarray:
    model.eval()
    out = []
    for tokens, _ in DataLoader(data, batch_size=256, shuffle=False, collate_fn=collator):
        tokens = {m: (t.drop() if m == drop else t) for m, t in tokens.items()}
        out.append(risk_from_logits(model(tokens).logits).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def _fit_network(spec: NetworkSpec, feat: SurvivalFeaturizer, parts: Mapping[str, list[Record]], seed: int,
                 cfg: Any, seed_dir: Path, groups: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Train one seed on parts["train"] with early stopping on parts["valid"]; risks of valid and test."""
    from polymodal.training.trainer import fit_resumable, make_trainer, seed_everything

    done = seed_dir / "risks.npz"
    if done.exists():
        with np.load(done) as saved:
            return {k: saved[k] for k in saved.files}
    seed_everything(seed)
    tr = parts["train"]
    edges = quantile_time_bins([r.target[0] for r in tr], [r.target[1] for r in tr], cfg.n_bins)
    data = {p: FeatureDataset([{m: f[m] for m in spec.modalities} for f in feat.transform(recs)],
                              _targets(recs, edges, groups)) for p, recs in parts.items()}
    model = spec.build(feat, spec.modalities, max(1, len(groups)))
    # "cox": one log-hazard per patient, risk sets within the batch; "nll": MCAT's discrete-time NLL.
    cox = getattr(cfg, "loss", "nll") == "cox"
    objective = CoxPartialLikelihood() if cox else DiscreteTimeSurvivalNLL(cfg.alpha_surv)
    system = GuidedSurvivalSystem(model, objective, group_weight=cfg.group_weight,
                                  lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    collator = Collator(spec.modalities)
    loader = DataLoader(data["train"], batch_size=cfg.train.batch_size, shuffle=True, collate_fn=collator,
                        generator=torch.Generator().manual_seed(seed))
    valid = DataLoader(data["valid"], batch_size=256, shuffle=False, collate_fn=collator)
    trainer = make_trainer(seed_dir, cfg.train, monitor="val_c_index", mode="max")
    t0 = time.perf_counter()
    fit_resumable(trainer, system, loader, valid, seed_dir)
    result = {"seconds": np.array(time.perf_counter() - t0), "epochs": np.array(trainer.current_epoch),
              "edges": edges}
    for p in ("valid", "test"):
        result[p] = _risk(model, data[p], collator)
    result["test:survival"] = _survival(model, data["test"], collator)
    if spec.robustness:
        for m in spec.modalities:
            result[f"test:drop:{m}"] = _risk(model, data["test"], collator, drop=m)
    with atomic_path(seed_dir / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    with atomic_path(done) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **result)
    for ckpt in (seed_dir / "checkpoints").glob("*.ckpt"):  # model.pt keeps the best weights
        ckpt.unlink()
    return result


def inner_split(records: Sequence[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Stratified (cohort x event) split of a training fold into inner train and inner validation."""
    strata = [f"{r.meta['cohort']}:{int(r.target[1])}" for r in records]
    idx = np.arange(len(records))
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strata)
    return [records[i] for i in sorted(tr)], [records[i] for i in sorted(va)]


def _td_auc(train: np.ndarray, test: np.ndarray, risk: np.ndarray) -> float:
    """Mean cumulative/dynamic AUC at the 25/50/75% quantiles of test event times (sksurv), NaN if undefined."""
    ev = test[:, 0][(test[:, 1] > 0) & (test[:, 0] < train[:, 0].max()) & (test[:, 0] >= test[:, 0].min())]
    if ev.size < 3:
        return float("nan")
    times = np.unique(np.quantile(ev, [0.25, 0.5, 0.75]))
    times = times[(times > test[:, 0].min()) & (times < test[:, 0].max())]
    try:
        _, mean_auc = cumulative_dynamic_auc(Surv.from_arrays(train[:, 1] > 0, train[:, 0]),
                                             Surv.from_arrays(test[:, 1] > 0, test[:, 0]), risk, times)
    except ValueError:
        return float("nan")
    return float(mean_auc)


def _step_values(knots: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Right-continuous step curves: (N, T) values at ``times`` of curves equal to ``values[:, j]`` from
    ``knots[j]`` on and 1 before ``knots[0]``."""
    j = np.searchsorted(knots, times, side="right") - 1  # (T,)
    padded = np.concatenate([np.ones((len(values), 1)), values], axis=1)  # (N, 1 + J)
    return padded[:, j + 1]


def _ibs(train: np.ndarray, test: np.ndarray, curves: np.ndarray, knots: np.ndarray) -> float:
    """Integrated Brier score (sksurv, IPCW) of step survival curves over the 10-80% quantiles of test
    times; NaN where undefined."""
    t = test[:, 0]
    times = np.unique(np.quantile(t, np.linspace(0.1, 0.8, 15)))
    times = times[(times > t.min()) & (times < t.max()) & (times < train[:, 0].max())]
    if times.size < 2 or curves.size == 0:
        return float("nan")
    try:
        return float(integrated_brier_score(Surv.from_arrays(train[:, 1] > 0, train[:, 0]),
                                            Surv.from_arrays(test[:, 1] > 0, test[:, 0]),
                                            _step_values(knots, curves, times), times))
    except ValueError:
        return float("nan")


def _risk_groups(frame: pd.DataFrame) -> dict[str, Any]:
    """Log-rank test of high vs low risk (risk above the fold's inner-validation median)."""
    high = frame["centred_risk"] > 0
    if high.all() or (~high).all():
        return {"n_high": int(high.sum()), "n_low": int((~high).sum()), "logrank_p": None}
    res = logrank_test(frame.loc[high, "time"], frame.loc[~high, "time"], frame.loc[high, "event"],
                       frame.loc[~high, "event"])
    return {"n_high": int(high.sum()), "n_low": int((~high).sum()), "logrank_p": float(res.p_value)}


def _boots(per_fold: Sequence[tuple[np.ndarray, np.ndarray, Sequence[np.ndarray]]], n_boot: int,
           rng: np.random.Generator) -> tuple[list[float], np.ndarray]:
    values = [float(np.mean([_c_index(t, e.astype(bool), r) for r in rs])) for t, e, rs in per_fold]
    boots = np.zeros(n_boot)
    for t, e, rs in per_fold:
        ev = e.astype(bool)
        groups = [np.flatnonzero(ev), np.flatnonzero(~ev)]
        draws = np.concatenate([g[rng.integers(0, g.size, (n_boot, g.size))] for g in groups if g.size], axis=1)
        boots += np.array([np.mean([_c_index(t[d], ev[d], r[d]) for r in rs]) for d in draws]) / len(per_fold)
    return values, boots


def _summary(values: Sequence[float], boots: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    b = boots[np.isfinite(boots)]
    lo, hi = np.quantile(b, [0.025, 0.975]) if b.size else (np.nan, np.nan)
    return {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v, ddof=1)) if v.size > 1 else 0.0,
            "ci_low": float(lo), "ci_high": float(hi), "per_fold": [float(x) for x in v]}


def _standardise(pred: pd.DataFrame) -> pd.DataFrame:
    """``centred_risk`` = (risk - valid_median) / valid_scale (scale 1 where the risk is constant)."""
    scale = pred["valid_scale"].where(pred["valid_scale"] > 0, 1.0).fillna(1.0)
    return pred.assign(centred_risk=(pred["risk"] - pred["valid_median"].fillna(0.0)) / scale)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _cox_clinical(feat: SurvivalFeaturizer, parts: Mapping[str, list[Record]], penalizers: Sequence[float]
                  ) -> dict[str, np.ndarray]:
    tables = {p: feat.clinical(recs) for p, recs in parts.items()}
    keep = [c for c in tables["train"].columns if tables["train"][c].std() > 0]  # a constant column breaks lifelines
    y = {p: np.array([[float(r.target[0]), float(r.target[1])] for r in recs]) for p, recs in parts.items()}
    cox = CoxBaseline(penalizer=tuple(penalizers)).fit(tables["train"][keep], y["train"], tables["valid"][keep],
                                                       y["valid"])
    out = {p: np.log(cox.predict(tables[p][keep])) for p in ("valid", "test")}
    surv = cox.model_.predict_survival_function(cox._frame(tables["test"][keep], cox.columns_))  # (times, N)
    out["test:survival"], out["knots"] = surv.to_numpy().T, surv.index.to_numpy(dtype=float)
    return out


def _kaplan_meier(parts: Mapping[str, list[Record]]) -> dict[str, np.ndarray]:
    """No information: risk 0 for everyone, and the inner-training Kaplan-Meier curve as everyone's survival."""
    from sksurv.nonparametric import kaplan_meier_estimator

    t = np.array([float(r.target[0]) for r in parts["train"]])
    e = np.array([bool(r.target[1]) for r in parts["train"]])
    knots, curve = kaplan_meier_estimator(e, t)[:2]
    out = {p: np.zeros(len(parts[p])) for p in ("valid", "test")}
    out["test:survival"], out["knots"] = np.tile(curve, (len(parts["test"]), 1)), knots
    return out


def run_survival_cv(problem: SurvivalCVProblem, cfg: Any, out_dir: str | Path) -> dict[str, Any]:
    """Train and evaluate every network and baseline on every fold; write the run folder.

    Args:
        problem: records, folds, featuriser factory and networks.
        cfg: a config with ``seeds, split_seed, inner_valid_fraction, n_bins, alpha_surv, group_weight,
            train (TrainConfig), n_boot, cox_penalizers``.
        out_dir: the run folder (an existing one is resumed).

    Returns:
        The metrics dict written to ``metrics.json``.
    """
    from polymodal.experiment import atomic_csv, environment
    from polymodal.quickstart import _runtime
    from polymodal.reports import write_report

    out_dir = Path(out_dir)
    started = time.perf_counter()
    by_id = {r.id: r for r in problem.records}
    cohorts = sorted({str(r.meta["cohort"]) for r in problem.records})
    rows: list[dict[str, Any]] = []
    robust: list[dict[str, Any]] = []
    train_targets: dict[tuple[int, str], np.ndarray] = {}
    timing: dict[str, list[float]] = {}
    kinds = {s.name: s.kind for s in problem.networks}
    headline = next(s for s in problem.networks if s.kind == "recipe")

    # (model, fold, seed, cohort) -> (test ids, knots, (N, J) step survival curves), for the integrated Brier score
    curves: dict[tuple[str, int, int, str], tuple[list[str], np.ndarray, np.ndarray]] = {}

    def add_rows(name: str, k: int, seed: int, parts: Mapping[str, list[Record]], risks: Mapping[str, np.ndarray]):
        if "test:survival" in risks and np.size(risks["test:survival"]):
            # A discrete-time network's S_k holds from the end of bin k, i.e. from edges[k + 1].
            knots = risks["knots"] if "knots" in risks else np.asarray(risks["edges"])[1:]
            cohort = np.array([str(r.meta["cohort"]) for r in parts["test"]])
            for c in np.unique(cohort):
                curves[(name, k, seed, str(c))] = ([r.id for r in parts["test"] if r.meta["cohort"] == c], knots,
                                                   risks["test:survival"][cohort == c])
        for p in ("valid", "test"):
            for r, risk in zip(parts[p], risks[p], strict=True):
                rows.append({"id": r.id, "fold": k, "split": p, "model": name, "seed": seed,
                             "cohort": r.meta["cohort"], "time": float(r.target[0]), "event": int(r.target[1]),
                             "risk": float(risk)})

    with _runtime(cfg.train.threads):
        for k, (train_ids, test_ids) in enumerate(problem.folds):
            train, test = [by_id[i] for i in train_ids], [by_id[i] for i in test_ids]
            inner_tr, inner_va = inner_split(train, cfg.inner_valid_fraction, cfg.split_seed + k)
            fold_dir = out_dir / f"fold_{k}"
            write_json(fold_dir / "split.json", {"train": [r.id for r in inner_tr], "valid": [r.id for r in inner_va],
                                                 "test": [r.id for r in test]})
            feat = problem.make_featurizer(problem.records).fit(inner_tr)
            with atomic_path(fold_dir / "featurizer.pkl") as tmp, open(tmp, "wb") as fh:
                pickle.dump(feat, fh)  # for scoring new cohorts later (zero-shot)
            groups = {c: i for i, c in enumerate(sorted({str(r.meta["cohort"]) for r in inner_tr}))}
            for c in cohorts:
                train_targets[(k, c)] = np.array([[r.target[0], r.target[1]] for r in inner_tr
                                                  if r.meta["cohort"] == c])

            def subset(recs: list[Record], c: str | None) -> list[Record]:
                return [r for r in recs if c is None or r.meta["cohort"] == c]

            for spec in problem.networks:
                for c in (cohorts if spec.per_cohort else [None]):
                    parts = {"train": subset(inner_tr, c), "valid": subset(inner_va, c), "test": subset(test, c)}
                    if not parts["test"] or not parts["valid"]:
                        continue
                    for s in range(spec.seeds or cfg.seeds):
                        where = fold_dir / _slug(spec.name) / (c or "all") / f"seed_{s}"
                        res = _fit_network(spec, feat, parts, s, cfg, where, groups if c is None else {c: 0})
                        timing.setdefault(spec.name, []).append(float(res["seconds"]))
                        add_rows(spec.name, k, s, parts, res)
                        for key in (x for x in res if x.startswith("test:drop:")):
                            for r, risk in zip(parts["test"], res[key], strict=True):
                                robust.append({"id": r.id, "fold": k, "seed": s, "cond": key[5:], "risk": float(risk)})
            for c in cohorts:
                parts = {"train": subset(inner_tr, c), "valid": subset(inner_va, c), "test": subset(test, c)}
                if parts["test"]:
                    add_rows("cox-clinical", k, 0, parts, _cox_clinical(feat, parts, cfg.cox_penalizers))
                    add_rows("kaplan-meier", k, 0, parts, _kaplan_meier(parts))
    kinds.update({"cox-clinical": "baseline", "kaplan-meier": "trivial"})

    pred = pd.DataFrame(rows)
    # Standardise each (model, fold, seed, cohort)'s risks on its inner validation (minus the median,
    # over the std): risk groups (high = above 0) then use a threshold chosen on validation, pooled
    # plots are comparable, and the seeds of one fold average into an ensemble on a common scale.
    keys = ["model", "fold", "seed", "cohort"]
    stats = (pred[pred["split"] == "valid"].groupby(keys)["risk"].agg(valid_median="median", valid_scale="std")
             .reset_index())
    pred = _standardise(pred.merge(stats, on=keys, how="left"))
    rng = np.random.default_rng(0)

    def _fold_ibs(name: str, k: int, c: str, seeds: Sequence[int], ids: list[str], train: np.ndarray,
                  test: np.ndarray) -> float:
        """IBS of the fold's seed ensemble (mean survival curve); NaN without curves (a Cox-loss network)."""
        found = [curves[(name, k, int(s), c)] for s in seeds if (name, k, int(s), c) in curves]
        if not found:
            return float("nan")
        knots = found[0][1]
        rows = [pd.Series(np.arange(len(i)), index=i).loc[ids].to_numpy() for i, _, _ in found]
        mean = np.mean([S[r] for (_, _, S), r in zip(found, rows, strict=True)], axis=0)  # (N, J)
        return _ibs(train, test, mean, knots)

    def evaluate(frame: pd.DataFrame, split: str = "test", td: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        all_values, all_boots = [], []
        for c in cohorts:
            sub = frame[(frame["split"] == split) & (frame["cohort"] == c)]
            per_fold, aucs, ibs = [], [], []
            for k, g in sub.groupby("fold"):
                # The fold's model is the ensemble of its seeds: the mean standardised risk.
                ens = g.pivot_table(index="id", columns="seed", values="centred_risk").mean(1)
                first = g.drop_duplicates("id").set_index("id").loc[ens.index]
                t, e = first["time"].to_numpy(), first["event"].to_numpy()
                per_fold.append((t, e, [ens.to_numpy()]))
                if td:
                    aucs.append(_td_auc(train_targets[(int(k), c)], np.stack([t, e], 1), ens.to_numpy()))
                    ibs.append(_fold_ibs(str(g["model"].iloc[0]), int(k), c, sorted(g["seed"].unique()),
                                         list(ens.index), train_targets[(int(k), c)], np.stack([t, e], 1)))
            if not per_fold:
                continue
            values, boots = _boots(per_fold, cfg.n_boot if split == "test" else 1, rng)
            out[f"c_index_{c.lower()}"] = _summary(values, boots if split == "test" else np.array([np.nan]))
            all_values.append(values)
            all_boots.append(boots)
            if td:
                out[f"td_auc_{c.lower()}"] = {"mean": float(np.nanmean(aucs)), "std": float(np.nanstd(aucs, ddof=1)),
                                              "per_fold": aucs}
                if np.isfinite(ibs).any():
                    out[f"ibs_{c.lower()}"] = {"mean": float(np.nanmean(ibs)), "std": float(np.nanstd(ibs, ddof=1)),
                                               "per_fold": ibs}
        if all_values:  # no CI on the validation split (it is only there to show the selection gap)
            out["c_index_mean"] = _summary(np.mean(all_values, axis=0),
                                           np.mean(all_boots, axis=0) if split == "test" else np.array([np.nan]))
        return out

    models: dict[str, Any] = {}
    for name in dict.fromkeys(pred["model"]):
        sub = pred[pred["model"] == name]
        models[name] = {"kind": kinds[name], "splits": {"test": evaluate(sub), "valid": evaluate(sub, "valid", False)},
                        "n": {"test": int(sub[sub["split"] == "test"]["id"].nunique())},
                        "seeds": int(sub["seed"].nunique()),
                        "risk_groups": {c: _risk_groups(sub[(sub["split"] == "test") & (sub["cohort"] == c)]
                                                        .groupby(["id", "fold"]).agg(
                                                            time=("time", "first"), event=("event", "first"),
                                                            centred_risk=("centred_risk", "mean")))
                                        for c in cohorts}}
    robustness: dict[str, Any] = {"none": models[headline.name]["splits"]["test"]}
    if robust:
        rob = pd.DataFrame(robust)
        base = pred[(pred["model"] == headline.name) & (pred["split"] == "test")].drop(columns=["risk"])
        for cond, g in rob.groupby("cond", sort=True):
            merged = _standardise(base.merge(g[["id", "fold", "seed", "risk"]], on=["id", "fold", "seed"]))
            robustness[str(cond)] = evaluate(merged.assign(split="test"), td=False)
    metrics: dict[str, Any] = {
        "recipe": problem.name, "task": "survival", "primary_metric": "c_index_mean",
        "dataset": {"description": problem.description, "version": problem.version, "files": problem.files,
                    "sizes": {c: sum(1 for r in problem.records if r.meta["cohort"] == c) for c in cohorts},
                    "events": {c: int(sum(r.target[1] for r in problem.records if r.meta["cohort"] == c))
                               for c in cohorts},
                    "folds": len(problem.folds)},
        "selection": {"name": "inner-valid", "description": (
            f"a stratified {cfg.inner_valid_fraction:.0%} of each training fold (early stopping, checkpoint, "
            "Cox penalty, risk-group threshold); the held-out fold is scored once")},
        "models": models, "robustness": robustness, "published": problem.published,
        "skips": problem.skips.to_dict(),
        "timing": {"train_seconds_total": {n: round(sum(v), 1) for n, v in timing.items()},
                   "trainings": {n: len(v) for n, v in timing.items()},
                   "torch_threads_in_training": cfg.train.threads,
                   "total_seconds": round(time.perf_counter() - started, 1)},
        "environment": environment(), "notes": problem.notes,
    }
    write_json(out_dir / "metrics.json", metrics)
    frame = pred[pred["split"] == "test"].assign(risk=lambda d: d["centred_risk"])
    atomic_csv(pred, out_dir / "predictions.csv")
    write_report(out_dir, metrics, frame[["id", "split", "model", "seed", "time", "event", "risk"]])
    return metrics
