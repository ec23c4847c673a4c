"""Time-MMD adapter on small synthetic files that reproduce each trap of the real ones."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.data.sources.time_mmd import clean_text, infer_freq, load_series, load_texts
from polymodal.errors import DataError, MissingDataError

REAL = Path(os.environ.get("POLYMODAL_DATA", "/work/shared/data"))


def _write(root: Path, domain: str, numerical: pd.DataFrame, report: pd.DataFrame | None = None,
           search: pd.DataFrame | None = None) -> Path:
    (root / "Time-MMD" / "numerical" / domain).mkdir(parents=True)
    (root / "Time-MMD" / "textual" / domain).mkdir(parents=True)
    numerical.to_csv(root / "Time-MMD" / "numerical" / domain / f"{domain}.csv", index=False)
    empty = pd.DataFrame({"start_date": [], "end_date": [], "fact": [], "preds": []})
    for kind, frame in (("report", report), ("search", search)):
        (frame if frame is not None else empty).to_csv(
            root / "Time-MMD" / "textual" / domain / f"{domain}_{kind}.csv", index=True)
    return root


def _weekly(n: int, start: str = "2000-01-03") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="7D")


def test_newest_first_is_sorted_and_frequency_is_read_from_dates(tmp_path: Path) -> None:
    dates = _weekly(30)[::-1]  # newest first, like Climate
    frame = pd.DataFrame({"start_date": dates.strftime("%Y-%m-%d"), "OT": np.arange(30.0)[::-1], "D0": np.arange(30.0)})
    series = load_series(_write(tmp_path, "Climate", frame), "Climate")
    assert series.freq == "W"
    assert np.all(np.diff(series.start.astype("int64")) > 0)
    assert series.values[0, 0] == 0.0 and series.channels == ["OT", "D0"]
    assert any("newest first" in a for a in series.actions)


def test_unsorted_monthly(tmp_path: Path) -> None:
    dates = pd.date_range("1990-01-01", periods=24, freq="MS")
    order = np.random.default_rng(0).permutation(24)
    frame = pd.DataFrame({"start_date": dates[order].strftime("%Y-%m-%d"), "OT": np.arange(24.0)[order]})
    series = load_series(_write(tmp_path, "Economy", frame), "Economy")
    assert series.freq == "M" and np.array_equal(series.values[:, 0], np.arange(24.0))
    assert any("unsorted" in a for a in series.actions)


def test_health_afr_traps_inf_leading_nan_duplicate_date_columns_gaps(tmp_path: Path) -> None:
    dates = _weekly(40)
    keep = np.ones(40, bool)
    keep[[20, 21]] = False  # a two-week gap
    ot = np.arange(40.0)
    ot[:3] = np.nan  # leading rows without a target
    ot[10] = np.inf
    d = dates[keep].strftime("%Y-%m-%d")
    frame = pd.DataFrame({"date": d, "date.1": d, "end_date": d, "OT": ot[keep]})
    frame.columns = ["date", "date", "end_date", "OT"]  # duplicated column names, as in the real file
    series = load_series(_write(tmp_path, "Health_AFR", frame), "Health_AFR")
    assert len(series) == 37  # 40 weeks minus 3 leading rows; the gap is re-inserted
    v = series.values[:, 0]
    assert np.isfinite(v).all()
    assert v[10 - 3] == v[9 - 3]  # inf -> missing -> last value carried forward
    assert v[20 - 3] == v[19 - 3] == v[21 - 3]  # gap filled forward, never from later values
    text = " ".join(series.actions)
    assert "two 'date' columns" in text and "inf" in text and "3 leading rows" in text and "2 missing periods" in text


def test_health_us_duplicate_start_dates_redated_into_free_slot(tmp_path: Path) -> None:
    dates = list(_weekly(20))
    dates[9] = dates[10]  # week 53 labelled with the next week's start; the slot before is free
    frame = pd.DataFrame({"start_date": [x.strftime("%Y-%m-%d") for x in dates], "OT": np.arange(20.0),
                          "YEAR": 2000, "WEEK": np.arange(20)})
    series = load_series(_write(tmp_path, "Health_US", frame), "Health_US")
    assert len(series) == 20 and np.array_equal(series.values[:, 0], np.arange(20.0))
    assert series.channels == ["OT"]  # calendar columns are not covariates
    assert any("re-dated" in a for a in series.actions)


def test_trailing_empty_rows_dropped(tmp_path: Path) -> None:
    dates = pd.date_range("2000-01-01", periods=30, freq="MS")
    ot = np.arange(30.0)
    ot[-5:] = np.nan
    frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "start_date": dates.strftime("%Y-%m-%d"), "OT": ot})
    series = load_series(_write(tmp_path, "SocialGood", frame), "SocialGood")
    assert len(series) == 25 and any("5 trailing rows" in a for a in series.actions)


def test_bad_date_names_file_row_and_field(tmp_path: Path) -> None:
    dates = list(_weekly(10).strftime("%Y-%m-%d"))
    dates[4] = "not a date"
    frame = pd.DataFrame({"start_date": dates, "OT": np.arange(10.0)})
    with pytest.raises(DataError, match=r"Energy\.csv, row 5, field 'start_date'"):
        load_series(_write(tmp_path, "Energy", frame), "Energy")


def test_missing_folder_and_unknown_domain(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError):
        load_series(tmp_path, "Energy")
    with pytest.raises(DataError, match="unknown Time-MMD domain"):
        load_series(tmp_path, "Weather")


def test_texts_empty_and_na_skipped_and_sorted_by_end(tmp_path: Path) -> None:
    frame = pd.DataFrame({"start_date": _weekly(5).strftime("%Y-%m-%d"), "OT": np.arange(5.0)})
    report = pd.DataFrame({"start_date": ["2001-02-01", "2001-01-01", "2001-03-01"],
                           "end_date": ["2001-02-28", "2001-01-31", "2001-03-31"],
                           "fact": ["b", None, "NA (No objective facts were found)"], "preds": ["x", None, "NA;NA"]})
    search = pd.DataFrame({"start_date": ["2000-12-01"], "end_date": ["2000-12-07"], "fact": ["NAFTA was signed"],
                           "preds": [""]})
    texts = load_texts(_write(tmp_path, "Security", frame, report, search), "Security")
    assert texts.fact == ["NAFTA was signed", "b"] and texts.kind == ["search", "report"]
    assert any("2 of 3 texts skipped" in a for a in texts.actions)


def test_text_end_before_start_is_skipped_and_counted(tmp_path: Path) -> None:
    frame = pd.DataFrame({"start_date": _weekly(5).strftime("%Y-%m-%d"), "OT": np.arange(5.0)})
    report = pd.DataFrame({"start_date": ["2022-12-26", "2022-11-01"], "end_date": ["2022-01-01", "2022-11-30"],
                           "fact": ["a", "b"], "preds": ["x", "y"]})
    texts = load_texts(_write(tmp_path, "Traffic", frame, report), "Traffic")
    assert texts.fact == ["b"] and any("1 texts with end_date before start_date skipped (rows [1])" in a
                                       for a in texts.actions)


def test_text_bad_date_names_file_row_and_field(tmp_path: Path) -> None:
    frame = pd.DataFrame({"start_date": _weekly(5).strftime("%Y-%m-%d"), "OT": np.arange(5.0)})
    report = pd.DataFrame({"start_date": ["2001-02-01", "yesterday"], "end_date": ["2001-02-02", "2001-03-01"],
                           "fact": ["a", "b"], "preds": ["x", "y"]})
    with pytest.raises(DataError, match=r"Traffic_report\.csv, row 2, field 'start_date'"):
        load_texts(_write(tmp_path, "Traffic", frame, report), "Traffic")


def test_clean_text_and_infer_freq() -> None:
    assert clean_text("NA \n\nPlease provide more") == "" and clean_text(float("nan")) == ""
    assert clean_text(" National rates rose ") == "National rates rose"
    assert infer_freq(pd.Series(pd.date_range("2000-01-01", periods=5, freq="D"))) == "D"


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "Time-MMD").is_dir(), reason="Time-MMD not in the data directory")
def test_real_files_load_with_expected_traps() -> None:
    climate = load_series(REAL, "Climate")
    assert climate.freq == "W" and any("newest first" in a for a in climate.actions)
    afr = load_series(REAL, "Health_AFR")
    assert np.isfinite(afr.values).all() and any("inf" in a for a in afr.actions)
    assert any("5 duplicate-date rows dropped" in a for a in load_series(REAL, "Health_US").actions)
    assert any("end_date before start_date" in a for a in load_texts(REAL, "Traffic").actions)
    assert load_series(REAL, "Environment").freq == "D"
    security = load_texts(REAL, "Security")
    assert set(security.kind) == {"search"}
