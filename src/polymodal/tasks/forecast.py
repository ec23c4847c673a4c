"""Forecasting task: chronological windows without look-ahead, text visibility, metrics, trivial baselines.

Conventions. A series has T periods, period i covering ``[start[i], end[i]]``. A window with
origin ``t`` forecasts periods ``t .. t+H-1`` from inputs ``t-L .. t-1``; the forecast is made
at ``start[t]``. A text is visible at origin ``t`` only if ``text_end + lag < start[t]``
(strictly): it is about a period that has ended, and a report about a period is written after
it (``lag``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.fft import dct
from sklearn.metrics import mean_absolute_error, mean_squared_error
from statsmodels.tsa.stattools import acf

from polymodal.tasks.base import Task, per_seed


@dataclass(frozen=True)
class ChronoSplit:
    """Origins of the train / validation / test windows (Time-Series-Library borders).

    With ``n_train = int(0.7 T)``, ``n_test = int(0.2 T)``, ``n_val = T - n_train - n_test``, the
    train part is ``[0, n_train)``, validation ``[n_train - L, n_train + n_val)`` and test
    ``[T - n_test - L, T)``: validation and test inputs start one input length earlier, so their
    first targets follow the previous part directly. The scaler is fitted on ``[0, n_train)`` only.

    Attributes:
        n_train: rows the scaler may see.
        origins: part -> (N,) int origins ``t``; every target index lies inside its part.
    """

    n_train: int
    origins: dict[str, np.ndarray]


def chrono_split(n: int, input_len: int, horizon: int, ratios: tuple[float, float] = (0.7, 0.2)) -> ChronoSplit:
    """Origins for a series of ``n`` periods (train ratio, test ratio; validation is the rest)."""
    n_train, n_test = int(n * ratios[0]), int(n * ratios[1])
    n_val = n - n_train - n_test
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_val), "test": (n - n_test, n)}
    origins = {}
    for part, (lo, hi) in bounds.items():
        first = max(lo, input_len)  # the input window may reach back into the previous part
        origins[part] = np.arange(first, hi - horizon + 1)
        if not len(origins[part]):
            raise ValueError(f"{part}: no window of input {input_len} + horizon {horizon} fits in {n} periods")
    return ChronoSplit(n_train, origins)


def make_windows(values: np.ndarray, origins: np.ndarray, input_len: int,
                 horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of each origin.

    Args:
        values: (T, C) series.
        origins: (N,) first forecast index of each window.

    Returns:
        x: (N, L, C) inputs ``values[t-L:t]``; y: (N, H, C) targets ``values[t:t+H]``.
    """
    idx_x = origins[:, None] + np.arange(-input_len, 0)[None, :]  # (N, L)
    idx_y = origins[:, None] + np.arange(horizon)[None, :]  # (N, H)
    if (idx_x < 0).any() or (idx_y >= len(values)).any():
        raise ValueError("a window reaches outside the series")
    return values[idx_x], values[idx_y]


class TrainScaler:
    """Per-channel standardisation fitted on the training rows only (sklearn StandardScaler semantics)."""

    def fit(self, values: np.ndarray) -> TrainScaler:
        self.mean_ = values.mean(0)  # (C,)
        self.scale_ = values.std(0)
        self.scale_[self.scale_ == 0] = 1.0
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean_) / self.scale_

    def inverse(self, values: np.ndarray, channel: int | slice = slice(None)) -> np.ndarray:
        return values * self.scale_[channel] + self.mean_[channel]


def visible_text_mask(origin_time: np.ndarray, text_end: np.ndarray, lag: np.timedelta64) -> np.ndarray:
    """(N, M) bool: text m is visible at origin n iff ``text_end[m] + lag < origin_time[n]``."""
    return (text_end[None, :] + lag) < origin_time[:, None]


def latest_visible(origin_time: np.ndarray, text_end: np.ndarray, lag: np.timedelta64, k: int,
                   max_age: np.timedelta64 | None = None) -> np.ndarray:
    """Indices of the ``k`` most recent visible texts per origin; -1 pads (no text).

    ``text_end`` must be sorted ascending (TextData is). A text older than ``max_age`` (its end
    before ``origin - max_age``) is not used.

    Returns:
        (N, k) int64, most recent first.
    """
    if len(text_end) and np.any(np.diff(text_end.astype("datetime64[ns]").astype(np.int64)) < 0):
        raise ValueError("text_end must be sorted ascending")
    # number of texts with end + lag < origin  ==  searchsorted(end, origin - lag, side="left")
    n_visible = np.searchsorted(text_end, origin_time - lag, side="left")  # (N,)
    out = np.full((len(origin_time), k), -1, dtype=np.int64)
    for j in range(k):
        idx = n_visible - 1 - j
        ok = idx >= 0
        if max_age is not None:
            ok &= text_end[np.clip(idx, 0, None)] >= origin_time - max_age
        out[ok, j] = idx[ok]
    return out


def forecast_metrics(y_true: np.ndarray, y_pred: np.ndarray, scale: np.ndarray | float,
                     mean: np.ndarray | float = 0.0) -> dict[str, float]:
    """MSE and MAE on the normalised scale and on the original scale.

    Args:
        y_true, y_pred: (N, H, C) or (N, H) on the normalised (train-scaler) scale.
        scale, mean: the scaler's per-channel (C,) scale and mean (or scalars for one channel).
    """
    t, p = np.asarray(y_true).reshape(len(y_true), -1), np.asarray(y_pred).reshape(len(y_pred), -1)
    shape = np.asarray(y_true).shape
    to_orig = np.broadcast_to(np.asarray(scale, float), shape[1:] if len(shape) == 3 else ()).reshape(-1)
    mean_orig = np.broadcast_to(np.asarray(mean, float), shape[1:] if len(shape) == 3 else ()).reshape(-1)
    t_o, p_o = t * to_orig + mean_orig, p * to_orig + mean_orig
    return {
        "mse": float(mean_squared_error(t, p)), "mae": float(mean_absolute_error(t, p)),
        "mse_orig": float(mean_squared_error(t_o, p_o)), "mae_orig": float(mean_absolute_error(t_o, p_o)),
    }


def window_mse(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(N,) squared error of each window, averaged over horizon and channels."""
    err = (np.asarray(y_true) - np.asarray(y_pred)) ** 2
    return err.reshape(len(err), -1).mean(1)


def last_value(x: np.ndarray, horizon: int) -> np.ndarray:
    """(N, L, C) -> (N, H, C): repeat the last observed value."""
    return np.repeat(x[:, -1:, :], horizon, axis=1)


def seasonal_naive(values: np.ndarray, origins: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """(N, H, C): the value one season before each target, from the full past series.

    Target ``t+h`` takes ``values[t+h - period * ceil((h+1)/period)]``, always before ``t`` (a
    monthly input of 8 periods is shorter than the 12-month season, so the window alone would not do).
    """
    h = np.arange(horizon)
    back = period * np.ceil((h + 1) / period).astype(int)  # (H,)
    idx = origins[:, None] + h[None, :] - back[None, :]  # (N, H)
    if (idx < 0).any():
        idx = np.where(idx < 0, (origins[:, None] - 1).clip(0), idx)  # no season of history yet: last value
    return values[idx]


DMMethod = Literal["ewc", "hln"]


def dm_bandwidth(d: np.ndarray, horizon: int, min_horizons: float = 2.0) -> float:
    """Bartlett-equivalent bandwidth S for the loss differences ``d`` of ``horizon``-step forecasts.

    Andrews' (1991) AR(1) plug-in rule for the Bartlett kernel, ``1.1447 (alpha n)^(1/3)`` with
    ``alpha = 4 rho^2 / ((1 - rho)^2 (1 + rho)^2)`` and ``rho`` the lag-1 autocorrelation of ``d``
    (statsmodels ``acf``), floored at ``min_horizons * horizon``: windows that share ``h - 1``
    periods are correlated up to lag ``h - 1`` whatever the estimate says, and a band narrower
    than a few horizons misses part of that correlation (benchmarks/dm_size.py measures it).

    Returns:
        S in windows, at most ``len(d)``.
    """
    n = len(d)
    if n < 3 or np.ptp(d) == 0:
        return float(min(n, max(1.0, min_horizons * horizon)))
    rho = float(np.clip(acf(d, nlags=1, fft=True)[1], -0.99, 0.99))
    alpha = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    andrews = 1.1447 * (alpha * n) ** (1 / 3)
    return float(min(n, max(andrews, min_horizons * horizon, 1.0)))


def overlap_gain(freq: np.ndarray, horizon: int) -> np.ndarray:
    """Squared gain ``(sin(h w / 2) / (h sin(w / 2)))^2`` of the ``h``-period moving average at ``freq`` (rad).

    A window's loss is the mean of ``h`` per-period losses, so overlapping windows are (close to)
    the ``h``-period moving average of one per-period series; the gain is 1 at frequency 0 and
    falls to 0 at ``2 pi / h``.
    """
    w = np.asarray(freq, dtype=np.float64)
    if horizon == 1:
        return np.ones_like(w)
    return (np.sin(horizon * w / 2) / (horizon * np.sin(w / 2))) ** 2


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int, method: DMMethod = "ewc",
                    min_horizons: float = 2.0, overlap_correction: bool = True) -> dict[str, Any]:
    """Diebold-Mariano test of equal accuracy for overlapping ``horizon``-step forecast windows.

    ``d = loss_a - loss_b`` per test window; the windows overlap, so ``d`` is autocorrelated and
    the variance of its mean is a long-run variance. The default (``"ewc"``) estimates it with
    the equal-weighted cosine estimator (Lazarus, Lewis, Stock & Watson 2018, JBES): the mean of
    the squared first ``nu`` type-II cosine projections of ``d`` (scipy ``dct``), with
    ``nu = floor(1.5 n / S)``, the degrees of freedom of a Bartlett (Newey-West) estimator of
    bandwidth ``S`` (:func:`dm_bandwidth`: Andrews' AR(1) rule, at least ``min_horizons * h``), and
    ``t(nu)`` reference quantiles, which are exact under fixed-``nu`` asymptotics and so account
    for the noise of the variance estimate. With few windows per horizon ``nu`` is small and the
    test is honest rather than powerful.

    The overlap itself is known: a window's loss averages ``h`` per-period losses, so ``d`` is
    close to their ``h``-period moving average, whose squared gain (:func:`overlap_gain`) is below
    1 at the projections' frequencies ``pi j / n`` and 1 at frequency 0, where the long-run
    variance lives. ``overlap_correction`` divides each squared projection by that gain; without
    it the estimate is biased low and the test rejects up to 6.3% one-sided (7.2% two-sided) at a
    nominal 5%. Where real windows share less than a moving average does, the correction makes the
    test conservative, never liberal.

    ``benchmarks/dm_size.py`` measures the size at the text-forecast benchmark's overlap
    (``benchmarks/results/dm_size.md``); ``tests/test_forecast.py`` keeps it within Monte-Carlo
    error of 5%. ``"hln"`` is the previous test, kept for comparison: rectangular kernel over
    ``h - 1`` lags (Bartlett weights when that variance is not positive), the Harvey, Leybourne &
    Newbold (1997) correction and ``t(n - 1)``; it rejects 6.8-9.9% at a nominal 5% there.

    Args:
        loss_a, loss_b: (N,) per-window losses of the two forecasts, in time order, one origin apart.
        horizon: forecast horizon h (windows that start less than h apart overlap).
        method: ``"ewc"`` (default) or ``"hln"``.
        min_horizons: floor of the EWC bandwidth in horizons (see :func:`dm_bandwidth`).
        overlap_correction: divide the EWC projections by the overlap's squared gain.

    Returns:
        ``{"stat", "p_value", "p_two_sided", "mean_diff", "method", "df", "bandwidth"}``:
        ``p_value`` is one-sided against the alternative that ``b`` is more accurate
        (``E[d] > 0``), ``p_two_sided`` against any difference; ``df`` the t degrees of freedom;
        ``bandwidth`` S in windows. ``"hln"`` adds ``"rectangular"`` (0.0 where Bartlett weights
        replaced the rectangular kernel).
    """
    d = np.asarray(loss_a, float) - np.asarray(loss_b, float)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"need two 1-D loss arrays of equal length >= 2, got difference shape {d.shape}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if method == "hln":
        return _dm_hln(d, horizon)
    if method != "ewc":
        raise ValueError(f"unknown method {method!r}; use 'ewc' or 'hln'")
    n = len(d)
    mean = float(d.mean())
    bandwidth = dm_bandwidth(d, horizon, min_horizons)
    nu = int(min(n - 1, max(1, np.floor(1.5 * n / bandwidth))))
    # dct type II: y[j] = 2 sum_t d[t] cos(pi j (t + 1/2) / n); the EWC projection is sqrt(2/n) y[j] / 2.
    # The cosines j >= 1 sum to zero over t, so d needs no demeaning.
    lam2 = (np.sqrt(2.0 / n) * dct(d, type=2)[1:nu + 1] / 2.0) ** 2
    if overlap_correction:
        lam2 = lam2 / overlap_gain(np.pi * np.arange(1, nu + 1) / n, horizon)
    omega = float(np.mean(lam2))  # long-run variance of d
    out: dict[str, Any] = {"mean_diff": mean, "method": "ewc" + ("+overlap" if overlap_correction else ""),
                           "df": nu, "bandwidth": bandwidth}
    if omega <= 1e-300 or not np.isfinite(omega):  # no variation at low frequencies: the sign decides
        p = 1.0 if mean <= 0 else 0.0
        return {"stat": 0.0, "p_value": p, "p_two_sided": 1.0 if mean == 0 else 0.0, **out}
    stat = float(np.sqrt(n) * mean / np.sqrt(omega))
    return {"stat": stat, "p_value": float(stats.t.sf(stat, df=nu)),
            "p_two_sided": float(2 * stats.t.sf(abs(stat), df=nu)), **out}


def _dm_hln(d: np.ndarray, horizon: int) -> dict[str, Any]:
    """The previous test: rectangular kernel, HLN correction, t(n - 1) (see :func:`diebold_mariano`)."""
    n = len(d)
    mean = float(d.mean())
    centred = d - mean
    lags = min(horizon - 1, n - 1)
    gamma = [float(centred @ centred) / n] + [float(centred[k:] @ centred[:-k]) / n for k in range(1, lags + 1)]
    var = (gamma[0] + 2 * sum(gamma[1:])) / n
    kernel = 1.0  # 1: DM's rectangular kernel; 0: Newey-West (Bartlett) weights
    if var <= 0:
        # The rectangular kernel can go negative (long horizons: hundreds of lags); Bartlett weights
        # are never negative and keep the autocorrelation.
        kernel = 0.0
        var = (gamma[0] + 2 * sum((1 - j / (lags + 1)) * g for j, g in enumerate(gamma[1:], 1))) / n
    out: dict[str, Any] = {"mean_diff": mean, "method": "hln", "df": n - 1, "bandwidth": float(lags),
                           "rectangular": kernel}
    if var <= 0:  # constant differences: decided by their sign alone
        return {"stat": 0.0, "p_value": 0.0 if mean > 0 else 1.0, "p_two_sided": 1.0 if mean == 0 else 0.0, **out}
    h = lags + 1
    correction = np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n) if n + 1 - 2 * h > 0 else 1.0
    stat = float(correction * mean / np.sqrt(var))
    return {"stat": stat, "p_value": float(stats.t.sf(stat, df=n - 1)),
            "p_two_sided": float(2 * stats.t.sf(abs(stat), df=n - 1)), **out}


def calendar_features(dates: Sequence[np.datetime64] | np.ndarray, period: int) -> np.ndarray:
    """(N, 4) sin/cos of the position in the year (first and second harmonic), from dates.

    ``period`` is unused for weekly and monthly data beyond documentation; for daily data the day
    of week is a second cycle and is added as two more columns, giving (N, 6).
    """
    d = np.asarray(dates, dtype="datetime64[D]")
    year_start = d.astype("datetime64[Y]").astype("datetime64[D]")
    phase = 2 * np.pi * (d - year_start).astype(float) / 365.25  # (N,)
    cols = [np.sin(phase), np.cos(phase), np.sin(2 * phase), np.cos(2 * phase)]
    if period == 7:
        dow = 2 * np.pi * ((d.astype(np.int64) + 3) % 7) / 7.0  # 1970-01-01 was a Thursday
        cols += [np.sin(dow), np.cos(dow)]
    return np.stack(cols, axis=1).astype(np.float32)



def window_losses(y_true: np.ndarray, y_pred: np.ndarray, scale: float, mean: float = 0.0) -> dict[str, np.ndarray]:
    """Per-window losses of one channel, whose means are :func:`forecast_metrics` exactly.

    Every window has the same horizon, so the mean of the per-window means is the mean over all
    (window, step) errors: predictions.csv keeps one row per window and the metrics stay recomputable.

    Args:
        y_true, y_pred: (N, H) on the normalised (train-scaler) scale.
        scale, mean: the channel's scaler scale and mean (the original scale is ``z * scale + mean``).

    Returns:
        ``{"mse", "mae", "mse_orig", "mae_orig"}``, each (N,).
    """
    err = np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)  # (N, H)
    err_orig = (np.asarray(y_true, np.float64) * scale + mean) - (np.asarray(y_pred, np.float64) * scale + mean)
    return {"mse": (err**2).mean(1), "mae": np.abs(err).mean(1), "mse_orig": (err_orig**2).mean(1),
            "mae_orig": np.abs(err_orig).mean(1)}


def moving_block_indices(n: int, block: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) circular moving-block bootstrap indices (Politis & Romano's circular blocks).

    Overlapping forecast windows are correlated over about a horizon, so windows are resampled in
    blocks of ``block`` consecutive windows (wrapping around), not one by one.
    """
    block = int(max(1, min(block, n)))
    n_blocks = int(np.ceil(n / block))
    starts = np.random.default_rng(seed).integers(0, n, size=(n_boot, n_blocks))  # (B, n_blocks)
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n  # (B, n_blocks, block)
    return idx.reshape(n_boot, -1)[:, :n]


#: Diebold-Mariano comparisons of a cell: (label, model a, model b); one-sided, "b is more accurate".
DM_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("text vs no text", "patch transformer (no text)", "patch transformer + text"),
    ("shuffled vs no text", "patch transformer (no text)", "patch transformer + shuffled text"),
    ("text vs shuffled", "patch transformer + shuffled text", "patch transformer + text"),
    ("text vs text removed", "text removed at test", "patch transformer + text"),
    ("text vs calendar", "patch transformer + calendar", "patch transformer + text"),
    ("text vs NLinear + calendar", "NLinear + calendar", "patch transformer + text"),
    ("linear: text vs no text", "NLinear + calendar", "NLinear + calendar + text"),
    ("linear: shuffled vs no text", "NLinear + calendar", "NLinear + calendar + shuffled text"),
    ("linear: text vs shuffled", "NLinear + calendar + shuffled text", "NLinear + calendar + text"),
)
NO_TEXT = "patch transformer (no text)"


def cell_horizon(subset: str) -> int:
    """The horizon of a cell named ``"DOMAIN/hH"``."""
    try:
        return int(subset.rsplit("/h", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"forecast subset {subset!r} is not named DOMAIN/hH") from None


class ForecastTask(Task):
    """Multi-horizon forecasting over cells (domain x horizon), with Diebold-Mariano tests per cell.

    predictions.csv has one row per (cell, model, seed, split, window): ``subset`` is the cell
    (``"Health_US/h12"``), ``id`` the window's origin date, and the task's columns are the window's
    losses on the target channel: ``mse`` and ``mae`` on the train-scaler scale, ``mse_orig`` and
    ``mae_orig`` on the original one. A model's metric in a cell is the mean over windows (equal to the
    pooled MSE / MAE, every window having H steps), averaged over seeds; its CI is a circular
    moving-block bootstrap over test windows (blocks of one horizon) of the seed-mean losses, the
    same resamples for every model of the cell. Each cell's Diebold-Mariano tests (:data:`DM_PAIRS`)
    use the seed-mean per-window MSE; the p-values of one family are adjusted (Holm by default, or
    Benjamini-Hochberg) and "significant" is counted on the adjusted values.

    Args:
        headline: the recipe's model.
        p_adjust: ``"holm"`` or ``"bh"``.
        dm_family: ``"grid"`` (every test of every cell is one family) or ``"comparison"`` (one family
            per comparison, across cells).
        alpha: the level at which adjusted p-values count as significant.
    """

    name: ClassVar[str] = "forecast"
    columns: ClassVar[tuple[str, ...]] = ("mse", "mae", "mse_orig", "mae_orig")
    unit: ClassVar[str] = "window (moving blocks of one horizon)"
    primary_metric: ClassVar[str] = "mse"

    def __init__(self, *, p_adjust: str = "holm", dm_family: str = "grid", alpha: float = 0.05,
                 **kwargs: Any) -> None:
        if p_adjust not in ("holm", "bh"):
            raise ValueError(f"p_adjust must be 'holm' or 'bh', got {p_adjust!r}")
        if dm_family not in ("grid", "comparison"):
            raise ValueError(f"dm_family must be 'grid' or 'comparison', got {dm_family!r}")
        super().__init__(p_adjust=p_adjust, dm_family=dm_family, alpha=alpha, **kwargs)
        self.p_adjust, self.dm_family, self.alpha = p_adjust, dm_family, float(alpha)

    def report_sections(self, metrics: Mapping[str, Any]) -> list[str]:
        from polymodal.reports.forecast import forecast_sections

        return forecast_sections(metrics)

    # ------------------------------------------------------------------ per cell

    def evaluate_models(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Every model of one cell: per split and metric, the seed mean, std, per-seed values and a CI."""
        horizon = cell_horizon(str(frame["subset"].iloc[0]))
        boot: dict[int, np.ndarray] = {}  # same resamples for every model (paired)
        models: dict[str, dict[str, Any]] = {}
        for model, rows in frame.groupby("model", sort=False):
            entry: dict[str, Any] = {"kind": str(rows["kind"].iloc[0]), "splits": {}}
            for split in ("valid", "test"):
                if not (rows["split"] == split).any():
                    continue
                _, _, values = per_seed(rows, split, list(self.columns))  # seeds x (N, 4)
                stacked = np.stack(values)  # (S, N, 4)
                per = stacked.mean(1)  # (S, 4)
                out = {}
                for j, metric in enumerate(self.columns):
                    summary = {"mean": float(per[:, j].mean()), "std": float(per[:, j].std()),
                               "per_seed": [float(v) for v in per[:, j]], "ci_low": None, "ci_high": None}
                    if split == "test":
                        n = stacked.shape[1]
                        if n not in boot:
                            boot[n] = moving_block_indices(n, horizon, self.n_boot, self.seed)
                        replicates = stacked[:, :, j].mean(0)[boot[n]].mean(1)  # (B,)
                        summary["ci_low"], summary["ci_high"] = (float(v) for v in
                                                                 np.percentile(replicates, [2.5, 97.5]))
                    out[metric] = summary
                entry["splits"][split] = out
                entry.setdefault("n", {})[split] = int(stacked.shape[1])
            entry["seeds"] = int(rows["seed"].nunique())
            models[str(model)] = entry
        return models

    def cell_tests(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """The Diebold-Mariano tests of one cell on the seed-mean test MSE per window (time order)."""
        horizon = cell_horizon(str(frame["subset"].iloc[0]))
        test = frame[frame["split"] == "test"]
        loss: dict[str, pd.Series] = {}
        for model, rows in test.groupby("model", sort=False):
            ids, _, values = per_seed(rows, "test", "mse")
            loss[str(model)] = pd.Series(np.mean(values, axis=0), index=ids).sort_index()  # ISO dates sort in time
        out = {}
        for label, a, b in DM_PAIRS:
            if a in loss and b in loss:
                la, lb = loss[a].align(loss[b], join="inner")
                result = diebold_mariano(la.to_numpy(), lb.to_numpy(), horizon)
                out[label] = {"a": a, "b": b, **{k: (float(v) if isinstance(v, float | np.floating) else v)
                                                  for k, v in result.items()}}
        return out

    # ------------------------------------------------------------------ the whole run

    def evaluate(self, predictions: pd.DataFrame) -> dict[str, Any]:
        from polymodal.evaluation.multiple_testing import adjust_pvalues

        frame = self.check(predictions)
        frame = frame[frame["condition"].isin(("none", "drop:text"))]
        cells = list(dict.fromkeys(frame["subset"]))
        subsets = {cell: self.evaluate_models(frame[frame["subset"] == cell]) for cell in cells}
        tests = {cell: self.cell_tests(frame[frame["subset"] == cell]) for cell in cells}
        flat = [(cell, label) for cell in cells for label in tests[cell]]
        families = ({"grid": flat} if self.dm_family == "grid" else
                    {label: [(c, lab) for c, lab in flat if lab == label] for label, _, _ in DM_PAIRS})
        for members in families.values():
            if members:
                adjusted = adjust_pvalues([tests[c][lab]["p_value"] for c, lab in members],
                                          method=self.p_adjust)  # type: ignore[arg-type]
                for (c, lab), p in zip(members, adjusted, strict=True):
                    tests[c][lab]["p_adjusted"] = float(p)
        names = list(dict.fromkeys(m for cell in cells for m in subsets[cell]))
        models: dict[str, Any] = {}
        for name in names:
            present = [subsets[c][name] for c in cells if name in subsets[c]]
            models[name] = {"kind": present[0]["kind"], "cells": len(present), "seeds": present[0]["seeds"],
                            "splits": {split: {m: {"mean": float(np.mean([p["splits"][split][m]["mean"]
                                                                          for p in present]))}
                                               for m in self.columns}
                                       for split in ("valid", "test") if split in present[0]["splits"]}}
        comparisons = [{"model": f"{t['b']} vs {t['a']} | {cell}", "metric": "mse_diff", "subset": cell,
                        "mean": -t["mean_diff"], "ci_low": None, "ci_high": None, "p_value": t["p_value"],
                        "p_adjusted": t.get("p_adjusted"), "test": f"Diebold-Mariano ({label}), one-sided",
                        "report": False}  # shown per cell by report_sections
                       for cell in cells for label, t in tests[cell].items()]
        return {"task": self.name, "task_spec": self.spec(), "primary_metric": self.primary_metric,
                "bootstrap_unit": self.unit, "models": models, "subsets": subsets, "tests": tests,
                "comparisons": comparisons, "summary": self.summarise(subsets, tests)}

    def summarise(self, subsets: Mapping[str, Any], tests: Mapping[str, Any]) -> dict[str, Any]:
        """Counts of significant cells (on adjusted p-values) and the relative test MSE vs no text."""
        rel: dict[str, list[float]] = {}
        best: dict[str, int] = {}
        for models in subsets.values():
            mse = {name: m["splits"]["test"]["mse"]["mean"] for name, m in models.items()}
            best_name = min(mse, key=lambda k: mse[k])
            best[best_name] = best.get(best_name, 0) + 1
            if mse.get(NO_TEXT):
                for name, value in mse.items():
                    rel.setdefault(name, []).append(value / mse[NO_TEXT] - 1)
        return {"cells": len(subsets), "alpha": self.alpha, "p_adjust": self.p_adjust, "dm_family": self.dm_family,
                "dm_tests": sum(len(t) for t in tests.values()),
                **self._count(tests, "text vs no text", "shuffled vs no text", "text vs shuffled"),
                "linear": self._count(tests, "linear: text vs no text", "linear: shuffled vs no text",
                                      "linear: text vs shuffled"),
                "mean_relative_mse_vs_no_text": {k: float(np.mean(v)) for k, v in rel.items()},
                "median_relative_mse_vs_no_text": {k: float(np.median(v)) for k, v in rel.items()},
                "best_model_cells": dict(sorted(best.items(), key=lambda kv: -kv[1]))}

    def _count(self, tests: Mapping[str, Any], text: str, shuf: str, vs_shuf: str) -> dict[str, Any]:
        """Cells where text is significant, shuffled text too, text-but-not-shuffled; raw and adjusted."""
        out: dict[str, Any] = {}
        for key, suffix in (("p_adjusted", ""), ("p_value", "_raw")):
            def sig(cell_tests: Mapping[str, Any], label: str, key: str = key) -> bool:
                p = cell_tests.get(label, {}).get(key)
                return p is not None and p == p and p < self.alpha
            gains = [cell for cell, t in tests.items() if sig(t, text) and not sig(t, shuf)]
            out.update({f"text_significant_gain{suffix}": sum(sig(t, text) for t in tests.values()),
                        f"shuffled_significant_gain{suffix}": sum(sig(t, shuf) for t in tests.values()),
                        f"text_significant_and_shuffled_not{suffix}": len(gains),
                        f"cells_text_gain_not_shuffled{suffix}": gains,
                        f"text_significantly_better_than_shuffled{suffix}": sum(sig(t, vs_shuf)
                                                                                for t in tests.values())})
        return out
