"""Jobs for a survival recipe evaluated by K-fold cross-validation (one model per fold, seed and network).

For each fold the training part is split again (stratified by cohort and event) into an inner
training set and an inner validation set: the featuriser, time bins, early stopping, checkpoint
choice and every baseline's penalty use those only, and the fold's held-out part is scored once.
A network is trained pan-cancer (one model on every cohort) or one model per cohort; one baseline job
per fold fits Kaplan-Meier and a penalised Cox on clinical variables per cohort on the same patients.

Jobs (resumed one by one by the runner): ``fold_<k>/<network>/<cohort or all>/seed_<s>`` and
``fold_<k>/baselines``. Each returns rows for :class:`polymodal.tasks.survival.SurvivalTask`
(``subset`` = the patient's cohort, ``fold`` = k, ``split`` valid = inner validation / test = held-out
fold; the headline network also scores the test fold with each modality dropped, ``condition =
drop:<modality>``) and the tables of :mod:`polymodal.tasks.survival_time` (inner training outcomes,
survival curves at the IBS times). A network job keeps its weights as ``model.pt`` (a state dict).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader

from polymodal.data.collate import Collator, FeatureDataset
from polymodal.data.schema import Record
from polymodal.runs.problem import Job, JobContext, JobResult, predictions_frame
from polymodal.tasks.survival import _c_index, assign_time_bins, quantile_time_bins
from polymodal.tasks.survival_time import ibs_grid, step_values
from polymodal.training.survival_system import SurvivalSystem, risk_from_logits

__all__ = ["CVFold", "GuidedSurvivalSystem", "NetworkSpec", "fold_manifest", "inner_split", "make_folds",
           "survival_cv_jobs"]


class SurvivalFeaturizer(Protocol):
    modalities: list[str]

    def fit(self, records: Sequence[Record]) -> SurvivalFeaturizer: ...
    def transform(self, records: Sequence[Record]) -> list[dict[str, np.ndarray]]: ...
    def clinical(self, records: Sequence[Record]) -> pd.DataFrame: ...


@dataclass(frozen=True)
class NetworkSpec:
    """A network of the run: what it sees, how it is built, and whether it is trained per cohort.

    ``build(featurizer, modalities, n_groups) -> MultimodalModel`` whose logits are (B, K) hazards or a
    (B,) log-hazard; a module-level function or partial (jobs may run in worker processes).
    """

    name: str
    kind: str  # "recipe" or "baseline"
    modalities: tuple[str, ...]
    build: Callable[[Any, tuple[str, ...], int], nn.Module]
    per_cohort: bool = False
    robustness: bool = False  # score the test fold with each modality dropped
    seeds: int | None = None  # training seeds of this network (None: the run's seeds)


@dataclass
class CVFold:
    """One fold: inner train / inner validation / held-out test patients, and the featuriser fitted on
    the inner training patients."""

    index: int
    train: list[Record]
    valid: list[Record]
    test: list[Record]
    featurizer: Any

    def part(self, name: str, cohort: str | None = None) -> list[Record]:
        records = getattr(self, name)
        return [r for r in records if cohort is None or r.meta["cohort"] == cohort]


@dataclass(frozen=True)
class FitSettings:
    """The training options a network job reads (taken from the recipe's config)."""

    n_bins: int
    loss: str  # "nll" (discrete time) or "cox"
    alpha_surv: float
    group_weight: float
    cox_penalizers: tuple[float, ...]
    selection: str = "valid"


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


# ------------------------------------------------------------------ folds


def inner_split(records: Sequence[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Stratified (cohort x event) split of a training fold into inner train and inner validation."""
    strata = [f"{r.meta['cohort']}:{int(r.target[1])}" for r in records]
    idx = np.arange(len(records))
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strata)
    return [records[i] for i in sorted(tr)], [records[i] for i in sorted(va)]


def make_folds(records: Sequence[Record], folds: Sequence[tuple[Sequence[str], Sequence[str]]],
               make_featurizer: Callable[[], SurvivalFeaturizer], *, inner_fraction: float, split_seed: int
               ) -> list[CVFold]:
    """Inner-split each fold's training part (seed ``split_seed + k``) and fit a featuriser on it."""
    by_id = {r.id: r for r in records}
    out = []
    for k, (train_ids, test_ids) in enumerate(folds):
        train, test = [by_id[i] for i in train_ids], [by_id[i] for i in test_ids]
        inner_tr, inner_va = inner_split(train, inner_fraction, split_seed + k)
        out.append(CVFold(k, inner_tr, inner_va, test, make_featurizer().fit(inner_tr)))
    return out


def fold_manifest(folds: Sequence[CVFold]) -> pd.DataFrame:
    """split.csv: every patient's role (train / valid / test) in every fold, with its cohort."""
    rows = [{"fold": f.index, "split": split, "id": r.id, "subset": str(r.meta["cohort"])}
            for f in folds for split in ("train", "valid", "test") for r in getattr(f, split)]
    return pd.DataFrame(rows, columns=["fold", "split", "id", "subset"])


def survival_cv_jobs(folds: Sequence[CVFold], networks: Sequence[NetworkSpec], settings: FitSettings, seeds: int
                     ) -> list[Job]:
    """Per fold: every network x cohort (per-cohort networks) x seed, then the baselines."""
    jobs: list[Job] = []
    for fold in folds:
        cohorts = sorted({str(r.meta["cohort"]) for r in fold.train})
        for spec in networks:
            for cohort in (cohorts if spec.per_cohort else [None]):
                if not fold.part("test", cohort) or not fold.part("valid", cohort):
                    continue
                for s in range(spec.seeds or seeds):
                    key = f"fold_{fold.index}/{_slug(spec.name)}/{cohort or 'all'}/seed_{s}"
                    jobs.append(Job(key, partial(_network_job, spec, fold, cohort, settings), seed=s,
                                    label=f"{spec.name} ({cohort or 'all cohorts'}, fold {fold.index}, seed {s})"))
        jobs.append(Job(f"fold_{fold.index}/baselines", partial(_baselines_job, fold, settings), parallel=False,
                        label=f"Kaplan-Meier and clinical Cox, fold {fold.index}"))
    return jobs


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# ------------------------------------------------------------------ rows and tables


def _rows(model: str, kind: str, fold: CVFold, seed: int, split: str, records: Sequence[Record], risk: np.ndarray,
          settings: FitSettings, condition: str = "none") -> pd.DataFrame:
    return predictions_frame(model=model, kind=kind, split=split, ids=[r.id for r in records],
                             selection=settings.selection, fold=fold.index, seed=seed, condition=condition,
                             subset=[str(r.meta["cohort"]) for r in records],
                             time=[float(r.target[0]) for r in records], event=[int(r.target[1]) for r in records],
                             risk=np.asarray(risk, dtype=np.float64))


def _curves(model: str, fold: CVFold, seed: int, records: Sequence[Record], knots: np.ndarray, values: np.ndarray
            ) -> pd.DataFrame:
    """Each test patient's survival at its (fold, cohort)'s IBS times (:func:`ibs_grid`), long format."""
    frames = []
    cohort = np.array([str(r.meta["cohort"]) for r in records])
    for c in dict.fromkeys(cohort):
        mine = [r for r in records if r.meta["cohort"] == c]
        grid = ibs_grid(np.array([r.target[0] for r in mine]), np.array([r.target[0] for r in fold.part("train", c)]))
        at = step_values(np.asarray(knots, dtype=np.float64), values[cohort == c], grid)  # (N_c, T)
        frames.append(pd.DataFrame({"model": model, "fold": fold.index, "seed": seed, "subset": c, "split": "test",
                                    "id": np.repeat([r.id for r in mine], len(grid)), "at": np.tile(grid, len(mine)),
                                    "survival": at.reshape(-1)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _targets(records: Sequence[Record], edges: np.ndarray, groups: Mapping[str, int]) -> np.ndarray:
    t = np.array([float(r.target[0]) for r in records])
    e = np.array([float(r.target[1]) for r in records])
    g = np.array([groups.get(str(r.meta["cohort"]), 0) for r in records], dtype=float)
    return np.stack([t, e, assign_time_bins(t, edges).astype(float), g], axis=1)  # (N, 4)


@torch.no_grad()
def _outputs(model: nn.Module, data: FeatureDataset, collator: Collator, drop: str | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """(N,) risk and (N, K) discrete-time survival S_k = P(T beyond bin k) ((N, 0) for a Cox head)."""
    model.eval()
    risks, curves = [], []
    for tokens, _ in DataLoader(data, batch_size=256, shuffle=False, collate_fn=collator):
        tokens = {m: (t.drop() if m == drop else t) for m, t in tokens.items()}
        logits = model(tokens).logits
        risks.append(risk_from_logits(logits).cpu().numpy())
        curves.append(torch.cumprod(torch.sigmoid(-logits), dim=-1).cpu().numpy() if logits.ndim == 2
                      else np.zeros((len(logits), 0)))
    if not risks:
        return np.zeros(0), np.zeros((0, 0))
    return np.concatenate(risks).astype(np.float64), np.concatenate(curves).astype(np.float64)


def score_network(model: nn.Module, featurizer: Any, records: Sequence[Record], modalities: Sequence[str],
                  drop: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A trained network's (N,) risks and (N, K) survival curves of ``records`` (featurised by ``featurizer``)."""
    data = FeatureDataset([{m: f[m] for m in modalities} for f in featurizer.transform(records)],
                          np.zeros(len(records), dtype=np.float32))
    return _outputs(model, data, Collator(list(modalities)), drop=drop)


# ------------------------------------------------------------------ the jobs


def _network_job(spec: NetworkSpec, fold: CVFold, cohort: str | None, settings: FitSettings, ctx: JobContext
                 ) -> JobResult:
    """Train one seed on the inner training patients with early stopping on the inner validation ones."""
    from polymodal.objectives.survival import CoxPartialLikelihood, DiscreteTimeSurvivalNLL
    from polymodal.training.trainer import fit_resumable, make_trainer, quiet_lightning, seed_everything

    cfg = ctx.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not ctx.progress or not cfg.progress:
        quiet_lightning()
    seed_everything(ctx.seed)
    parts = {p: fold.part(p, cohort) for p in ("train", "valid", "test")}
    all_cohorts = sorted({str(r.meta["cohort"]) for r in fold.train})
    groups = {c: i for i, c in enumerate(all_cohorts)} if cohort is None else {cohort: 0}
    tr = parts["train"]
    edges = quantile_time_bins([r.target[0] for r in tr], [r.target[1] for r in tr], settings.n_bins)
    feats = {p: fold.featurizer.transform(recs) for p, recs in parts.items()}
    data = {p: FeatureDataset([{m: f[m] for m in spec.modalities} for f in feats[p]], _targets(parts[p], edges, groups))
            for p in parts}
    model = spec.build(fold.featurizer, spec.modalities, max(1, len(groups)))
    # "cox": one log-hazard per patient, risk sets within the batch; "nll": MCAT's discrete-time NLL.
    objective = CoxPartialLikelihood() if settings.loss == "cox" else DiscreteTimeSurvivalNLL(settings.alpha_surv)
    system = GuidedSurvivalSystem(model, objective, group_weight=settings.group_weight, lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    collator = Collator(list(spec.modalities))
    loader = DataLoader(data["train"], batch_size=cfg.batch_size, shuffle=True, collate_fn=collator,
                        generator=torch.Generator().manual_seed(ctx.seed))
    valid = DataLoader(data["valid"], batch_size=256, shuffle=False, collate_fn=collator)
    trainer = make_trainer(ctx.dir, cfg, monitor="val_c_index", mode="max")
    t0 = time.perf_counter()
    resumed_from = fit_resumable(trainer, system, loader, valid, ctx.dir)
    seconds = time.perf_counter() - t0
    frames = []
    for p in ("valid", "test"):
        risk, surv = _outputs(model, data[p], collator)
        frames.append(_rows(spec.name, spec.kind, fold, ctx.seed, p, parts[p], risk, settings))
        if p == "test":
            # a discrete-time network's S_k holds from the end of bin k, i.e. from edges[k + 1]
            curves = _curves(spec.name, fold, ctx.seed, parts[p], edges[1:], surv) if surv.size else None
    if spec.robustness:
        for m in spec.modalities:
            risk, _ = _outputs(model, data["test"], collator, drop=m)
            frames.append(_rows(spec.name, spec.kind, fold, ctx.seed, "test", parts["test"], risk, settings,
                                condition=f"drop:{m}"))
    from polymodal.io import atomic_path

    with atomic_path(Path(ctx.dir) / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    for ckpt in (Path(ctx.dir) / "checkpoints").glob("*.ckpt"):  # model.pt keeps the best weights
        ckpt.unlink()
    return JobResult(pd.concat(frames, ignore_index=True),
                     tables={"survival_curves": curves} if curves is not None else {},
                     info={"seconds": round(seconds, 2), "epochs": int(trainer.current_epoch),
                           "resumed_from_epoch": int(resumed_from)})


def _baselines_job(fold: CVFold, settings: FitSettings, ctx: JobContext) -> JobResult:
    """Per cohort: a penalised Cox on clinical variables and Kaplan-Meier; and the inner training outcomes."""
    frames, curves, targets = [], [], []
    for c in sorted({str(r.meta["cohort"]) for r in fold.train}):
        parts = {p: fold.part(p, c) for p in ("train", "valid", "test")}
        targets.append(pd.DataFrame({"fold": fold.index, "subset": c, "split": "train",
                                     "id": [r.id for r in parts["train"]],
                                     "time": [float(r.target[0]) for r in parts["train"]],
                                     "event": [int(r.target[1]) for r in parts["train"]]}))
        if not parts["test"]:
            continue
        for name, kind, fit in (("cox-clinical", "baseline", partial(_cox_clinical, settings.cox_penalizers)),
                                ("kaplan-meier", "trivial", _kaplan_meier)):
            out = fit(fold.featurizer, parts)
            for p in ("valid", "test"):
                frames.append(_rows(name, kind, fold, 0, p, parts[p], out[p], settings))
            curves.append(_curves(name, fold, 0, parts["test"], out["knots"], out["test:survival"]))
    return JobResult(pd.concat(frames, ignore_index=True),
                     tables={"survival_curves": pd.concat(curves, ignore_index=True),
                             "train_targets": pd.concat(targets, ignore_index=True)})


def _cox_clinical(penalizers: Sequence[float], feat: SurvivalFeaturizer, parts: Mapping[str, list[Record]]
                  ) -> dict[str, np.ndarray]:
    from polymodal.baselines.survival import CoxBaseline

    tables = {p: feat.clinical(recs) for p, recs in parts.items()}
    keep = [c for c in tables["train"].columns if tables["train"][c].std() > 0]  # a constant column breaks lifelines
    y = {p: np.array([[float(r.target[0]), float(r.target[1])] for r in recs]) for p, recs in parts.items()}
    cox = CoxBaseline(penalizer=tuple(penalizers)).fit(tables["train"][keep], y["train"], tables["valid"][keep],
                                                       y["valid"])
    out = {p: np.log(cox.predict(tables[p][keep])) for p in ("valid", "test")}
    surv = cox.model_.predict_survival_function(cox._frame(tables["test"][keep], cox.columns_))  # (times, N)
    out["test:survival"], out["knots"] = surv.to_numpy().T, surv.index.to_numpy(dtype=float)
    return out


def _kaplan_meier(feat: SurvivalFeaturizer, parts: Mapping[str, list[Record]]) -> dict[str, np.ndarray]:
    """No information: risk 0 for everyone, and the inner-training Kaplan-Meier curve as everyone's survival."""
    from sksurv.nonparametric import kaplan_meier_estimator

    t = np.array([float(r.target[0]) for r in parts["train"]])
    e = np.array([bool(r.target[1]) for r in parts["train"]])
    knots, curve = kaplan_meier_estimator(e, t)[:2]
    out = {p: np.zeros(len(parts[p])) for p in ("valid", "test")}
    out["test:survival"], out["knots"] = np.tile(curve, (len(parts["test"]), 1)), knots
    return out
