"""Jobs for a forecasting recipe over cells (domain x horizon), in the run contract.

Per domain one job chooses the text recipe on training and validation windows only (saved as
``jobs/<domain>/text_choice/choice.json``); per cell one job fits the baselines (last value,
seasonal naive, NLinear, DLinear, NLinear + calendar, and the linear proxy with the chosen texts)
and one job per seed trains the dual tower without text, with calendar features, with text and
with shuffled text (plus the linear proxy's shuffled-text control of that seed), and scores the
text model with its text removed (condition ``drop:text``). Each job returns one row per
(model, split, window) with the window's losses on the target channel (tasks.forecast), so a
killed run loses at most one job, and a rerun finishes with the same numbers (every model is
built and trained from its own seed).

Training is a plain PyTorch loop (Adam, early stopping on validation MSE, best weights kept):
a few hundred tiny models per benchmark make Lightning's per-fit overhead the dominant cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from polymodal.baselines.forecast import LinearForecaster
from polymodal.data.schema import Tokens
from polymodal.data.sources.time_mmd import FREQUENCIES, SeriesData
from polymodal.io import atomic_write
from polymodal.runs.forecast_selection import linear_with_text
from polymodal.runs.forecast_text import (
    DomainTexts,
    Source,
    TextChoice,
    calendar_source,
    empty_source,
    kinds_covering_training,
    shuffled_sources,
    subset_texts,
    text_source,
)
from polymodal.runs.problem import Job, JobContext, JobResult, predictions_frame
from polymodal.tasks.forecast import (
    TrainScaler,
    calendar_features,
    chrono_split,
    last_value,
    make_windows,
    seasonal_naive,
    window_losses,
)
from polymodal.training.best_weights import BestWeights

__all__ = ["CellSetup", "DomainData", "ForecastSpec", "forecast_jobs", "predict", "setup_cell", "train_model"]

PERIOD_DAYS = {"M": 31, "W": 7, "D": 1}  # a month counts as 31 days for text ages
KINDS = {"last value": "trivial", "seasonal naive": "trivial", "NLinear": "baseline", "DLinear": "baseline",
         "NLinear + calendar": "baseline", "NLinear + calendar + text": "baseline",
         "NLinear + calendar + shuffled text": "control", "patch transformer (no text)": "ablation",
         "patch transformer + calendar": "control", "patch transformer + text": "recipe",
         "text removed at test": "ablation", "patch transformer + shuffled text": "control"}


@dataclass
class DomainData:
    """One domain's series and texts (with frozen embeddings), as loaded."""

    series: SeriesData
    texts: DomainTexts | None
    horizons: tuple[int, ...]

    @property
    def input_len(self) -> int:
        return int(FREQUENCIES[self.series.freq]["input_len"])

    @property
    def period(self) -> int:
        return int(FREQUENCIES[self.series.freq]["period"])

    @property
    def period_td(self) -> np.timedelta64:
        return np.timedelta64(PERIOD_DAYS[self.series.freq], "D")


@dataclass(frozen=True)
class ForecastSpec:
    """The model side (module-level callables or partials, so jobs can be pickled).

    Attributes:
        build: ``build(input_len, text_dim, horizon) -> nn.Module`` (a fresh dual tower).
        choose: ``choose(domain_data) -> dict``: the validation-chosen text recipe (``"choice"``: a
            TextChoice or None) and its selection record.
        train_kw: train_model's keyword arguments.
    """

    build: Callable[[int, int, int], nn.Module]
    choose: Callable[[DomainData], dict[str, Any]]
    train_kw: dict[str, Any]
    channels: str = "target"
    seeds: int = 3
    n_shuffle: int | None = None
    min_kind_coverage: float = 0.5
    linear_text: bool = True


# --------------------------------------------------------------------------- windows and training


@dataclass
class CellSetup:
    """Windows of one (domain, horizon) cell, channel-independent and scaled."""

    x: dict[str, np.ndarray]  # part -> (N*C, L)
    y: dict[str, np.ndarray]  # part -> (N*C, H)
    origins: dict[str, np.ndarray]  # part -> (N,)
    origin_time: dict[str, np.ndarray]  # part -> (N*C,) datetime64
    n_channels: int
    scaler: TrainScaler


def setup_cell(series: SeriesData, horizon: int, input_len: int, channels: str) -> CellSetup:
    values = series.values if channels == "all" else series.values[:, :1]
    split = chrono_split(len(values), input_len, horizon)
    scaler = TrainScaler().fit(values[:split.n_train])
    scaled = scaler.transform(values)
    c = values.shape[1]
    xs, ys, times = {}, {}, {}
    for part, origins in split.origins.items():
        x, y = make_windows(scaled, origins, input_len, horizon)  # (N, L, C), (N, H, C)
        # channel-major stacking: rows [c*N:(c+1)*N] are channel c, so channel 0 (OT) comes first
        xs[part] = x.transpose(2, 0, 1).reshape(c * len(origins), input_len)
        ys[part] = y.transpose(2, 0, 1).reshape(c * len(origins), horizon)
        times[part] = np.tile(series.start[origins], c)
    return CellSetup(xs, ys, split.origins, times, c, scaler)


def _tokens(source: Source, rows: np.ndarray, table: torch.Tensor) -> Tokens:
    idx = torch.as_tensor(source.idx[rows])  # (B, K)
    mask = idx >= 0
    values = table[idx.clamp(min=0)] * mask.unsqueeze(-1)  # (B, K, D)
    return Tokens(values, mask)


def train_model(model: nn.Module, data: dict[str, tuple[np.ndarray, np.ndarray, Source]], *, seed: int,
                max_epochs: int, patience: int, batch_size: int, lr: float, threads: int = 1,
                epoch_windows: int | None = None) -> nn.Module:
    """Adam on MSE with early stopping on validation MSE; returns the model with its best weights.

    Args:
        data: part -> (x (N, L), y (N, H), text source of the N windows), parts "train" and "valid".
        epoch_windows: train each epoch on this many windows drawn afresh from the training part
            (all of them if fewer). Daily series have ~11k heavily overlapping windows: a
            2k-window epoch costs a fifth and lets early stopping check validation five times
            as often.
    """
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        x, y, src = data["train"]
        xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
        table = torch.as_tensor(src.table, dtype=torch.float32)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        tracker = BestWeights(model, patience, mode="min", min_delta=1e-7)
        n_epoch = len(x) if epoch_windows is None else min(len(x), epoch_windows)
        for epoch in range(max_epochs):
            model.train()
            order = rng.permutation(len(x))[:n_epoch]
            for batch in np.array_split(order, max(1, int(np.ceil(n_epoch / batch_size)))):
                pred = model(xt[batch], _tokens(src, batch, table))
                loss = torch.mean((pred - yt[batch]) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
            val = float(np.mean((predict(model, *data["valid"][::2]) - data["valid"][1]) ** 2))
            if tracker.update(val, epoch):
                break
        tracker.restore()
        model.best_val_mse = tracker.best  # type: ignore[assignment]
        return model
    finally:
        torch.set_num_threads(saved_threads)


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, src: Source, batch_size: int = 2048) -> np.ndarray:
    """(N, L) windows and their text source -> (N, H) forecasts."""
    model.eval()
    table = torch.as_tensor(src.table, dtype=torch.float32)
    xt = torch.as_tensor(x, dtype=torch.float32)
    out = [model(xt[s:s + batch_size], _tokens(src, np.arange(s, min(s + batch_size, len(x))), table)).numpy()
           for s in range(0, len(x), batch_size)]
    return np.concatenate(out)


# --------------------------------------------------------------------------- jobs


def forecast_jobs(spec: ForecastSpec, domains: dict[str, DomainData]) -> list[Job]:
    """One text-choice job per domain, then per cell one baseline job and one job per seed."""
    jobs: list[Job] = []
    for domain, data in domains.items():
        jobs.append(Job(f"{domain}/text_choice", partial(_choice_job, spec, data), parallel=False,
                        label=f"{domain}: text recipe chosen on validation"))
        for horizon in data.horizons:
            cell = f"{domain}/h{horizon}"
            jobs.append(Job(f"{cell}/baselines", partial(_baselines_job, spec, data, horizon),
                            label=f"{cell} baselines"))
            for seed in range(spec.seeds):
                jobs.append(Job(f"{cell}/seed_{seed}", partial(_seed_job, spec, data, horizon), seed=seed,
                                label=f"{cell} seed {seed}"))
    return jobs


def _choice_path(job_dir: Path, depth: int) -> Path:
    """``jobs/<domain>/text_choice/choice.json`` from a job folder ``depth`` levels below the domain's."""
    return Path(job_dir).parents[depth - 1] / "text_choice" / "choice.json" if depth else \
        Path(job_dir) / "choice.json"


def _choice(spec: ForecastSpec, data: DomainData, path: Path) -> dict[str, Any]:
    """The domain's text choice: read from the choice job's folder, or computed (deterministically)."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    record = dict(spec.choose(data))
    choice = record.pop("choice")
    record["choice"] = choice.to_json() if choice is not None else None
    text = json.dumps(record, sort_keys=True, default=float)
    atomic_write(path, lambda fh: fh.write(text))
    return json.loads(text)


def _choice_job(spec: ForecastSpec, data: DomainData, ctx: JobContext) -> JobResult:
    record = _choice(spec, data, _choice_path(ctx.dir, 0))
    domain = data.series.domain
    row = {"domain": domain, "chosen": record.get("chosen") or "", "val_mse_ratio": record.get("val_mse_ratio"),
           "validation_says_text_helps": record.get("validation_says_text_helps"),
           "kinds_covering_training": json.dumps(record.get("kinds_covering_training") or {}, sort_keys=True),
           "kinds_used": json.dumps(record.get("kinds_used") or []), "candidates": len(record.get("candidates") or [])}
    candidates = pd.DataFrame([{"domain": domain, **c} for c in record.get("candidates") or []],
                              columns=["domain", "choice", "train_coverage", "val_mse_ratio"])
    empty = predictions_frame(model="", kind="recipe", split="test", ids=[], mse=[], mae=[], mse_orig=[], mae_orig=[])
    return JobResult(empty, tables={"domains": pd.DataFrame([row]), "text_candidates": candidates})


@dataclass
class _Cell:
    setup: CellSetup
    cal: dict[str, np.ndarray]
    texts: DomainTexts | None
    chosen: TextChoice | None
    chosen_src: dict[str, Source] | None
    kind_coverage: dict[str, float]
    subset: str
    horizon: int


def _cell(spec: ForecastSpec, data: DomainData, horizon: int, job_dir: Path) -> _Cell:
    record = _choice(spec, data, _choice_path(job_dir, 2))
    chosen = TextChoice.from_json(record["choice"]) if record.get("choice") else None
    setup = setup_cell(data.series, horizon, data.input_len, spec.channels)
    cal = {p: calendar_features(setup.origin_time[p], data.period) for p in setup.x}
    texts, coverage = data.texts, {}
    if texts is not None and len(texts.texts):
        kinds, coverage = kinds_covering_training(texts, setup.origin_time["train"], data.period_td * data.input_len,
                                                  spec.min_kind_coverage)
        texts = subset_texts(texts, np.isin(np.array(texts.texts.kind), kinds))
    chosen_src = None
    if chosen is not None and texts is not None and len(texts.texts):
        chosen_src = {p: text_source(texts, setup.origin_time[p], chosen, data.period_td, data.input_len)
                      for p in setup.x}
    else:
        chosen = None
    return _Cell(setup, cal, texts, chosen, chosen_src, coverage, f"{data.series.domain}/h{horizon}", horizon)


def _rows(cell: _Cell, model: str, part: str, pred: np.ndarray, seed: int = 0, condition: str = "none",
          ) -> pd.DataFrame:
    """One row per window of ``part`` (target channel only: the first N rows) with its losses."""
    setup = cell.setup
    n = len(setup.origins[part])
    losses = window_losses(setup.y[part][:n], pred[:n], float(setup.scaler.scale_[0]), float(setup.scaler.mean_[0]))
    ids = [str(t)[:10] for t in setup.origin_time[part][:n]]
    return predictions_frame(model=model, kind=KINDS[model], split="valid" if part == "valid" else "test", ids=ids,
                             seed=seed, condition=condition, subset=cell.subset, **losses)


def _baselines_job(spec: ForecastSpec, data: DomainData, horizon: int, ctx: JobContext) -> JobResult:
    cell = _cell(spec, data, horizon, ctx.dir)
    setup = cell.setup
    raw = setup.scaler.transform(data.series.values if spec.channels == "all" else data.series.values[:, :1])
    frames = []
    for part in ("valid", "test"):
        frames.append(_rows(cell, "last value", part, last_value(setup.x[part][:, :, None], horizon)[:, :, 0]))
        sn = seasonal_naive(raw, setup.origins[part], horizon, data.period)  # (N, H, C)
        frames.append(_rows(cell, "seasonal naive", part, sn.transpose(2, 0, 1).reshape(-1, horizon)))
    for name, kw in (("NLinear", {"kind": "nlinear"}), ("DLinear", {"kind": "dlinear"}),
                     ("NLinear + calendar", {"kind": "nlinear", "calendar": True})):
        lin = LinearForecaster(**kw).fit(setup.x["train"], setup.y["train"], setup.x["valid"], setup.y["valid"],
                                         cell.cal["train"], cell.cal["valid"])
        frames += [_rows(cell, name, p, lin.predict(setup.x[p], cell.cal[p])) for p in ("valid", "test")]
    if cell.chosen_src is not None and spec.linear_text:
        lin, feats = linear_with_text(setup, cell.cal, cell.chosen_src)
        frames += [_rows(cell, "NLinear + calendar + text", p, lin.predict(setup.x[p], feats[p]))
                   for p in ("valid", "test")]
    n_test = len(setup.origins["test"])
    last = n_test - 1
    origin = setup.origins["test"][last]
    history = data.series.values[max(0, origin - 3 * data.input_len):origin, 0]
    truth = setup.scaler.inverse(setup.y["test"][last], 0)
    plot = pd.DataFrame({"subset": cell.subset, "series": ["history"] * len(history) + ["truth"] * len(truth),
                         "seed": 0, "step": list(range(-len(history), 0)) + list(range(len(truth))),
                         "value": np.concatenate([history, truth])})
    info_row = {"subset": cell.subset, "domain": data.series.domain, "horizon": horizon, "input_len": data.input_len,
                "channels": setup.n_channels, **{f"windows_{p}": len(o) for p, o in setup.origins.items()},
                "chosen_text": cell.chosen.name if cell.chosen else "",
                "text_kind_train_coverage": json.dumps(cell.kind_coverage, sort_keys=True)}
    return JobResult(pd.concat(frames, ignore_index=True), tables={"cells": pd.DataFrame([info_row]), "plot": plot})


def _seed_job(spec: ForecastSpec, data: DomainData, horizon: int, ctx: JobContext) -> JobResult:
    import time

    started = time.perf_counter()
    seed = ctx.seed
    cell = _cell(spec, data, horizon, ctx.dir)
    setup = cell.setup
    text_dim = cell.texts.fact.shape[1] if cell.texts is not None else 1
    none_src = {p: empty_source(len(setup.x[p]), text_dim) for p in setup.x}
    cal_src = {p: calendar_source(setup.origin_time[p], data.period) for p in setup.x}

    def fit(src: dict[str, Source], dim: int) -> nn.Module:
        torch.manual_seed(seed)  # the initial weights depend on the seed alone, not on what ran before
        model = spec.build(data.input_len, dim, horizon)
        train = {p: (setup.x[p], setup.y[p], src[p]) for p in ("train", "valid")}
        return train_model(model, train, seed=seed, **spec.train_kw)

    def score(name: str, model: nn.Module, src: dict[str, Source], condition: str = "none") -> list[pd.DataFrame]:
        return [_rows(cell, name, p, predict(model, setup.x[p], src[p]), seed, condition) for p in ("valid", "test")]

    frames: list[pd.DataFrame] = []
    plot: list[pd.DataFrame] = []
    last = len(setup.origins["test"]) - 1

    def plot_rows(name: str, model: nn.Module, src: dict[str, Source]) -> None:
        forecast = setup.scaler.inverse(predict(model, setup.x["test"][last:last + 1],
                                                Source(src["test"].table, src["test"].idx[last:last + 1]))[0], 0)
        plot.append(pd.DataFrame({"subset": cell.subset, "series": name, "seed": seed,
                                  "step": np.arange(len(forecast)), "value": forecast}))

    model = fit(none_src, text_dim)
    frames += score("patch transformer (no text)", model, none_src)
    plot_rows("patch transformer (no text)", model, none_src)
    _save(model, ctx.dir / "no_text.pt")
    model = fit(cal_src, cal_src["train"].table.shape[1])
    frames += score("patch transformer + calendar", model, cal_src)
    if cell.chosen_src is not None:
        model = fit(cell.chosen_src, text_dim)
        frames += score("patch transformer + text", model, cell.chosen_src)
        frames += score("text removed at test", model, none_src, condition="drop:text")
        plot_rows("patch transformer + text", model, cell.chosen_src)
        _save(model, ctx.dir / "text.pt")
        if spec.n_shuffle is None or seed < spec.n_shuffle:
            shuf = shuffled_sources(cell.chosen_src, setup.origin_time, seed, data.period_td * data.input_len)
            model = fit(shuf, text_dim)
            frames += score("patch transformer + shuffled text", model, shuf)
            if spec.linear_text:
                lin, feats = linear_with_text(setup, cell.cal, shuf)
                frames += [_rows(cell, "NLinear + calendar + shuffled text", p, lin.predict(setup.x[p], feats[p]),
                                 seed) for p in ("valid", "test")]
    return JobResult(pd.concat(frames, ignore_index=True), tables={"plot": pd.concat(plot, ignore_index=True)},
                     info={"seconds": round(time.perf_counter() - started, 2)})


def _save(model: nn.Module, path: Path) -> None:
    from polymodal.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
