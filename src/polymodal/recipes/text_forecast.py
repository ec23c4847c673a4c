"""Text-assisted forecasting with a dual tower (TextFusionHTS) on Time-MMD, with controls.

Paper: Xin Zhou, Weiqing Wang, Shilin Qu, Zhiqiang Zhang, Christoph Bergmeir, "Unveiling the
Potential of Text in High-Dimensional Time Series Forecasting", NeurIPS 2024 TSALM workshop,
arXiv 2501.07048. Code: github.com/xinzzzhou/TextFusionHTS. Data here: Time-MMD
(AdityaLab/Time-MMD; the repository has no licence file), with the MM-TSFlib protocol.

Faithful: a time-series tower in the style of PatchTST (instance normalisation, patches, a
Transformer encoder; channel-independent with shared weights), a text tower (frozen language
model embeddings -> Linear -> MLP), fusion by cross-attention with the text as the query and the
patch tokens as keys and values, and one linear layer from the fused vector to the horizon;
MSE loss, Adam at 1e-3, early stopping on validation.

Deviations (each also in docs/recipes.md, section text-forecast): all-MiniLM-L6-v2 (384-d)
instead of Llama embeddings; smaller widths (d_model 32, for speed); LayerNorm encoder; the
text-free model keeps the same attention with a learned query; texts per window are the latest
visible ones; the text recipe (kinds, field, age, lag) is chosen per domain on validation by a
linear proxy; a plain PyTorch loop instead of Lightning; 3 seeds.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from polymodal.config import ProtocolConfig, TrainConfig
from polymodal.data.schema import Tokens
from polymodal.data.sources.time_mmd import MAX_FILL_PERIODS
from polymodal.encoders.series import PatchSeriesEncoder, instance_norm
from polymodal.encoders.text import MINILM_ID, SentenceTextEncoder
from polymodal.fusion.text_query import TextQueryFusion
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe
from polymodal.runs.problem import Problem
from polymodal.tasks.forecast import ForecastTask

if TYPE_CHECKING:
    from polymodal.runs.forecast_jobs import DomainData

# Patch length and stride by input length: about 8-12 patches for every frequency.
PATCHING = {8: (2, 1), 24: (4, 2), 96: (16, 8)}


class TextForecastConfig(BaseModel):
    """Defaults: TextFusionHTS's architecture at CPU-friendly widths; unknown keys are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: str = "all"  # a Time-MMD domain, a comma-separated list, or "all"
    horizons: tuple[int, ...] | None = None  # None: the four horizons of the domain's frequency
    channels: Literal["target", "all"] = "target"  # "target": univariate OT, the comparable protocol
    text_kinds: tuple[str, ...] = ("report", "search")
    text_model: str = MINILM_ID
    text_max_len: int = 64  # word pieces per text; most facts are one or two sentences
    # Text recipe candidates, one chosen per domain on validation windows by a linear proxy
    # (forecast_selection): each kind alone and both together x field x maximum age (by frequency,
    # forecast_selection.MAX_AGES) x publication lag; every window mean-pools its latest text_k texts.
    text_field_options: tuple[str, ...] = ("fact", "preds", "fact+preds")
    text_lag_options: tuple[int, ...] = (0, 30)  # days after a text's end_date before it may be read
    text_k: int = 4
    select_text: bool = True  # False: all kinds, fact, whole input window, lag 0 (no selection)
    # A text kind (report / search) is a candidate only if it gives this share of the training
    # windows a text: several domains' reports start after the training period and would appear only at test.
    min_kind_coverage: float = 0.5
    d_model: int = 32  # paper 128; 32 is 2-3x faster than 64 on one CPU thread (see docs)
    heads: int = 4  # paper 16 (encoder) and 8 (fusion)
    layers: int = 1  # paper 1
    d_ff: int = 64  # paper 64
    dropout: float = 0.2  # paper 0.2
    text_hidden: int = 64  # paper 768
    # Add the text query to the attention output; without it (the paper) text can only re-weight
    # the series patches and never move the forecast's level.
    text_residual: bool = True
    shuffle_seeds: int | None = None  # None: a shuffled-text model for every seed
    # Windows per training epoch, drawn afresh each epoch: only the daily domain (~11k overlapping
    # windows) has more; early stopping then checks validation every 2k windows.
    epoch_windows: int = 2048
    max_fill: int = Field(MAX_FILL_PERIODS, ge=0, description=(
        "most consecutive periods without a target that the Time-MMD reader fills with the last value; a longer "
        "gap (a typo date far in the future, say) is an error naming the file and row"))
    p_adjust: Literal["holm", "bh"] = Field("holm", description=(
        "multiple-testing adjustment of the Diebold-Mariano p-values: Holm (family-wise error) or "
        "Benjamini-Hochberg (false discovery rate); 'significant' is counted on the adjusted values"))
    dm_family: Literal["grid", "comparison"] = Field("grid", description=(
        "the family adjusted together: every test of the run (cells x comparisons) or each comparison across cells"))
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_epochs=15, patience=3, batch_size=128,
                                                                   lr=1e-3, threads=1, progress=False))
    protocol: ProtocolConfig = Field(default_factory=lambda: ProtocolConfig(seeds=3, selections=("valid",)))


class DualTowerForecaster(nn.Module):
    """(B, L) window + text Tokens (B, K, D_txt) -> (B, H) forecast on the window's scale.

    Instance-normalise the window, encode its patches, fuse with the text (text as the query),
    one linear layer to the horizon, de-normalise.
    """

    def __init__(self, series: PatchSeriesEncoder, fusion: TextQueryFusion, horizon: int) -> None:
        super().__init__()
        self.series, self.fusion = series, fusion
        self.head = nn.Linear(fusion.out_dim, horizon)

    def forward(self, x: torch.Tensor, text: Tokens) -> torch.Tensor:
        z, mean, std = instance_norm(x)  # (B, L), (B, 1), (B, 1)
        fused = self.fusion({"series": self.series(z), "text": text})  # (B, D)
        return self.head(fused) * std + mean  # (B, H)


def build_model(cfg: TextForecastConfig, input_len: int, text_dim: int, horizon: int) -> DualTowerForecaster:
    patch_len, stride = PATCHING.get(input_len, (max(1, input_len // 6), max(1, input_len // 12)))
    series = PatchSeriesEncoder(input_len, patch_len, stride, cfg.d_model, cfg.heads, cfg.layers, cfg.d_ff,
                                cfg.dropout)
    return DualTowerForecaster(series, TextQueryFusion(cfg.d_model, text_dim, cfg.text_hidden, cfg.heads,
                                                               residual=cfg.text_residual), horizon)


DEVIATIONS = (
    "text tower: frozen all-MiniLM-L6-v2 sentence embeddings (384-d, offline package) instead of Llama-3.1-8B "
    "token averages (4096-d); the text MLP is 64 wide instead of 768",
    "series tower: d_model 32, 4 heads, d_ff 64, LayerNorm (PyTorch encoder layer) instead of d_model 128, 16 heads, "
    "d_ff 64 and BatchNorm; patch length/stride 2/1, 4/2, 16/8 for inputs of 8, 24, 96 (the width is for speed: "
    "d_model 32 trains 2-3x faster than 64 on one CPU thread, so all 40 cells fit in 20 minutes)",
    "the text query is also added to the cross-attention output (--text-residual false gives the paper's "
    "fusion, where text can only re-weight the series patches)",
    "the model without text is the same network whose text query is replaced by one learned query vector",
    "each window mean-pools its latest 4 visible texts (end_date + lag < forecast origin); which kinds "
    "(report / search / both), which field (fact / preds / both), how recent (maximum age) and the lag (0 or 30 "
    "days) are chosen per domain on validation windows by a linear proxy (NLinear + calendar + 8 principal "
    "components of the pooled text), never on test; a kind covering under half of the training windows is not used",
    "data: Time-MMD with the MM-TSFlib protocol (univariate OT, 70/10/20 chronological split) instead of the "
    "paper's Wiki-People and News datasets; --channels all trains on every channel with shared weights",
    "training: a plain PyTorch loop (Adam 1e-3, batch 128, at most 15 epochs of at most 2048 windows, patience 3, "
    "best validation weights), not Lightning; 3 seeds (shuffled text: one draw of earlier windows' texts per seed)",
)

PUBLISHED = (
    PublishedResult("MM-TSFlib (text vs numbers only)", "mse_reduction_general", 0.15,
                    "Time-MMD paper (arXiv 2406.08627), abstract: 'over 15% MSE reduction in general'",
                    "Time-MMD, MM-TSFlib protocol, many forecasters"),
    PublishedResult("MM-TSFlib (text vs numbers only)", "mse_reduction_text_rich", 0.40,
                    "Time-MMD paper (arXiv 2406.08627), abstract: 'up to 40% in domains with rich textual data'",
                    "Time-MMD, MM-TSFlib protocol, many forecasters"),
)


def _domains(spec: str) -> list[str]:
    from polymodal.data.sources.time_mmd import DOMAINS

    if spec == "all":
        return list(DOMAINS)
    return [d.strip() for d in spec.split(",") if d.strip()]


def embed_texts(texts: Any, cfg: TextForecastConfig, cache: Any) -> tuple[np.ndarray, np.ndarray]:
    """(M, D) fact and preds embeddings through the embedding cache; zero rows for empty fields."""
    encoder = SentenceTextEncoder(cfg.text_model, max_seq_length=cfg.text_max_len)
    use_preds = cfg.select_text and any("preds" in f for f in cfg.text_field_options)
    out = []
    for column in (texts.fact, texts.preds if use_preds else []):
        emb = np.zeros((len(texts.fact), encoder.dim), dtype=np.float32)
        rows = [i for i, t in enumerate(column) if t]
        if rows:
            emb[rows] = cache.encode(encoder, [column[i] for i in rows])
        out.append(emb)
    return out[0], out[1]


def choose_text(cfg: TextForecastConfig, data: DomainData) -> dict[str, Any]:
    """The domain's text recipe, chosen on training and validation windows only (forecast_selection).

    Returns the selection record (for the report) with the TextChoice (or None) under ``"choice"``.
    """
    from polymodal.runs.forecast_jobs import setup_cell
    from polymodal.runs.forecast_selection import candidate_choices, select_text
    from polymodal.runs.forecast_text import TextChoice, kinds_covering_training, text_source
    from polymodal.tasks.forecast import calendar_features

    series, dt = data.series, data.texts
    input_len, period, period_td = data.input_len, data.period, data.period_td
    setups = [setup_cell(series, h, input_len, cfg.channels) for h in data.horizons]
    if dt is None or not len(dt.texts):
        return {"kinds_covering_training": {}, "kinds_used": [], "chosen": None, "val_mse_ratio": 1.0,
                "validation_says_text_helps": False, "candidates": [], "choice": None}
    kinds, coverage = kinds_covering_training(dt, setups[0].origin_time["train"], period_td * input_len,
                                              cfg.min_kind_coverage)
    base = {"kinds_covering_training": coverage, "kinds_used": kinds}
    if not kinds:
        return {**base, "chosen": None, "val_mse_ratio": 1.0, "validation_says_text_helps": False,
                "candidates": [], "choice": None}
    if not cfg.select_text:
        choice = TextChoice(fields="fact", k=cfg.text_k, lag_days=0, kinds=tuple(kinds))
        return {**base, "chosen": choice.name, "val_mse_ratio": None, "validation_says_text_helps": None,
                "candidates": [], "choice": choice}
    fields = tuple(f for f in cfg.text_field_options if "preds" not in f or dt.preds.any())
    candidates = candidate_choices(series.freq, kinds, fields, cfg.text_lag_options, cfg.text_k)
    cals = [{p: calendar_features(c.origin_time[p], period) for p in c.x} for c in setups]
    result = select_text(setups, cals, dt, candidates,
                         lambda d, c, ch: {p: text_source(d, c.origin_time[p], ch, period_td, input_len) for p in c.x})
    return {**base, **result.as_dict(), "choice": result.chosen}


def _build_for(cfg: TextForecastConfig, input_len: int, text_dim: int, horizon: int) -> DualTowerForecaster:
    return build_model(cfg, input_len, text_dim, horizon)


def build(cfg: TextForecastConfig, *, data_dir: str | Path | None, cache_dir: str | Path | None = None) -> Problem:
    """Load each domain's series and texts (texts embedded through the cache) and hand the runner a
    text-choice job per domain and, per (domain, horizon) cell, a baseline job and one job per seed."""
    from polymodal.data.paths import resolve_cache_dir, resolve_data_dir
    from polymodal.data.sources.time_mmd import FREQUENCIES, load_series, load_texts
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.runs.forecast_jobs import DomainData, ForecastSpec, forecast_jobs, setup_cell
    from polymodal.runs.forecast_text import DomainTexts

    data_root = resolve_data_dir(data_dir)
    cache = EmbeddingCache(resolve_cache_dir(cache_dir) / "embeddings")
    domains: dict[str, DomainData] = {}
    adapter: dict[str, Any] = {}
    scalers: dict[str, Any] = {}
    example: list[dict[str, Any]] = []
    for domain in _domains(cfg.domain):
        series = load_series(data_root, domain, max_fill=cfg.max_fill)
        texts = load_texts(data_root, domain, cfg.text_kinds)
        fact, preds = embed_texts(texts, cfg, cache)
        horizons = tuple(cfg.horizons or FREQUENCIES[series.freq]["horizons"])
        data = domains[domain] = DomainData(series, DomainTexts(texts, fact, preds), horizons)
        adapter[domain] = {"freq": series.freq, "periods": len(series), "channels": series.channels,
                           "first": str(series.start[0])[:10], "last": str(series.start[-1])[:10],
                           "series_actions": series.actions, "text_actions": texts.actions, "texts": len(texts),
                           "text_kinds": {k: texts.kind.count(k) for k in cfg.text_kinds}}
        setup = setup_cell(series, horizons[0], data.input_len, cfg.channels)
        scalers[domain] = {"freq": series.freq, "input_len": data.input_len, "horizons": list(horizons),
                           "mean": float(setup.scaler.mean_[0]), "scale": float(setup.scaler.scale_[0]),
                           "text_dim": int(fact.shape[1])}
        if not example:
            example = _example_rows(data, int(setup.origins["test"][0]))
    train_kw = {"max_epochs": cfg.train.max_epochs, "patience": cfg.train.patience,
                "batch_size": cfg.train.batch_size, "lr": cfg.train.lr, "threads": cfg.train.threads or 1,
                "epoch_windows": cfg.epoch_windows}
    spec = ForecastSpec(build=partial(_build_for, cfg), choose=partial(choose_text, cfg), train_kw=train_kw,
                        channels=cfg.channels, seeds=cfg.protocol.seeds, n_shuffle=cfg.shuffle_seeds,
                        min_kind_coverage=cfg.min_kind_coverage)
    task = ForecastTask(headline="patch transformer + text", n_boot=cfg.protocol.n_boot, p_adjust=cfg.p_adjust,
                        dm_family=cfg.dm_family)
    return Problem(
        task=task,
        jobs=forecast_jobs(spec, domains),
        dataset={"description": "Time-MMD (MM-TSFlib protocol: univariate OT, 70/10/20 chronological split)",
                 "version": "AdityaLab/Time-MMD", "sizes": {d: a["periods"] for d, a in adapter.items()},
                 "files": {d: str(data_root / "Time-MMD" / "numerical" / d / f"{d}.csv") for d in adapter}},
        published=[p.__dict__ for p in PUBLISHED],
        notes=["Published numbers are for other forecasters (MM-TSFlib), not this dual tower."],
        extra={"adapter": adapter, "embedding_cache": cache.stats.as_dict()},
        # what `polymodal predict` needs, as data: the train scaler of each domain's target and a few input rows
        artifacts={"forecast": {"domains": scalers}, "example_input": {"rows": example}},
    )


def _example_rows(data: DomainData, origin: int) -> list[dict[str, Any]]:
    """The input window of the first test forecast, in the predict input format (future values removed)."""
    series, dt = data.series, data.texts
    rows = []
    for t in range(origin - data.input_len, origin):
        text = ""
        if dt is not None:
            inside = np.flatnonzero((dt.texts.end >= series.start[t]) & (dt.texts.end <= series.end[t]))
            text = next((dt.texts.fact[i] for i in inside[::-1] if dt.texts.fact[i]), "")
        rows.append({"domain": series.domain, "date": str(series.start[t])[:10], "value": float(series.values[t, 0]),
                     "text": text})
    return rows


def evaluate_tables(predictions: Any, tables: dict[str, Any]) -> dict[str, Any]:
    """Cell facts (windows, chosen text, kind coverage) and each domain's text selection, from the run's tables."""
    import json

    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        return v.item() if hasattr(v, "item") else v

    cells = {str(r["subset"]): {k: clean(v) for k, v in r.items() if k != "subset"}
             for r in tables.get("cells", _EMPTY).to_dict("records")}
    for info in cells.values():
        info["text_kind_train_coverage"] = json.loads(info.get("text_kind_train_coverage") or "{}")
        info["chosen_text"] = info.get("chosen_text") or None
    selection: dict[str, Any] = {}
    candidates = tables.get("text_candidates", _EMPTY)
    for r in tables.get("domains", _EMPTY).to_dict("records"):
        r = {k: clean(v) for k, v in r.items()}
        domain = str(r.pop("domain"))
        r["chosen"] = r.get("chosen") or None
        r["kinds_covering_training"] = json.loads(r.get("kinds_covering_training") or "{}")
        r["kinds_used"] = json.loads(r.get("kinds_used") or "[]")
        part = candidates[candidates["domain"] == domain] if len(candidates) else candidates
        r["candidate_table"] = [{k: clean(v) for k, v in c.items() if k != "domain"} for c in part.to_dict("records")]
        selection[domain] = r
    return {"cells_info": cells, "text_selection": selection}


class ForecastPredictor:
    """Forecasts from new history with a finished text-forecast run.

    Input (CSV): one row per period of history, ``domain, date, value[, text]`` -- ``date`` the
    period's start (YYYY-MM-DD, on the domain's grid: monthly, weekly or daily, consecutive), ``value``
    the target (OT) on its original scale, ``text`` an optional report about that period (published
    after the period ends; the validation-chosen recipe decides which of them a forecast reads). At
    least the domain's input length of periods (8 monthly, 24 weekly, 96 daily) per domain; the
    latest ones are used. Output: one row per (domain, horizon, step) with the forecast date and
    the seed-mean forecast of the text model and of the same model without text, on the original scale.
    """

    def __init__(self, run_dir: Path, cache_dir: Path | None = None) -> None:
        from polymodal.io import read_run_json

        self.run_dir = Path(run_dir)
        self.cfg = TextForecastConfig.model_validate(read_run_json(self.run_dir / "config.json")["options"])
        self.state = read_run_json(self.run_dir / "artifacts" / "forecast.json")["domains"]
        self.cache_dir = cache_dir
        self.skips: dict[str, Any] = {}

    def read_input(self, path: Path) -> pd.DataFrame:
        from polymodal.data.tables import read_csv

        return self._validate(read_csv(Path(path)), Path(path))

    def _validate(self, frame: pd.DataFrame, source: Path | str) -> pd.DataFrame:
        from polymodal.errors import DataError
        from polymodal.tasks.base import check_columns

        check_columns(frame, ("domain", "date", "value"), str(source))
        frame = frame.copy()
        frame["text"] = frame["text"].fillna("").astype(str) if "text" in frame.columns else ""
        for i, row in enumerate(frame.itertuples(index=False), start=1):
            if str(row.domain) not in self.state:
                raise DataError(f"domain {row.domain!r} is not in this run ({', '.join(self.state)})", file=source,
                                row=i, field="domain")
            if pd.isna(pd.to_datetime(row.date, errors="coerce", format="%Y-%m-%d")):
                raise DataError(f"date {row.date!r} is not YYYY-MM-DD", file=source, row=i, field="date")
            if pd.isna(pd.to_numeric(row.value, errors="coerce")):
                raise DataError(f"value {row.value!r} is not a number", file=source, row=i, field="value")
        frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d")
        frame["value"] = pd.to_numeric(frame["value"]).astype(np.float64)
        for domain, part in frame.groupby("domain", sort=False):
            need = int(self.state[domain]["input_len"])
            if len(part) < need:
                raise DataError(f"domain {domain!r} has {len(part)} periods of history; the model needs {need}",
                                file=source, field="value")
        frame.attrs["source"] = str(source)
        return frame

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        if "source" not in frame.attrs:  # a frame built in Python: validated like a file
            frame = self._validate(frame, "input frame")
        return pd.concat([self._domain(str(d), part) for d, part in frame.groupby("domain", sort=False)],
                         ignore_index=True)

    def example_input(self, n: int = 5) -> pd.DataFrame:
        from polymodal.io import read_run_json

        rows = read_run_json(self.run_dir / "artifacts" / "example_input.json")["rows"]
        return pd.DataFrame(rows)  # the whole input window: a forecast needs all of it

    def _domain(self, domain: str, part: pd.DataFrame) -> pd.DataFrame:
        from polymodal.data.sources.time_mmd import FREQUENCIES, TextData
        from polymodal.errors import DataError
        from polymodal.runs.forecast_jobs import PERIOD_DAYS
        from polymodal.runs.forecast_jobs import predict as predict_windows
        from polymodal.runs.forecast_text import DomainTexts, TextChoice, empty_source, text_source

        state = self.state[domain]
        source = part.attrs.get("source", "input")
        offset = FREQUENCIES[state["freq"]]["offset"]
        part = part.sort_values("date")
        dates = pd.DatetimeIndex(part["date"])
        expected = pd.DatetimeIndex([dates[0] + offset * i for i in range(len(dates))])
        if not dates.equals(expected):
            bad = int(np.flatnonzero(dates != expected)[0])
            raise DataError(f"{domain}: dates must be consecutive periods ({state['freq']}); expected "
                            f"{expected[bad].date()}, got {dates[bad].date()}", file=source, field="date")
        L = int(state["input_len"])
        values = part["value"].to_numpy()[-L:]
        x = ((values - state["mean"]) / state["scale"])[None, :]  # (1, L)
        origin = dates[-1] + offset
        ends = [d + offset - pd.Timedelta(days=1) for d in dates]
        choice_path = self.run_dir / "jobs" / domain / "text_choice" / "choice.json"
        from polymodal.io import read_run_json

        record = read_run_json(choice_path) if choice_path.is_file() else {}
        choice = TextChoice.from_json(record["choice"]) if record.get("choice") else None
        origin_time = np.array([origin.to_datetime64()], dtype="datetime64[ns]")
        src = empty_source(1, int(state["text_dim"]))
        texts_used = 0
        if choice is not None and (part["text"] != "").any():
            rows = np.flatnonzero((part["text"] != "").to_numpy())
            kind = choice.kinds[0] if choice.kinds else "report"
            end = np.array([ends[i].to_datetime64() for i in rows], dtype="datetime64[ns]")
            facts = [str(part["text"].iloc[i]) for i in rows]
            td = TextData(np.array([dates[i].to_datetime64() for i in rows], dtype="datetime64[ns]"), end, facts,
                          facts, [kind] * len(rows), [int(i) + 1 for i in rows])
            fact = self._embed(facts)
            dt = DomainTexts(td, fact, fact)  # the one text column stands for both fields
            src = text_source(dt, origin_time, choice, np.timedelta64(PERIOD_DAYS[state["freq"]], "D"), L)
            texts_used = int((src.idx >= 0).sum())
        none = empty_source(1, int(state["text_dim"]))
        out = []
        for horizon in state["horizons"]:
            forecasts = {"forecast": [], "forecast_no_text": []}
            for seed in range(self.cfg.protocol.seeds):
                folder = self.run_dir / "jobs" / domain / f"h{horizon}" / f"seed_{seed}"
                for column, name, s in (("forecast", "text.pt", src), ("forecast_no_text", "no_text.pt", none)):
                    path = folder / name
                    if choice is None and name == "text.pt":
                        path = folder / "no_text.pt"  # no text recipe in this domain: the text-free model
                        s = none
                    model = self._load(path, L, int(state["text_dim"]), int(horizon))
                    forecasts[column].append(predict_windows(model, x, s)[0])
            steps = np.arange(int(horizon))
            frame = pd.DataFrame({
                "id": [f"{domain}/h{horizon}/{(origin + offset * int(k)).date()}" for k in steps],
                "domain": domain, "horizon": int(horizon), "step": steps + 1,
                "date": [str((origin + offset * int(k)).date()) for k in steps],
                **{c: np.mean(v, axis=0) * state["scale"] + state["mean"] for c, v in forecasts.items()},
                "texts_read": texts_used})
            out.append(frame)
        return pd.concat(out, ignore_index=True)

    def _embed(self, texts: list[str]) -> np.ndarray:
        from polymodal.data.paths import resolve_cache_dir
        from polymodal.encoders.cache import EmbeddingCache

        cache = EmbeddingCache(resolve_cache_dir(self.cache_dir) / "embeddings")
        encoder = SentenceTextEncoder(self.cfg.text_model, max_seq_length=self.cfg.text_max_len)
        return np.asarray(cache.encode(encoder, texts), dtype=np.float32)

    def _load(self, path: Path, input_len: int, text_dim: int, horizon: int) -> nn.Module:
        from polymodal.errors import DataError, MissingDataError

        if not path.is_file():
            raise MissingDataError(f"{path} not found: the run folder is incomplete")
        model = build_model(self.cfg, input_len, text_dim, horizon)
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # a truncated or foreign file: one line, never code from the run folder
            raise DataError(f"cannot load the model weights ({type(err).__name__})", file=path) from None
        return model


_EMPTY = pd.DataFrame()


RECIPE = REGISTRY.register(
    Recipe(
        name="text-forecast",
        paper=Paper("Unveiling the Potential of Text in High-Dimensional Time Series Forecasting", "2501.07048",
                    "NeurIPS 2024 TSALM workshop", "https://github.com/xinzzzhou/TextFusionHTS"),
        summary="Dual-tower (patch transformer + text) forecasting on Time-MMD, with text controls and DM tests",
        config_cls=TextForecastConfig,
        build=build,
        predictor=ForecastPredictor,
        evaluate_tables=evaluate_tables,
        data_licence="Time-MMD (AdityaLab/Time-MMD): no licence file in the repository; check terms before "
                     "redistributing",
        published=PUBLISHED,
        deviations=DEVIATIONS,
    )
)
