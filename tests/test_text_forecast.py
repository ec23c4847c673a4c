"""The text-forecast recipe: registration, forward/backward, planted-text leak tests, validation-only text choice.

The runner side (jobs, eval, resume, predict, the shuffled-text control) is in tests/runs/test_forecast_runner.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.config import apply_overrides
from polymodal.data.schema import Tokens
from polymodal.data.sources.time_mmd import SeriesData, TextData
from polymodal.errors import ConfigError
from polymodal.recipes.registry import REGISTRY
from polymodal.recipes.text_forecast import TextForecastConfig, build_model
from polymodal.runs.forecast_jobs import predict as predict_model
from polymodal.runs.forecast_jobs import setup_cell, train_model
from polymodal.runs.forecast_text import DomainTexts, TextChoice, text_source

REAL = Path(os.environ.get("POLYMODAL_DATA", "/work/shared/data"))
SMALL = TextForecastConfig(d_model=16, heads=2, d_ff=32, text_hidden=16, dropout=0.0)
TRAIN = {"max_epochs": 40, "patience": 6, "batch_size": 64, "lr": 3e-3, "threads": 1}
DAY = np.timedelta64(1, "D")


def test_registered_and_config_round_trips() -> None:
    recipe = REGISTRY.get("text-forecast")
    assert recipe.paper.arxiv_id == "2501.07048" and recipe.published and recipe.deviations
    cfg = TextForecastConfig()
    assert TextForecastConfig.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ConfigError, match="unknown option"):
        apply_overrides(TextForecastConfig, {"no_such_option": 1})
    assert apply_overrides(TextForecastConfig, {"domain": "Climate"}, protocol={"seeds": 2}).protocol.seeds == 2


@pytest.mark.parametrize("with_text", [True, False])
def test_forward_backward_with_and_without_text(with_text: bool) -> None:
    model = build_model(SMALL, input_len=24, text_dim=5, horizon=12)
    x = torch.randn(6, 24)
    mask = torch.zeros(6, 3, dtype=torch.bool)
    if with_text:
        mask[::2, :2] = True  # some samples have text, some do not
    out = model(x, Tokens(torch.randn(6, 3, 5), mask))
    assert out.shape == (6, 12) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _monthly(n: int, values: np.ndarray) -> SeriesData:
    start = (np.datetime64("2000-01") + np.arange(n)).astype("datetime64[ns]")
    end = (start.astype("datetime64[M]") + 1).astype("datetime64[ns]") - DAY
    return SeriesData("Synthetic", "M", start, end, values[:, None], ["OT"])


def _texts(start: np.ndarray, end: np.ndarray, emb: np.ndarray) -> DomainTexts:
    n = len(start)
    texts = TextData(start, end, [f"t{i}" for i in range(n)], [""] * n, ["report"] * n, list(range(1, n + 1)))
    return DomainTexts(texts, emb.astype(np.float32), np.zeros_like(emb, dtype=np.float32))


def _fit_and_score(series: SeriesData, texts: DomainTexts, choice: TextChoice | None, horizon: int = 1) -> float:
    cell = setup_cell(series, horizon, 8, "target")
    period = np.timedelta64(31, "D")
    if choice is None:
        src = {p: text_source(texts, cell.origin_time[p], TextChoice(k=1), period, 8) for p in cell.x}
        src = {p: type(s)(s.table, np.full_like(s.idx, -1)) for p, s in src.items()}
    else:
        src = {p: text_source(texts, cell.origin_time[p], choice, period, 8) for p in cell.x}
    data = {p: (cell.x[p], cell.y[p], src[p]) for p in ("train", "valid")}
    model = train_model(build_model(SMALL, 8, texts.fact.shape[1], horizon), data, seed=0, **TRAIN)
    return float(np.mean((predict_model(model, cell.x["test"], src["test"]) - cell.y["test"]) ** 2))


def test_planted_future_revealing_text_is_never_seen() -> None:
    """Text i describes period i and states its value. Honest visibility gives no gain; a broken
    rule that lets a text be read before its period ends (lag -31 days) gives a large one, so the
    test would catch a leak."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=300)  # white noise: the past says nothing about the next value
    series = _monthly(300, values)
    emb = np.zeros((300, 4))
    emb[:, 0] = (values - values[:210].mean()) / values[:210].std()
    texts = _texts(series.start, series.end, emb)
    none = _fit_and_score(series, texts, None)
    honest = _fit_and_score(series, texts, TextChoice(k=1))
    leaky = _fit_and_score(series, texts, TextChoice(k=1, lag_days=-31))
    assert honest > 0.85 * none, (honest, none)
    assert leaky < 0.5 * none, (leaky, none)


def test_text_recipe_is_chosen_on_validation_and_never_reads_test_texts() -> None:
    """Report texts announce the next jump, search texts are noise: the linear-proxy selection must
    pick the report kind with a large validation gain; rewriting every text about the test period
    must leave the whole selection table unchanged."""
    from polymodal.runs.forecast_selection import candidate_choices, select_text
    from polymodal.tasks.forecast import calendar_features

    rng = np.random.default_rng(2)
    n = 300
    jumps = rng.choice([-1.0, 1.0], size=n) * 2.0
    series = _monthly(n, np.cumsum(jumps + rng.normal(scale=0.3, size=n)))
    report = np.zeros((n, 4))
    report[:-1, 0] = jumps[1:] / 2.0
    search = rng.normal(size=(n, 4))
    start = np.concatenate([series.start, series.start])
    end = np.concatenate([series.end - DAY, series.end])  # search texts end last: they are the latest
    texts = TextData(start, end, [f"t{i}" for i in range(2 * n)], [""] * 2 * n, ["report"] * n + ["search"] * n,
                     list(range(1, 2 * n + 1)))
    order = np.argsort(end, kind="stable")
    emb = np.concatenate([report, search]).astype(np.float32)
    dt = subset_sorted(texts, emb, order)
    cells = [setup_cell(series, h, 8, "target") for h in (1, 2)]
    cals = [{p: calendar_features(c.origin_time[p], 12) for p in c.x} for c in cells]
    cands = candidate_choices("M", ["report", "search"], ("fact",), (0,), 1)

    def sources(d: DomainTexts, c: object, ch: TextChoice) -> dict:
        return {p: text_source(d, c.origin_time[p], ch, np.timedelta64(31, "D"), 8) for p in c.x}

    sel = select_text(cells, cals, dt, cands, sources)
    assert sel.chosen is not None and sel.chosen.kinds == ("report",), sel.chosen
    assert sel.val_ratio < 0.5
    after_valid = series.start[cells[0].origins["test"][0] - 1]
    changed = dt.texts.end >= after_valid
    assert changed.any()
    dt.fact[changed] = rng.normal(size=(int(changed.sum()), 4))  # texts only test windows can see
    assert select_text(cells, cals, dt, cands, sources).table == sel.table


def subset_sorted(texts: TextData, emb: np.ndarray, order: np.ndarray) -> DomainTexts:
    t = TextData(texts.start[order], texts.end[order], [texts.fact[i] for i in order], [""] * len(order),
                 [texts.kind[i] for i in order], [texts.row[i] for i in order])
    return DomainTexts(t, emb[order], np.zeros_like(emb[order]))


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "Time-MMD").is_dir(), reason="Time-MMD not in the data directory")
def test_real_domain_end_to_end(tmp_path: Path) -> None:
    from polymodal.recipes.text_forecast import RECIPE
    from polymodal.runs import evaluate_run, run_recipe

    cfg = apply_overrides(TextForecastConfig, {"domain": "Economy", "horizons": [6], "text_k": 1,
                                               "text_field_options": ["fact"], "text_lag_options": [0]},
                          train={"max_epochs": 5},
                          protocol={"seeds": 1})
    cache = os.environ.get("POLYMODAL_CACHE") or tmp_path / "cache"
    metrics = run_recipe(RECIPE, cfg, out_dir=tmp_path / "run", data_dir=REAL, cache_dir=cache, progress=False)
    assert metrics is not None and metrics["summary"]["cells"] == 1
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    tests = saved["tests"]["Economy/h6"]
    assert "text vs no text" in tests and "linear: text vs no text" in tests
    assert "p_adjusted" in tests["text vs no text"]
    assert saved["text_selection"]["Economy"]["chosen"] == saved["cells_info"]["Economy/h6"]["chosen_text"]
    assert evaluate_run(tmp_path / "run")[1] == []
    assert "Economy/h6" in (tmp_path / "run" / "report.md").read_text()
