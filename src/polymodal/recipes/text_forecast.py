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

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from polymodal.config import ProtocolConfig, TrainConfig
from polymodal.data.schema import Tokens
from polymodal.encoders.series import PatchSeriesEncoder, instance_norm
from polymodal.encoders.text import MINILM_ID
from polymodal.fusion.text_query import TextQueryFusion
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe

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
    "best validation weights), not Lightning; 3 seeds (shuffled text: one permutation per seed)",
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
    from polymodal.encoders.text import SentenceTextEncoder

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


def choose_text(cfg: TextForecastConfig, series: Any, dt: Any, horizons: tuple[int, ...]) -> dict[str, Any]:
    """The domain's text recipe, chosen on validation windows only (forecast_selection).

    Returns the selection record (for the report) with the TextChoice under ``"choice"``.
    """
    from polymodal.data.sources.time_mmd import FREQUENCIES
    from polymodal.forecast_experiment import TextChoice, kinds_covering_training, setup_cell, text_source
    from polymodal.forecast_selection import candidate_choices, select_text
    from polymodal.tasks.forecast import calendar_features

    spec = FREQUENCIES[series.freq]
    input_len, period = spec["input_len"], spec["period"]
    period_td = np.timedelta64({"M": 31, "W": 7, "D": 1}[series.freq], "D")
    setups = [setup_cell(series, h, input_len, cfg.channels) for h in horizons]
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


def run(cfg: TextForecastConfig, *, data_dir: str | Path | None, out_dir: str | Path,
        cache_dir: str | Path | None = None, log: Any = print) -> dict[str, Any]:
    """Every domain and horizon: baselines, the dual tower with and without text, controls, tests."""
    from polymodal.data.paths import resolve_cache_dir, resolve_data_dir
    from polymodal.data.sources.time_mmd import FREQUENCIES, load_series, load_texts
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.forecast_experiment import DomainTexts, run_cell
    from polymodal.forecast_report import write_forecast_report

    data_root, cache_root = resolve_data_dir(data_dir), resolve_cache_dir(cache_dir)
    cache = EmbeddingCache(cache_root / "embeddings")
    train_kw = {"max_epochs": cfg.train.max_epochs, "patience": cfg.train.patience,
                "batch_size": cfg.train.batch_size, "lr": cfg.train.lr, "threads": cfg.train.threads or 1,
                "epoch_windows": cfg.epoch_windows}
    cells, adapter = [], {}
    for domain in _domains(cfg.domain):
        series = load_series(data_root, domain)
        texts = load_texts(data_root, domain, cfg.text_kinds)
        fact, preds = embed_texts(texts, cfg, cache)
        spec = FREQUENCIES[series.freq]
        horizons = cfg.horizons or spec["horizons"]
        dt = DomainTexts(texts, fact, preds)
        selection = choose_text(cfg, series, dt, horizons)
        adapter[domain] = {"freq": series.freq, "periods": len(series), "channels": series.channels,
                           "first": str(series.start[0])[:10], "last": str(series.start[-1])[:10],
                           "series_actions": series.actions, "text_actions": texts.actions, "texts": len(texts),
                           "text_kinds": {k: texts.kind.count(k) for k in cfg.text_kinds},
                           "text_selection": selection}
        log(f"{domain}: text chosen on validation {selection['chosen']} "
            f"(validation MSE ratio {selection['val_mse_ratio']:.3f})")
        chosen = selection.pop("choice")
        for horizon in horizons:
            cells.append(run_cell(
                series, dt, horizon,
                build=lambda dim, h, L=spec["input_len"]: build_model(cfg, L, dim, h),
                choices=[chosen] if chosen else [], seeds=cfg.protocol.seeds, channels=cfg.channels,
                train_kw=train_kw, n_shuffle=cfg.shuffle_seeds, min_kind_coverage=cfg.min_kind_coverage, log=log))
    return write_forecast_report(Path(out_dir), cells, adapter, cfg.model_dump(mode="json"),
                                 [p.__dict__ for p in PUBLISHED], cache.stats.as_dict())


RECIPE = REGISTRY.register(
    Recipe(
        name="text-forecast",
        paper=Paper("Unveiling the Potential of Text in High-Dimensional Time Series Forecasting", "2501.07048",
                    "NeurIPS 2024 TSALM workshop", "https://github.com/xinzzzhou/TextFusionHTS"),
        summary="Dual-tower (patch transformer + text) forecasting on Time-MMD, with text controls and DM tests",
        config_cls=TextForecastConfig,
        runner=run,
        data_licence="Time-MMD (AdityaLab/Time-MMD): no licence file in the repository; check terms before "
                     "redistributing",
        published=PUBLISHED,
        deviations=DEVIATIONS,
    )
)
