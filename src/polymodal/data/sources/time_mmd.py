"""Time-MMD (AdityaLab/Time-MMD): ten dated numerical series, each with dated report and search texts.

Layout under the data directory::

    Time-MMD/numerical/<Domain>/<Domain>.csv          start_date, end_date, OT, covariates ...
    Time-MMD/textual/<Domain>/<Domain>_report.csv     start_date, end_date, fact, preds
    Time-MMD/textual/<Domain>/<Domain>_search.csv     start_date, end_date, fact, preds

Every trap found in these files is handled explicitly and written into ``SeriesData.actions`` /
``TextData.actions`` (so a run's report lists what was done):

* dates: ``start_date`` (Health_AFR has none: its first ``date`` column, checked equal to the
  duplicated ``date.1``); rows are sorted by date (Climate is newest first, Economy unsorted);
* two rows sharing a start date (Health_US: five week-53 rows dated like the following week 1):
  the first is re-dated one period earlier when that slot is free, else dropped (Health_US: the
  slot is taken, so the five week-53 rows are dropped; the grid then has no gap there);
* ``inf`` values (Health_AFR) become missing; leading and trailing rows without a target
  (Health_AFR's first rows, SocialGood's empty last rows) are dropped;
* gaps in the regular grid (Health_AFR: three year-end gaps) are filled by carrying the last value
  forward, never by interpolation, which would copy a later value into an earlier input. How much
  may be filled is bounded: a run of more than ``max_fill`` consecutive periods without a target
  (inserted periods plus missing values; default :data:`MAX_FILL_PERIODS` = 12, the longest real run
  is Health_AFR's 9 weeks) is a DataError naming the file and the row after the gap, since it is a
  wrong date (a year 2100 typo would otherwise invent hundreds of periods) or a hole no model should
  be trained across;
* covariates: numeric columns other than dates and calendar columns; a column missing in more
  than 10% of rows is dropped; others are forward-filled (leading gaps take the column's first
  value, counted);
* texts: empty or "NA"-only ``fact``/``preds`` count as missing; a text with neither is skipped
  and counted (Security's report file has no text at all); a text whose end_date is before its
  start_date is skipped and counted (three Traffic reports); unparsable dates raise a DataError
  naming file, row and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.tables import read_csv
from polymodal.errors import DataError, MissingDataError

DOMAINS = ("Agriculture", "Climate", "Economy", "Energy", "Environment", "Health_AFR", "Health_US",
           "Security", "SocialGood", "Traffic")

# Horizons and input lengths by frequency (Time-MMD / MM-TSFlib). Daily input length 96 is the
# Time-Series-Library default (the issue gives no daily input length).
FREQUENCIES = {
    "M": {"horizons": (6, 8, 10, 12), "input_len": 8, "period": 12, "offset": pd.DateOffset(months=1)},
    "W": {"horizons": (12, 24, 36, 48), "input_len": 24, "period": 52, "offset": pd.Timedelta(days=7)},
    "D": {"horizons": (48, 96, 192, 336), "input_len": 96, "period": 7, "offset": pd.Timedelta(days=1)},
}

#: Default bound on consecutive periods without a target that load_series fills by carrying the
#: last value forward (inserted grid periods plus missing values). The real files need at most 9
#: (Health_AFR, weekly); one typo date far in the future needs hundreds.
MAX_FILL_PERIODS = 12

# Columns that are dates, identifiers or calendar fields: never a covariate channel.
_NOT_COVARIATES = {"date", "date.1", "start_date", "end_date", "Date", "Month", "MapDate", "ValidStart", "ValidEnd",
                   "StatisticFormatID", "YEAR", "WEEK", "YEAR_WEEK", "CBSA Code", "REGION TYPE", "REGION",
                   "AreaOfInterest", "CBSA", "Category", "Defining Parameter", "Defining Site"}
# "NA", "NA;NA", "NA (No relevant information ...)", "NA\n\nNote: the search results ...": no content.
_NA_TEXT = re.compile(r"^(NA|N/A|nan)(?![A-Za-z])")


@dataclass
class SeriesData:
    """One domain's numerical series on a regular grid, oldest first.

    Attributes:
        domain: e.g. ``"Climate"``.
        freq: ``"M"``, ``"W"`` or ``"D"``, inferred from the dates (not from the domain's name).
        start: (T,) datetime64 start of each period.
        end: (T,) datetime64 end of each period.
        values: (T, C) float64; column 0 is the target OT.
        channels: C channel names, ``channels[0] == "OT"``.
        actions: what the adapter did to the file, one line each.
    """

    domain: str
    freq: str
    start: np.ndarray
    end: np.ndarray
    values: np.ndarray
    channels: list[str]
    actions: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.start)


@dataclass
class TextData:
    """One domain's dated texts, sorted by end date.

    Attributes:
        start, end: (N,) datetime64 period the text is about.
        fact, preds: N strings; ``""`` where the field is missing or "NA".
        kind: N of ``"report"`` / ``"search"``.
        row: N source rows (1-based, header excluded), for error messages.
    """

    start: np.ndarray
    end: np.ndarray
    fact: list[str]
    preds: list[str]
    kind: list[str]
    row: list[int]
    actions: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.end)


def domain_dir(data_dir: str | Path) -> Path:
    root = Path(data_dir) / "Time-MMD"
    if not root.is_dir():
        raise MissingDataError(f"{root} not found: get github.com/AdityaLab/Time-MMD into <data-dir>/Time-MMD")
    return root


def infer_freq(dates: pd.Series) -> str:
    """``"D"``, ``"W"`` or ``"M"`` from the median spacing of sorted unique dates."""
    days = pd.Series(np.sort(dates.unique())).diff().dt.days.median()
    if days <= 1.5:
        return "D"
    if days <= 8:
        return "W"
    if 27 <= days <= 32:
        return "M"
    raise DataError(f"unsupported spacing of {days} days between dates", field="start_date")


def _parse_dates(values: pd.Series, path: Path, column: str) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna()
    if bad.any() or parsed.isna().any():
        row = int(np.flatnonzero((bad | parsed.isna()).to_numpy())[0])
        raise DataError(f"unparsable date {values.iloc[row]!r}", file=path, row=row + 1, field=column)
    return parsed


def load_series(data_dir: str | Path, domain: str, *, max_missing: float = 0.1,
                max_fill: int = MAX_FILL_PERIODS) -> SeriesData:
    """Read, clean and regularise ``numerical/<domain>/<domain>.csv`` (see the module docstring).

    Args:
        data_dir: the data directory holding ``Time-MMD/``.
        domain: one of :data:`DOMAINS`.
        max_missing: a covariate missing in more than this fraction of periods is dropped.
        max_fill: the most consecutive periods without a target that are filled by carrying the
            last value forward; a longer gap is an error.

    Raises:
        MissingDataError: the folder or the file is absent.
        DataError: an empty, non-UTF-8 or malformed file, one cut mid-row, no target column,
            unparsable or off-grid dates, or a gap longer than ``max_fill`` periods (file, row, field).
    """
    if max_fill < 0:
        raise ValueError(f"max_fill must be >= 0, got {max_fill}")
    if domain not in DOMAINS:
        raise DataError(f"unknown Time-MMD domain {domain!r}; known: {', '.join(DOMAINS)}", field="domain")
    path = domain_dir(data_dir) / "numerical" / domain / f"{domain}.csv"
    if not path.is_file():
        raise MissingDataError(f"{path} not found")
    frame = read_csv(path, require_rows=True)
    actions: list[str] = []
    if "OT" not in frame:
        raise DataError("no target column", file=path, field="OT")
    date_col = "start_date" if "start_date" in frame else "date"
    if date_col not in frame:
        raise DataError("no start_date or date column", file=path, field="start_date")
    if date_col == "date" and "date.1" in frame:
        if not (frame["date"].astype(str) == frame["date.1"].astype(str)).all():
            raise DataError("duplicated date columns disagree", file=path, field="date.1")
        actions.append("two 'date' columns (identical): used the first")
    start = _parse_dates(frame[date_col], path, date_col)
    frame["_start"] = start
    frame["_row"] = np.arange(1, len(frame) + 1)
    if not start.is_monotonic_increasing:
        newest_first = start.is_monotonic_decreasing
        frame = frame.sort_values("_start", kind="stable").reset_index(drop=True)
        actions.append("rows sorted by date (file was " + ("newest first)" if newest_first else "unsorted)"))
    try:
        freq = infer_freq(frame["_start"])
    except DataError as err:  # infer_freq sees dates only; say which file
        raise DataError(str(err).split(": ", 1)[-1], file=path, field=date_col) from None
    step = FREQUENCIES[freq]["offset"]
    frame = _fix_duplicate_dates(frame, step, actions)

    ot = pd.to_numeric(frame["OT"], errors="coerce")
    n_inf = int(np.isinf(ot).sum())
    if n_inf:
        actions.append(f"{n_inf} inf target values set missing (rows {frame['_row'][np.isinf(ot)].tolist()})")
    ot = ot.replace([np.inf, -np.inf], np.nan)
    valid = np.flatnonzero(ot.notna().to_numpy())
    if not len(valid):
        raise DataError("no target values", file=path, field="OT")
    first, last = int(valid[0]), int(valid[-1])
    if first:
        actions.append(f"{first} leading rows without a target dropped")
    if last < len(frame) - 1:
        actions.append(f"{len(frame) - 1 - last} trailing rows without a target dropped")
    frame = frame.iloc[first:last + 1].reset_index(drop=True)
    frame["OT"] = ot.iloc[first:last + 1].to_numpy()

    grid = pd.date_range(frame["_start"].iloc[0], frame["_start"].iloc[-1],
                         freq={"M": "MS", "W": "7D", "D": "D"}[freq])
    if freq == "M" and (frame["_start"].dt.day != 1).any():
        row = int(frame.loc[frame["_start"].dt.day != 1, "_row"].iloc[0])
        raise DataError("monthly dates not on the first of the month", file=path, row=row, field=date_col)
    indexed = frame.set_index("_start")
    n_gap = len(grid) - len(indexed.index.intersection(grid))
    if len(indexed.index.difference(grid)):
        off = indexed.index.difference(grid)
        hit = indexed.loc[off[0], "_row"]
        row = int(hit.iloc[0] if isinstance(hit, pd.Series) else hit)
        raise DataError(f"{len(off)} date(s) off the {freq} grid that starts {grid[0].date()}, first "
                        f"{off[0].date()}", file=path, row=row, field=date_col)
    indexed = indexed.reindex(grid)
    _check_fill(indexed, max_fill, freq, path, date_col)
    if n_gap:
        actions.append(f"{n_gap} missing periods inserted on the {freq} grid and filled with the last value")
    n_nan_ot = int(indexed["OT"].isna().sum()) - n_gap
    if n_nan_ot > 0:
        actions.append(f"{n_nan_ot} missing target values inside the series filled with the last value")
    channels, columns = ["OT"], [indexed["OT"].ffill().to_numpy(float)]
    for col in frame.columns:
        if col in _NOT_COVARIATES or col in {"OT", "_start", "_row"}:
            continue
        values = pd.to_numeric(indexed[col], errors="coerce").replace([np.inf, -np.inf], np.nan)
        missing = float(values.isna().mean())
        if missing > max_missing or values.nunique() < 2:
            actions.append(f"covariate {col!r} dropped ({missing:.0%} missing or constant)")
            continue
        if missing:
            actions.append(f"covariate {col!r}: {int(values.isna().sum())} missing values carried forward")
        columns.append(values.ffill().fillna(values.dropna().iloc[0]).to_numpy(float))
        channels.append(col)
    start_arr = grid.to_numpy()
    end_arr = (grid + step).to_numpy() - np.timedelta64(1, "D")
    return SeriesData(domain, freq, start_arr, end_arr, np.stack(columns, axis=1), channels, actions)


def _check_fill(indexed: pd.DataFrame, max_fill: int, freq: str, path: Path, date_col: str) -> None:
    """Raise when more than ``max_fill`` consecutive grid periods lack a target (they would be forward-filled).

    ``indexed`` is on the regular grid: inserted periods have no ``_row``, rows with a missing target
    have one. The error names the source row just after the longest run.
    """
    missing = indexed["OT"].isna().to_numpy()
    if not missing.any():
        return
    # Lengths of runs of True: position of each run's end minus its start.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]  # run i covers [starts[i], ends[i])
    longest = int(np.argmax(ends - starts))
    length = int(ends[longest] - starts[longest])
    if length <= max_fill:
        return
    after = indexed.iloc[ends[longest]]  # the series ends with a target, so a row follows every run
    before = indexed.index[starts[longest] - 1]
    inserted = bool(np.isnan(indexed["_row"].to_numpy(float)[starts[longest]:ends[longest]]).any())
    raise DataError(
        f"{length} consecutive {freq} periods without a target between {before.date()} and "
        f"{indexed.index[ends[longest]].date()} would be filled with the last value (limit max_fill={max_fill}); "
        + ("is this row's date a typo?" if inserted else "too many missing target values in a row")
        + " (a larger max_fill accepts the gap)",
        file=path, row=int(after["_row"]), field=date_col if inserted else "OT")


def _fix_duplicate_dates(frame: pd.DataFrame, step: pd.DateOffset | pd.Timedelta,
                         actions: list[str]) -> pd.DataFrame:
    """Re-date the first of two rows sharing a date to the free slot one step earlier, else drop it."""
    dup = frame["_start"].duplicated(keep="last")
    if not dup.any():
        return frame
    taken = set(frame["_start"])
    moved, dropped = [], []
    for i in np.flatnonzero(dup.to_numpy()):
        earlier = frame.at[i, "_start"] - step
        if earlier not in taken:
            frame.at[i, "_start"] = earlier
            taken.add(earlier)
            moved.append(int(frame.at[i, "_row"]))
        else:
            dropped.append(int(frame.at[i, "_row"]))
    frame = frame.drop(index=[i for i in np.flatnonzero(dup.to_numpy())
                              if int(frame.at[i, "_row"]) in dropped]).sort_values("_start").reset_index(drop=True)
    if moved:
        actions.append(f"{len(moved)} rows sharing a start date with the next row re-dated one period earlier "
                       f"(free slot; rows {moved})")
    if dropped:
        actions.append(f"{len(dropped)} duplicate-date rows dropped (rows {dropped})")
    return frame


def clean_text(value: object) -> str:
    """The text, or ``""`` for a missing, empty or "NA"-only field."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    return "" if not text or _NA_TEXT.match(text) else text


def load_texts(data_dir: str | Path, domain: str, kinds: tuple[str, ...] = ("report", "search")) -> TextData:
    """Read the domain's report and/or search texts, keeping those with a fact or a prediction."""
    root = domain_dir(data_dir) / "textual" / domain
    starts, ends, facts, preds, kind_col, rows = [], [], [], [], [], []
    actions: list[str] = []
    for kind in kinds:
        path = root / f"{domain}_{kind}.csv"
        if not path.is_file():
            raise MissingDataError(f"{path} not found")
        frame = read_csv(path)
        for col in ("start_date", "end_date", "fact", "preds"):
            if col not in frame:
                raise DataError("missing column", file=path, field=col)
        start = _parse_dates(frame["start_date"], path, "start_date")
        end = _parse_dates(frame["end_date"], path, "end_date")
        # Traffic's reports have three year-end texts whose end_date has the wrong year (start
        # 2022-12-26, end 2022-01-01): their date cannot be trusted, so they are skipped and counted.
        backwards = (end < start).to_numpy()
        if backwards.any():
            rows_bad = (np.flatnonzero(backwards) + 1).tolist()
            actions.append(f"{kind}: {len(rows_bad)} texts with end_date before start_date skipped (rows {rows_bad})")
        fact = [clean_text(v) for v in frame["fact"]]
        pred = [clean_text(v) for v in frame["preds"]]
        keep = [bool(f or p) and not b for f, p, b in zip(fact, pred, backwards, strict=True)]
        n_skip = len(keep) - sum(keep) - int(backwards.sum())
        if n_skip:
            actions.append(f"{kind}: {n_skip} of {len(keep)} texts skipped (no fact and no prediction)")
        dups = int(start[keep].duplicated().sum())
        if dups:
            actions.append(f"{kind}: {dups} texts share a start date with another (all kept)")
        for i in np.flatnonzero(keep):
            starts.append(start.iloc[i])
            ends.append(end.iloc[i])
            facts.append(fact[i])
            preds.append(pred[i])
            kind_col.append(kind)
            rows.append(int(i) + 1)
    order = np.argsort(np.array(ends, dtype="datetime64[ns]"), kind="stable")
    return TextData(
        start=np.array(starts, dtype="datetime64[ns]")[order], end=np.array(ends, dtype="datetime64[ns]")[order],
        fact=[facts[i] for i in order], preds=[preds[i] for i in order], kind=[kind_col[i] for i in order],
        row=[rows[i] for i in order], actions=actions,
    )
