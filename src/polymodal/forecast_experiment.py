"""The forecasting runner: one domain and horizon at a time, every baseline and control, and a test.

For each (domain, horizon) cell:

1. chronological 70/10/20 split; validation and test inputs start one input length earlier;
   a per-channel scaler fitted on the training rows only;
2. baselines: last value, seasonal naive, NLinear, DLinear, NLinear + calendar (ridge, alpha on
   validation);
3. the dual-tower model trained without text (learned query), with text, with text shuffled
   across time (train and test, one permutation per seed), and with calendar features in the
   text's place; the text model is also evaluated with its text removed at test time;
4. the text recipe (kinds, field, maximum age, lag) comes from the runner, chosen per domain on
   validation windows with a linear proxy (forecast_selection); the proxy itself, NLinear +
   calendar + text, is reported beside it, with its own shuffled-text control;
5. a Diebold-Mariano test per cell on the test windows' seed-mean losses: text vs no text,
   shuffled vs no text, text vs shuffled (for the tower and for the linear proxy).

Training is a plain PyTorch loop (Adam, early stopping on validation MSE, best weights kept):
a few hundred tiny models per benchmark make Lightning's per-fit overhead the dominant cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from polymodal.baselines.forecast import LinearForecaster
from polymodal.data.schema import Tokens
from polymodal.data.sources.time_mmd import FREQUENCIES, SeriesData, TextData
from polymodal.forecast_selection import linear_with_text
from polymodal.tasks.forecast import (
    TrainScaler,
    calendar_features,
    chrono_split,
    diebold_mariano,
    forecast_metrics,
    last_value,
    latest_visible,
    make_windows,
    seasonal_naive,
    window_mse,
)
from polymodal.training.best_weights import BestWeights


@dataclass(frozen=True)
class TextChoice:
    """Which texts a window sees: fields, how many of the latest, how old at most, after what lag."""

    fields: str = "fact"  # "fact", "preds" or "fact+preds"
    k: int = 4
    max_age_periods: int | None = None  # None: the input length
    lag_days: int = 0
    kinds: tuple[str, ...] | None = None  # None: every kind loaded ("report", "search")

    @property
    def name(self) -> str:
        kinds = "+".join(self.kinds) if self.kinds else "all"
        return f"{kinds},{self.fields},k={self.k},age={self.max_age_periods},lag={self.lag_days}d"


@dataclass
class DomainTexts:
    """A domain's texts and their frozen embeddings (fact and preds; zero rows where empty)."""

    texts: TextData
    fact: np.ndarray  # (M, D)
    preds: np.ndarray  # (M, D)


@dataclass(frozen=True)
class Source:
    """Token rows for each window: ``table[idx]`` with -1 meaning no token. table (R, D), idx (N, K)."""

    table: np.ndarray
    idx: np.ndarray


def text_source(dt: DomainTexts, origin_time: np.ndarray, choice: TextChoice, period: np.timedelta64,
                input_len: int) -> Source:
    """The latest visible texts of each origin (see tasks.forecast.latest_visible), as token rows."""
    if choice.kinds is not None:
        dt = subset_texts(dt, np.isin(np.array(dt.texts.kind, dtype=object), list(choice.kinds)))
    age = choice.max_age_periods if choice.max_age_periods is not None else input_len
    lag = np.timedelta64(choice.lag_days, "D")
    # the age counts from publication (end + lag): a lag never empties a short age window
    idx = latest_visible(origin_time, dt.texts.end, lag, choice.k, max_age=period * age + lag)  # (N, k)
    m = len(dt.texts)
    fact_ok = np.array([bool(f) for f in dt.texts.fact] + [False])
    preds_ok = np.array([bool(p) for p in dt.texts.preds] + [False])
    parts = []
    if "fact" in choice.fields:
        parts.append(np.where((idx >= 0) & fact_ok[idx], idx, -1))
    if "preds" in choice.fields:
        parts.append(np.where((idx >= 0) & preds_ok[idx], idx + m, -1))
    return Source(np.concatenate([dt.fact, dt.preds]), np.concatenate(parts, axis=1))


def subset_texts(dt: DomainTexts, keep: np.ndarray) -> DomainTexts:
    """The texts where ``keep`` (M,) is True, order kept (so still sorted by end date)."""
    rows = np.flatnonzero(keep)
    t = dt.texts
    texts = TextData(t.start[rows], t.end[rows], [t.fact[i] for i in rows], [t.preds[i] for i in rows],
                     [t.kind[i] for i in rows], [t.row[i] for i in rows], t.actions)
    return DomainTexts(texts, dt.fact[rows], dt.preds[rows])


def kinds_covering_training(dt: DomainTexts, train_times: np.ndarray, max_age: np.timedelta64,
                            min_coverage: float) -> tuple[list[str], dict[str, float]]:
    """Text kinds that give at least ``min_coverage`` of the training windows a text within ``max_age``.

    A kind that starts after the training period (reports in several Time-MMD domains) would be
    unseen in training and then appear at test time: a shift the model never learned to handle.
    Decided on training windows only.
    """
    coverage = {}
    kinds = np.array(dt.texts.kind)
    for kind in sorted(set(dt.texts.kind)):
        ends = dt.texts.end[kinds == kind]
        idx = latest_visible(train_times, ends, np.timedelta64(0, "D"), 1, max_age=max_age)
        coverage[kind] = float((idx[:, 0] >= 0).mean())
    return [k for k, c in coverage.items() if c >= min_coverage], coverage


def calendar_source(origin_time: np.ndarray, period: int) -> Source:
    cal = calendar_features(origin_time, period)  # (N, 4 or 6)
    return Source(cal, np.arange(len(cal))[:, None])


def empty_source(n: int, dim: int) -> Source:
    return Source(np.zeros((1, dim), np.float32), np.full((n, 1), -1))


def shuffled(source: Source, seed: int) -> Source:
    """The same token rows assigned to randomly permuted windows (text shuffled across time)."""
    perm = np.random.default_rng(10_000 + seed).permutation(len(source.idx))
    return Source(source.table, source.idx[perm])


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


def run_cell(series: SeriesData, texts: DomainTexts | None, horizon: int, *, build: Callable[[int, int], nn.Module],
             choices: list[TextChoice], seeds: int, channels: str, train_kw: dict[str, Any],
             n_shuffle: int | None = None, min_kind_coverage: float = 0.5, linear_text: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every model of one cell. ``build(text_dim, horizon)`` makes a fresh dual-tower model.

    Text kinds (report, search) covering fewer than ``min_kind_coverage`` of the training windows
    are left out of the cell (see kinds_covering_training). With one choice no selection fit is
    made (the runner chooses the recipe per domain beforehand, see forecast_selection). With
    ``linear_text`` the NLinear + calendar ridge is also fitted with the chosen texts' principal
    components and with the same texts shuffled across time.
    """
    spec = FREQUENCIES[series.freq]
    input_len, period = spec["input_len"], spec["period"]
    period_td = np.timedelta64({"M": 31, "W": 7, "D": 1}[series.freq], "D")  # a month counts as 31 days for ages
    cell = setup_cell(series, horizon, input_len, channels)
    n_ot = {p: len(o) for p, o in cell.origins.items()}  # OT rows are the first n of each part
    y_test = cell.y["test"]
    started = time.perf_counter()
    preds: dict[str, list[np.ndarray]] = {}  # model -> per seed (N_test*C, H)

    # -- baselines -------------------------------------------------------------------------------
    raw = cell.scaler.transform(series.values if channels == "all" else series.values[:, :1])
    preds["last value"] = [last_value(cell.x["test"][:, :, None], horizon)[:, :, 0]]
    sn = seasonal_naive(raw, cell.origins["test"], horizon, period)  # (N, H, C)
    preds["seasonal naive"] = [sn.transpose(2, 0, 1).reshape(-1, horizon)]
    cal = {p: calendar_features(cell.origin_time[p], period) for p in cell.x}
    for name, kw in (("NLinear", {"kind": "nlinear"}), ("DLinear", {"kind": "dlinear"}),
                     ("NLinear + calendar", {"kind": "nlinear", "calendar": True})):
        lin = LinearForecaster(**kw).fit(cell.x["train"], cell.y["train"], cell.x["valid"], cell.y["valid"],
                                         cal["train"], cal["valid"])
        preds[name] = [lin.predict(cell.x["test"], cal["test"])]

    # -- sources -----------------------------------------------------------------------------------
    text_dim = texts.fact.shape[1] if texts is not None else 1
    none_src = {p: empty_source(len(cell.x[p]), text_dim) for p in cell.x}
    cal_src = {p: calendar_source(cell.origin_time[p], period) for p in cell.x}

    def data(src: dict[str, Source]) -> dict[str, tuple[np.ndarray, np.ndarray, Source]]:
        return {p: (cell.x[p], cell.y[p], src[p]) for p in ("train", "valid")}

    def fit(src: dict[str, Source], dim: int, seed: int) -> nn.Module:
        return train_model(build(dim, horizon), data(src), seed=seed, **train_kw)

    # -- choose the text recipe on validation (seed 0) ---------------------------------------------
    selection: list[dict[str, Any]] = []
    chosen, chosen_src, first_model = None, None, None
    kind_coverage: dict[str, float] = {}
    if texts is not None and len(texts.texts):
        kinds, kind_coverage = kinds_covering_training(texts, cell.origin_time["train"], period_td * input_len,
                                                       min_kind_coverage)
        texts = subset_texts(texts, np.isin(np.array(texts.texts.kind), kinds))
    if texts is not None and len(texts.texts):
        for choice in choices:
            src = {p: text_source(texts, cell.origin_time[p], choice, period_td, input_len) for p in cell.x}
            model = fit(src, text_dim, 0)
            coverage = float((src["train"].idx >= 0).any(1).mean())
            selection.append({"choice": choice.name, "val_mse": float(model.best_val_mse),
                              "train_coverage": coverage, "test_coverage": float((src["test"].idx >= 0).any(1).mean())})
            if chosen is None or model.best_val_mse < min(s["val_mse"] for s in selection[:-1]):
                chosen, chosen_src, first_model = choice, src, model

    # -- the linear proxy with the chosen texts, and with them shuffled (see forecast_selection) -----
    if chosen_src is not None and linear_text:
        lin, feats = linear_with_text(cell, cal, chosen_src)
        preds["NLinear + calendar + text"] = [lin.predict(cell.x["test"], feats["test"])]
        for seed in range(seeds if n_shuffle is None else n_shuffle):
            shuf = {p: shuffled(s, seed) for p, s in chosen_src.items()}
            lin, feats = linear_with_text(cell, cal, shuf)
            preds.setdefault("NLinear + calendar + shuffled text", []).append(lin.predict(cell.x["test"],
                                                                                          feats["test"]))

    # -- neural models, every seed ------------------------------------------------------------------
    for seed in range(seeds):
        m = fit(none_src, text_dim, seed)
        preds.setdefault("patch transformer (no text)", []).append(predict(m, cell.x["test"], none_src["test"]))
        m = fit(cal_src, cal_src["train"].table.shape[1], seed)
        preds.setdefault("patch transformer + calendar", []).append(predict(m, cell.x["test"], cal_src["test"]))
        if chosen_src is None:
            continue
        m = first_model if seed == 0 else fit(chosen_src, text_dim, seed)
        preds.setdefault("patch transformer + text", []).append(predict(m, cell.x["test"], chosen_src["test"]))
        preds.setdefault("text removed at test", []).append(predict(m, cell.x["test"], none_src["test"]))
        if n_shuffle is None or seed < n_shuffle:
            shuf = {p: shuffled(s, seed) for p, s in chosen_src.items()}
            m = fit(shuf, text_dim, seed)
            preds.setdefault("patch transformer + shuffled text", []).append(predict(m, cell.x["test"], shuf["test"]))

    # -- metrics on OT (the comparable univariate numbers) and on all channels ---------------------
    n = n_ot["test"]
    scale, mean = cell.scaler.scale_, cell.scaler.mean_
    models: dict[str, Any] = {}
    for name, runs in preds.items():
        per_seed = [forecast_metrics(y_test[:n], p[:n], scale[0], mean[0]) for p in runs]
        entry = {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]}
        entry.update({f"{k}_std": float(np.std([r[k] for r in per_seed])) for k in ("mse", "mae")})
        entry["seeds"] = len(runs)
        if cell.n_channels > 1:
            entry["mse_all_channels"] = float(np.mean([np.mean((p - y_test) ** 2) for p in runs]))
        models[name] = entry
    loss = {name: np.mean([window_mse(y_test[:n], p[:n]) for p in runs], axis=0) for name, runs in preds.items()}
    tests = {}
    pairs = (("text vs no text", "patch transformer (no text)", "patch transformer + text"),
             ("shuffled vs no text", "patch transformer (no text)", "patch transformer + shuffled text"),
             ("text vs shuffled", "patch transformer + shuffled text", "patch transformer + text"),
             ("text vs text removed", "text removed at test", "patch transformer + text"),
             ("text vs calendar", "patch transformer + calendar", "patch transformer + text"),
             ("text vs NLinear + calendar", "NLinear + calendar", "patch transformer + text"),
             ("linear: text vs no text", "NLinear + calendar", "NLinear + calendar + text"),
             ("linear: shuffled vs no text", "NLinear + calendar", "NLinear + calendar + shuffled text"),
             ("linear: text vs shuffled", "NLinear + calendar + shuffled text", "NLinear + calendar + text"))
    for label, a, b in pairs:
        if a in loss and b in loss:
            tests[label] = diebold_mariano(loss[a], loss[b], horizon)
    seconds = time.perf_counter() - started
    log(f"{series.domain} H={horizon}: {seconds:.1f}s, chosen text {chosen.name if chosen else None}")
    last = n - 1
    plot = {"history": series.values[max(0, cell.origins["test"][last] - 3 * input_len):cell.origins["test"][last], 0],
            "truth": cell.scaler.inverse(y_test[last], 0),
            "forecasts": {k: cell.scaler.inverse(np.mean([p[last] for p in preds[k]], axis=0), 0)
                          for k in ("patch transformer (no text)", "patch transformer + text") if k in preds}}
    return {"domain": series.domain, "horizon": horizon, "input_len": input_len, "channels": cell.n_channels,
            "windows": {p: len(o) for p, o in cell.origins.items()}, "models": models, "tests": tests,
            "text_selection": selection, "chosen_text": chosen.name if chosen else None, "seconds": seconds,
            "text_kind_train_coverage": kind_coverage,
            "plot": plot}
