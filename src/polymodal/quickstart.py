"""``polymodal quickstart``: gene expression + clinical variables -> time to metastasis, offline.

The cohort ships inside scikit-survival (see :mod:`polymodal.data.sources.sksurv_breast`), so this
runs on a fresh install with no data directory and no network, in well under two minutes on two
CPU cores. It exercises the whole protocol on a real multimodal survival task:

* two modalities, one token each: ``genes`` (76 standardised probes) and ``clinical`` (age and size
  standardised, ER status and grade one-hot); every scaler and encoder is fitted on train only;
* the network: a ProjectionEncoder per modality -> ConcatFusion -> linear risk head, trained with the
  Cox partial likelihood; the same network on genes only and on clinical only answers "does each
  modality help?"; a penalised Cox model (lifelines) and Kaplan-Meier are the baselines;
* early stopping, checkpoint choice and the Cox penalty use the validation C-index only; test
  C-index has a bootstrap CI over patients and the mean ± std over seeds;
* the run folder gets config.json, split.json, metrics.json, predictions.csv and report.md, and a
  rerun resumes: finished seeds are reused and an interrupted fit restarts from its last checkpoint.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn
from torch.utils.data import DataLoader

from polymodal.baselines.survival import CoxBaseline, KaplanMeierBaseline
from polymodal.data.collate import Collator, FeatureDataset
from polymodal.data.schema import Record
from polymodal.data.sources import sksurv_breast
from polymodal.encoders.trainable import ProjectionEncoder
from polymodal.experiment import atomic_csv, environment
from polymodal.fusion.concat import ConcatFusion
from polymodal.io import atomic_path, write_json
from polymodal.model import MultimodalModel
from polymodal.reports import write_report
from polymodal.tasks.survival import evaluate_survival
from polymodal.training.survival_system import SurvivalSystem
from polymodal.training.trainer import TrainConfig, fit_resumable, make_trainer, seed_everything

__all__ = ["BreastFeaturizer", "QuickstartConfig", "build_network", "run_quickstart"]

RECIPE = "quickstart"
MODALITIES = ("clinical", "genes")
# name -> modalities of the network variant; the first is the headline (kind "recipe").
NETWORKS: dict[str, tuple[str, ...]] = {
    "genes+clinical": ("clinical", "genes"),
    "genes-only": ("genes",),
    "clinical-only": ("clinical",),
}


class QuickstartConfig(BaseModel):
    """Everything that decides the quickstart's numbers; written to config.json."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeds: int = 3
    split_seed: int = 0
    dim: int = 8  # token size: small, because 118 training patients cannot feed a big network
    dropout: float = 0.3
    # A batch larger than the training split makes every step use full risk sets (the exact Cox loss).
    # One thread: see _runtime.
    train: TrainConfig = TrainConfig(max_epochs=150, patience=20, batch_size=256, lr=1e-3, weight_decay=1e-2, threads=1)
    cox_penalizers: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    n_boot: int = 1000


class BreastFeaturizer:
    """Records -> one (1, F) token per modality; scalers and the one-hot encoder are fitted on train."""

    modalities = MODALITIES

    def fit(self, records: Sequence[Record]) -> BreastFeaturizer:
        self.genes_ = StandardScaler().fit(np.stack([r.inputs["genes"] for r in records]))
        self.clinical_ = ColumnTransformer(
            [
                ("numeric", StandardScaler(), list(sksurv_breast.CLINICAL_NUMERIC)),
                # ignore: a category unseen in train becomes all zeros instead of an error
                (
                    "categorical",
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                    list(sksurv_breast.CLINICAL_CATEGORICAL),
                ),
            ]
        ).fit(self._clinical_frame(records))
        return self

    @staticmethod
    def _clinical_frame(records: Sequence[Record]) -> pd.DataFrame:
        return pd.DataFrame([dict(r.inputs["clinical"]) for r in records])

    def tables(self, records: Sequence[Record]) -> dict[str, pd.DataFrame]:
        """Modality -> (N, F) DataFrame of transformed features (for the Cox baselines)."""
        genes = self.genes_.transform(np.stack([r.inputs["genes"] for r in records]))
        clinical = self.clinical_.transform(self._clinical_frame(records))
        return {
            "clinical": pd.DataFrame(clinical, columns=[str(c) for c in self.clinical_.get_feature_names_out()]),
            "genes": pd.DataFrame(genes, columns=[f"gene_{i}" for i in range(genes.shape[1])]),
        }

    def transform(self, records: Sequence[Record]) -> list[dict[str, np.ndarray]]:
        """One ``{modality: (1, F) float32}`` dict per record."""
        tables = self.tables(records)
        arrays = {m: t.to_numpy(dtype=np.float32) for m, t in tables.items()}
        return [{m: arrays[m][i : i + 1] for m in self.modalities} for i in range(len(records))]

    def dims(self) -> dict[str, int]:
        return {"clinical": len(self.clinical_.get_feature_names_out()), "genes": int(self.genes_.n_features_in_)}


def build_network(in_dims: Mapping[str, int], modalities: Sequence[str], dim: int, dropout: float) -> MultimodalModel:
    """ProjectionEncoder per modality -> ConcatFusion -> linear head giving a (B,) Cox risk."""
    encoders = {m: ProjectionEncoder(in_dims[m], dim, dropout=dropout) for m in modalities}
    fusion = ConcatFusion(list(modalities), dim)
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(fusion.out_dim, 1))
    return MultimodalModel(encoders, fusion, head)


def _targets(records: Sequence[Record]) -> np.ndarray:
    """(N, 2) ``[time, event]``: the layout SurvivalSystem and the baselines read."""
    return np.array([[float(r.target[0]), float(r.target[1])] for r in records], dtype=np.float64)


@torch.no_grad()
def _predict_risk(model: nn.Module, dataset: FeatureDataset, collator: Collator, drop: str | None = None) -> np.ndarray:
    model.eval()
    risks = []
    for tokens, _ in DataLoader(dataset, batch_size=256, shuffle=False, collate_fn=collator):
        tokens = {m: (t.drop() if m == drop else t) for m, t in tokens.items()}
        risks.append(model(tokens).logits.reshape(-1).cpu().numpy())
    return np.concatenate(risks).astype(np.float64)


def _train_network(
    modalities: Sequence[str],
    data: Mapping[str, FeatureDataset],
    dims: Mapping[str, int],
    seed: int,
    cfg: QuickstartConfig,
    seed_dir: Path,
) -> dict[str, np.ndarray]:
    """Fit one seed (or reuse a finished one) and return its valid/test risks (+ dropped-modality risks)."""
    done = seed_dir / "risks.npz"
    if done.exists():
        with np.load(done) as saved:
            return {k: saved[k] for k in saved.files}
    seed_everything(seed)
    model = build_network(dims, modalities, cfg.dim, cfg.dropout)
    system = SurvivalSystem(model, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    collator = Collator(modalities)
    train_loader = DataLoader(
        data["train"],
        batch_size=cfg.train.batch_size,
        shuffle=True,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(seed),
    )
    valid_loader = DataLoader(data["valid"], batch_size=256, shuffle=False, collate_fn=collator)
    trainer = make_trainer(seed_dir, cfg.train, monitor="val_c_index", mode="max")
    t0 = time.perf_counter()
    fit_resumable(trainer, system, train_loader, valid_loader, seed_dir)
    result = {"seconds": np.array(time.perf_counter() - t0), "epochs": np.array(trainer.current_epoch)}
    for split in ("valid", "test"):
        result[split] = _predict_risk(model, data[split], collator)
        if len(modalities) > 1:
            for m in modalities:
                result[f"{split}:drop:{m}"] = _predict_risk(model, data[split], collator, drop=m)
    with atomic_path(done) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **result)
    return result


def _baselines(
    featurizer: BreastFeaturizer, splits: Mapping[str, list[Record]], penalizers: Sequence[float]
) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """name -> (kind, valid risk, test risk) for Kaplan-Meier and penalised Cox models."""
    tables = {part: featurizer.tables(recs) for part, recs in splits.items()}
    y = {part: _targets(recs) for part, recs in splits.items()}
    out: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    for name, mods in (("cox-clinical", ("clinical",)), ("cox-genes+clinical", ("clinical", "genes"))):
        x = {part: pd.concat([tables[part][m] for m in mods], axis=1) for part in tables}
        cox = CoxBaseline(penalizer=tuple(penalizers)).fit(x["train"], y["train"], x["valid"], y["valid"])
        out[name] = ("baseline", cox.predict(x["valid"]), cox.predict(x["test"]))
    km = KaplanMeierBaseline().fit(tables["train"]["clinical"], y["train"])
    out["kaplan-meier"] = ("trivial", km.predict(tables["valid"]["clinical"]), km.predict(tables["test"]["clinical"]))
    return out


@contextmanager
def _runtime(threads: int | None) -> Iterator[None]:
    """Quiet training on ``threads`` torch threads for the duration of the run (restored after).

    Lightning's INFO banners and small-data warnings are silenced. The quickstart uses one thread: the
    matrices here are ~100 x 76, so intra-op threads only add synchronisation, and on a busy
    two-core machine they made a training step ~400x slower (164 ms vs 0.4 ms measured).
    """
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    previous_threads = torch.get_num_threads()
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    if threads:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            for message in (
                ".*does not have many workers.*",
                ".*exists and is not empty.*",
                ".*LeafSpec.*",
                ".*number of training batches.*",
                ".*smaller than the logging interval.*",
            ):
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        torch.set_num_threads(previous_threads)


def run_quickstart(out_dir: Path, *, seeds: int = 3, progress: bool = True) -> dict[str, Any]:
    """Train and evaluate every quickstart model and write the run folder.

    Args:
        out_dir: the run folder (created; an existing one is resumed).
        seeds: training seeds of each network (>= 1; the protocol asks for >= 3).
        progress: show Lightning's progress bar.

    Returns:
        The metrics dict also written to ``out_dir/metrics.json``.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cfg = QuickstartConfig(seeds=seeds, train=QuickstartConfig().train.model_copy(update={"progress": progress}))
    write_json(out_dir / "config.json", {"recipe": RECIPE, **cfg.model_dump(mode="json")})

    splits = sksurv_breast.load_splits(out_dir / "split.json", seed=cfg.split_seed)
    parts = {"train": splits.train, "valid": splits.valid, "test": splits.test}
    featurizer = BreastFeaturizer().fit(splits.train)
    data = {p: FeatureDataset(featurizer.transform(recs), _targets(recs)) for p, recs in parts.items()}
    y = {p: _targets(recs) for p, recs in parts.items()}

    scores: dict[str, tuple[str, list[np.ndarray], list[np.ndarray]]] = {}
    runs: dict[str, list[dict[str, np.ndarray]]] = {}
    with _runtime(cfg.train.threads):
        for i, (name, mods) in enumerate(NETWORKS.items()):
            runs[name] = [
                _train_network(mods, data, featurizer.dims(), s, cfg, out_dir / name / f"seed_{s}")
                for s in range(seeds)
            ]
            scores[name] = (
                "recipe" if i == 0 else "baseline",
                [r["valid"] for r in runs[name]],
                [r["test"] for r in runs[name]],
            )
    for name, (kind, valid, test) in _baselines(featurizer, parts, cfg.cox_penalizers).items():
        scores[name] = (kind, [valid], [test])

    def evaluate(valid: list[np.ndarray], test: list[np.ndarray]) -> dict[str, Any]:
        return evaluate_survival(
            y["valid"][:, 0], y["valid"][:, 1], valid, y["test"][:, 0], y["test"][:, 1], test, n_boot=cfg.n_boot, seed=0
        )

    models: dict[str, Any] = {}
    frames = []
    for name, (kind, valid, test) in scores.items():
        models[name] = {**evaluate(valid, test), "kind": kind}
        for seed, (r_valid, r_test) in enumerate(zip(valid, test, strict=True)):
            for split, risk in (("valid", r_valid), ("test", r_test)):
                frames.append(
                    pd.DataFrame(
                        {
                            "id": [r.id for r in parts[split]],
                            "split": split,
                            "model": name,
                            "seed": seed,
                            "time": y[split][:, 0],
                            "event": y[split][:, 1].astype(int),
                            "risk": risk,
                        }
                    )
                )
    headline = next(iter(NETWORKS))
    robustness: dict[str, Any] = {"none": models[headline]["splits"]["test"]}
    for m in NETWORKS[headline]:
        res = evaluate([r[f"valid:drop:{m}"] for r in runs[headline]], [r[f"test:drop:{m}"] for r in runs[headline]])
        robustness[f"drop:{m}"] = res["splits"]["test"]

    train_seconds = [float(r["seconds"]) for name in NETWORKS for r in runs[name]]
    metrics: dict[str, Any] = {
        "recipe": RECIPE,
        "task": "survival",
        "primary_metric": "c_index",
        "dataset": {
            "description": splits.description,
            "version": sksurv_breast.dataset_version(),
            "sizes": splits.sizes(),
            "files": splits.files,
            "events": {p: int(v[:, 1].sum()) for p, v in y.items()},
        },
        "selection": {"name": "valid", "description": "validation C-index (early stopping, checkpoint, Cox penalty)"},
        "models": models,
        "robustness": robustness,
        "timing": {
            "train_seconds_per_seed": [round(s, 2) for s in train_seconds],
            "epochs_per_seed": {n: [int(r["epochs"]) for r in runs[n]] for n in NETWORKS},
            "torch_threads_in_training": cfg.train.threads,
            "total_seconds": round(time.perf_counter() - started, 2),
        },
        "environment": environment(),
        "notes": [
            f"{headline}: ProjectionEncoder (dim {cfg.dim}) per modality -> ConcatFusion -> linear risk head, "
            "Cox partial likelihood (Breslow ties); genes-only and clinical-only are the same network on one "
            "modality.",
            "cox-*: lifelines CoxPHFitter with the L2 penalty chosen on validation C-index; kaplan-meier predicts "
            "one risk for everyone (C-index 0.5 by construction).",
            "C-index is Harrell's, from sksurv.metrics.concordance_index_censored. With about 40 test patients "
            "and few events the CIs are wide: read differences between models inside them.",
            "Robustness: the headline network scored with one modality's mask emptied at test time (Tokens.drop).",
            "Network defaults (dim, dropout, lr, weight decay) were sanity-checked on other split seeds of this "
            "cohort (1-5), never on this run's test split; several settings were within noise of each other.",
        ],
    }
    write_json(out_dir / "metrics.json", metrics)
    frame = pd.concat(frames, ignore_index=True)
    atomic_csv(frame, out_dir / "predictions.csv")
    write_report(out_dir, metrics, frame)
    return metrics
