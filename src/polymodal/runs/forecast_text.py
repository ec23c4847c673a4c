"""Which texts a forecast window sees: visibility, recency, fields, and the shuffled-text control.

A window with origin ``t`` (its forecast is made at ``start[t]``) may read a text only if the text's
``end + lag < start[t]`` (tasks.forecast.latest_visible). Every function here keeps that rule,
including the shuffled-text control, which gives each window a text from another, earlier period
(:func:`shuffled_sources`), never one published after the window's origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polymodal.data.sources.time_mmd import TextData
from polymodal.tasks.forecast import calendar_features, latest_visible

__all__ = ["DomainTexts", "Source", "TextChoice", "calendar_source", "empty_source", "kinds_covering_training",
           "shuffled_sources", "subset_texts", "text_end_of_rows", "text_source"]


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

    def to_json(self) -> dict[str, object]:
        return {"fields": self.fields, "k": self.k, "max_age_periods": self.max_age_periods,
                "lag_days": self.lag_days, "kinds": list(self.kinds) if self.kinds is not None else None}

    @classmethod
    def from_json(cls, value: dict[str, object]) -> TextChoice:
        kinds = value.get("kinds")
        return cls(fields=str(value["fields"]), k=int(value["k"]),  # type: ignore[call-overload]
                   max_age_periods=None if value.get("max_age_periods") is None
                   else int(value["max_age_periods"]),  # type: ignore[call-overload]
                   lag_days=int(value["lag_days"]),  # type: ignore[call-overload]
                   kinds=tuple(kinds) if kinds is not None else None)  # type: ignore[arg-type]


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
    """The latest visible texts of each origin (see tasks.forecast.latest_visible), as token rows.

    The table is ``[fact; preds]`` of the (kind-filtered) texts: row ``m`` is text m's fact, row
    ``m + M`` its preds (:func:`text_end_of_rows` gives each row's end date).
    """
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


def text_end_of_rows(dt: DomainTexts, choice: TextChoice) -> np.ndarray:
    """(2M,) end date of each row of :func:`text_source`'s table (fact rows, then preds rows)."""
    if choice.kinds is not None:
        dt = subset_texts(dt, np.isin(np.array(dt.texts.kind, dtype=object), list(choice.kinds)))
    return np.concatenate([dt.texts.end, dt.texts.end])


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


def shuffled_sources(sources: dict[str, Source], origin_time: dict[str, np.ndarray], seed: int,
                     min_gap: np.timedelta64) -> dict[str, Source]:
    """The shuffled-text control without look-ahead: each window gets the texts of another, earlier window.

    Window ``i`` (origin time ``o_i``, any part) takes the token rows of a window ``j`` drawn
    uniformly from all parts' windows with ``o_j < o_i - min_gap``. Window j's texts were visible at
    ``o_j``, and visibility only grows with time, so they are visible at ``o_i`` too: no window ever
    reads a text published after its own origin (the earlier control permuted texts across all
    windows of a part, so a test window could receive a text from its own future). ``min_gap`` (an
    input window, say) keeps the borrowed texts about another period rather than a near copy of the
    window's own latest ones. A window with no such earlier window gets no text.

    Args:
        sources: part -> Source of the real texts (one shared table).
        origin_time: part -> (N_part,) datetime64 origin of each row of that part's ``idx``.
        seed: the control's seed (one draw per training seed).
        min_gap: how much earlier the donor window's origin must be.

    Returns:
        part -> Source with the same table and borrowed ``idx`` rows.
    """
    parts = list(sources)
    pool_idx = np.concatenate([sources[p].idx for p in parts])  # (N_all, K)
    pool_time = np.concatenate([origin_time[p] for p in parts]).astype("datetime64[ns]")
    order = np.argsort(pool_time, kind="stable")
    sorted_time = pool_time[order]
    rng = np.random.default_rng(10_000 + seed)
    out = {}
    for part in parts:
        times = origin_time[part].astype("datetime64[ns]")
        eligible = np.searchsorted(sorted_time, times - min_gap, side="left")  # donors: sorted_time < o - gap
        draw = np.floor(rng.random(len(times)) * np.maximum(eligible, 1)).astype(np.int64)
        donor = order[np.minimum(draw, len(order) - 1)]
        idx = pool_idx[donor].copy()
        idx[eligible == 0] = -1  # nothing old enough to borrow from
        out[part] = Source(sources[part].table, idx)
    return out
