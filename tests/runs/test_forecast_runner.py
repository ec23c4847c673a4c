"""text-forecast through the one runner on generated Time-MMD files: it learns a planted text signal,
`polymodal eval` reproduces metrics.json, a killed run resumes to the same numbers, the shuffled-text
control never reads the future, and `polymodal predict` round-trips its example input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.config import apply_overrides
from polymodal.errors import DataError
from polymodal.recipes import text_forecast
from polymodal.recipes.text_forecast import TextForecastConfig
from polymodal.runs import evaluate_run, predict_file, run_recipe, write_example_input
from polymodal.runs.forecast_text import (
    DomainTexts,
    Source,
    TextChoice,
    shuffled_sources,
    text_end_of_rows,
    text_source,
)

N = 240  # monthly periods
DAY = np.timedelta64(1, "D")


def _write_domain(root: Path, gap: bool = False) -> Path:
    """Economy: a random walk whose next jump is announced by the report about the current month."""
    rng = np.random.default_rng(1)
    jumps = rng.choice([-1.0, 1.0], size=N) * 2.0
    values = np.cumsum(jumps + rng.normal(scale=0.3, size=N))
    dates = pd.date_range("2000-01-01", periods=N, freq="MS")
    frame = pd.DataFrame({"start_date": dates.strftime("%Y-%m-%d"), "OT": values})
    if gap:
        frame = frame.drop(index=range(100, 120))  # 20 missing months
    num = root / "Time-MMD" / "numerical" / "Economy"
    num.mkdir(parents=True, exist_ok=True)
    frame.to_csv(num / "Economy.csv", index=False)
    ends = dates + pd.offsets.MonthEnd(0)
    facts = ["next month rises sharply" if j > 0 else "next month falls sharply" for j in np.r_[jumps[1:], 1.0]]
    texts = pd.DataFrame({"start_date": dates.strftime("%Y-%m-%d"), "end_date": ends.strftime("%Y-%m-%d"),
                          "fact": facts, "preds": "NA"})
    txt = root / "Time-MMD" / "textual" / "Economy"
    txt.mkdir(parents=True, exist_ok=True)
    texts.to_csv(txt / "Economy_report.csv", index=False)
    return root


def _cfg(**overrides: object) -> TextForecastConfig:
    return apply_overrides(TextForecastConfig, {"domain": "Economy", "horizons": [1, 3], "text_kinds": ["report"],
                                                "text_k": 1, "text_field_options": ["fact"], "text_lag_options": [0],
                                                "d_model": 16, "heads": 2, "d_ff": 32, "text_hidden": 16,
                                                "dropout": 0.0, **overrides},
                           train={"max_epochs": 30, "patience": 5, "lr": 3e-3, "batch_size": 64},
                           protocol={"seeds": 2, "n_boot": 200})


@pytest.fixture(autouse=True)
def hashing_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from polymodal.encoders.text import HashingTextEncoder

    # word features: "rises" and "falls" get different buckets; no pretrained model needed
    monkeypatch.setattr(text_forecast, "SentenceTextEncoder",
                        lambda *a, **k: HashingTextEncoder(dim=16, analyzer="word", ngram_range=(1, 1)))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    from polymodal.encoders.text import HashingTextEncoder

    mp = pytest.MonkeyPatch()
    mp.setattr(text_forecast, "SentenceTextEncoder",
               lambda *a, **k: HashingTextEncoder(dim=16, analyzer="word", ngram_range=(1, 1)))
    root = tmp_path_factory.mktemp("data")
    data = _write_domain(root)
    out = root / "run"
    metrics = run_recipe(text_forecast.RECIPE, _cfg(), out_dir=out, data_dir=data, cache_dir=root / "cache",
                         progress=False)
    mp.undo()
    assert metrics is not None
    return data, out, metrics


def test_learns_the_planted_text_and_tests_it(finished: tuple[Path, Path, dict]) -> None:
    _, _, metrics = finished
    cell = metrics["subsets"]["Economy/h1"]
    mse = {name: m["splits"]["test"]["mse"]["mean"] for name, m in cell.items()}
    assert mse["patch transformer + text"] < 0.5 * mse["patch transformer (no text)"]
    assert mse["NLinear + calendar + text"] < 0.5 * mse["NLinear + calendar"]
    assert mse["patch transformer + shuffled text"] > 0.8 * mse["patch transformer (no text)"]
    tests = metrics["tests"]["Economy/h1"]
    assert tests["text vs no text"]["p_adjusted"] < 0.05 <= tests["shuffled vs no text"]["p_adjusted"]
    assert all(t["p_adjusted"] >= t["p_value"] for c in metrics["tests"].values() for t in c.values())
    assert metrics["summary"]["text_significant_gain"] >= 1 and metrics["summary"]["p_adjust"] == "holm"
    assert metrics["text_selection"]["Economy"]["chosen"].startswith("report,fact")
    assert metrics["cells_info"]["Economy/h3"]["windows_test"] == 48 - 3 + 1


def test_predictions_are_one_row_per_window(finished: tuple[Path, Path, dict]) -> None:
    _, out, metrics = finished
    preds = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    assert {"mse", "mae", "mse_orig", "mae_orig"} <= set(preds.columns)
    one = preds[(preds["model"] == "patch transformer + text") & (preds["seed"] == 0) & (preds["split"] == "test")
                & (preds["subset"] == "Economy/h1")]
    assert len(one) == 48 and one["id"].is_unique and one["id"].iloc[0] == "2016-01-01"
    # the cell metric is the mean of the window losses, and the original scale is the scaler's
    assert metrics["subsets"]["Economy/h1"]["patch transformer + text"]["splits"]["test"]["mse"]["per_seed"][0] == \
        pytest.approx(one["mse"].mean())
    assert (one["mse_orig"] / one["mse"]).std() < 1e-9
    assert set(preds.loc[preds["model"] == "text removed at test", "condition"]) == {"drop:text"}
    assert (out / "report.md").read_text().count("Economy/h1") >= 2


def test_eval_reproduces_metrics_exactly(finished: tuple[Path, Path, dict]) -> None:
    _, out, _ = finished
    again, differences = evaluate_run(out)
    assert differences == []
    assert again["tests"] == json.loads((out / "metrics.json").read_text())["tests"]


def test_kill_and_resume_gives_the_same_metrics(finished: tuple[Path, Path, dict], tmp_path: Path) -> None:
    data, out, _ = finished
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / "jobs" / "Economy" / "h3" / "seed_1" / "result.json").unlink()  # killed before it finished
    (copy / "jobs" / "Economy" / "h1" / "baselines" / "result.json").unlink()
    again = run_recipe(text_forecast.RECIPE, _cfg(), out_dir=copy, data_dir=data, cache_dir=data / "cache",
                       progress=False)
    assert again is not None
    assert sorted(again["runs"][-1]["jobs_run"]) == ["Economy/h1/baselines", "Economy/h3/seed_1"]
    old = json.loads((out / "metrics.json").read_text())
    new = json.loads((copy / "metrics.json").read_text())
    for key in ("models", "subsets", "tests", "summary", "comparisons", "cells_info", "text_selection"):
        assert new[key] == old[key], key


def test_shuffled_text_never_comes_from_after_the_origin() -> None:
    """Texts about every month; the control borrows another, earlier window's texts. No window may
    receive a text whose end + lag is on or after its origin; the old whole-part permutation did."""
    start = (np.datetime64("2000-01") + np.arange(120)).astype("datetime64[ns]")
    end = (start.astype("datetime64[M]") + 1).astype("datetime64[ns]") - DAY
    from polymodal.data.sources.time_mmd import TextData

    texts = TextData(start, end, [f"t{i}" for i in range(120)], ["p"] * 120, ["report"] * 120, list(range(120)))
    dt = DomainTexts(texts, np.eye(120, 4, dtype=np.float32), np.eye(120, 4, dtype=np.float32))
    choice = TextChoice(fields="fact+preds", k=2, lag_days=10)
    times = {"train": start[8:80], "valid": start[80:95], "test": start[95:]}
    src = {p: text_source(dt, t, choice, np.timedelta64(31, "D"), 8) for p, t in times.items()}
    ends = text_end_of_rows(dt, choice)
    lag = np.timedelta64(10, "D")

    def future(source: Source, origin: np.ndarray) -> int:
        used = source.idx >= 0
        return int(((ends[np.clip(source.idx, 0, None)] + lag >= origin[:, None]) & used).sum())

    for seed in range(5):
        shuf = shuffled_sources(src, times, seed, np.timedelta64(31 * 8, "D"))
        assert all(future(shuf[p], times[p]) == 0 for p in times)
        assert (shuf["test"].idx >= 0).any() and not np.array_equal(shuf["test"].idx, src["test"].idx)
    old = np.random.default_rng(10_000).permutation(len(src["test"].idx))  # the earlier control
    assert future(Source(src["test"].table, src["test"].idx[old]), times["test"]) > 0


def test_predict_round_trip_and_bad_input(finished: tuple[Path, Path, dict], tmp_path: Path) -> None:
    _, out, _ = finished
    example = tmp_path / "example.csv"
    rows = write_example_input(out, example)
    frame = pd.read_csv(example)
    assert rows == 8 and list(frame.columns) == ["domain", "date", "value", "text"]
    output = tmp_path / "forecast.csv"
    n = predict_file(out, example, output)
    result = pd.read_csv(output)
    assert n == len(result) == 1 + 3 and set(result["horizon"]) == {1, 3}
    assert np.isfinite(result[["forecast", "forecast_no_text"]].to_numpy()).all()
    assert result["date"].iloc[0] == "2016-01-01" and result["texts_read"].iloc[0] == 1
    # the text announces the next jump: the text model's forecast moves the announced way
    last, jump_up = frame["value"].iloc[-1], "rises" in frame["text"].iloc[-1]
    assert (result["forecast"].iloc[0] > last) == jump_up
    bad = tmp_path / "bad.csv"
    frame.assign(date=["2003-05-01", *frame["date"].iloc[1:]]).drop(columns="text").to_csv(bad, index=False)
    with pytest.raises(DataError, match="consecutive"):
        predict_file(out, bad, tmp_path / "x.csv")
    frame.drop(columns="value").to_csv(bad, index=False)
    with pytest.raises(DataError, match="value"):
        predict_file(out, bad, tmp_path / "x.csv")


def test_max_fill_reaches_the_reader(tmp_path: Path) -> None:
    field = TextForecastConfig.model_fields["max_fill"]
    assert field.description and TextForecastConfig().max_fill == 12
    data = _write_domain(tmp_path, gap=True)
    with pytest.raises(DataError, match="max_fill=12"):
        text_forecast.build(_cfg(), data_dir=data, cache_dir=tmp_path / "cache")
    problem = text_forecast.build(_cfg(max_fill=20), data_dir=data, cache_dir=tmp_path / "cache")
    assert problem.extra["adapter"]["Economy"]["periods"] == N
