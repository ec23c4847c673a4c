"""Benchmark: size and power of Diebold-Mariano variances under the text-forecast benchmark's overlap.

Two forecasts of equal accuracy are simulated with the overlap of text-forecast's test windows:
per-period errors ``e_a``, ``e_b`` (independent of each other, N(0, 1) marginals), window loss =
mean squared error over the ``h`` periods of the window, consecutive windows one period apart
(so neighbours share ``h - 1`` periods). The rejection rate of a one-sided test at alpha 0.05
(the text-forecast reports' "b is better") and of the two-sided test is the size; its Monte-Carlo
standard error is ``sqrt(p (1 - p) / R)``. Power is the rejection rate when b's error variance is
lower by ``effect`` (its expected MSE is ``1 - effect`` times a's).

Settings (from benchmarks/results/text_forecast.json): 219 windows at horizon 36 with
independent errors, 266 windows at horizon 12 with AR(0.9) errors, 3,004 windows at horizon 192.

Candidates: the previous test (rectangular kernel over h - 1 lags + HLN correction, t(n-1)), the
naive lag-0 variance, Newey-West with the Newey-West (1994) automatic lag (at least h - 1) and
t(n-1), non-overlapping origins (every h-th window, t(m-1)), a moving-block bootstrap of the mean
(blocks of 2h windows, 499 resamples), and the equal-weighted cosine (EWC)
estimator with t(nu) quantiles, nu = 1.5 n / S and the bandwidth S = max(Andrews AR(1) rule, c h),
for c = 2, 3, 4 as is, and for c = 2 with the projections divided by the overlap's squared gain
(the default of :func:`polymodal.tasks.forecast.diebold_mariano`).

Run: ``flock /tmp/pm-cpu.lock python benchmarks/dm_size.py`` (about two minutes on 2 cores).
Writes benchmarks/results/dm_size.json and .md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import statsmodels
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from polymodal.io import write_json, write_text
from polymodal.tasks.forecast import diebold_mariano

ALPHA = 0.05
SETTINGS = (  # (name, windows, horizon, AR coefficient of the errors, power effect)
    ("219 windows, h=36, independent errors", 219, 36, 0.0, 0.3),
    ("266 windows, h=12, AR(0.9) errors", 266, 12, 0.9, 0.3),
    ("3,004 windows, h=192, independent errors", 3004, 192, 0.0, 0.1),
)
CHOSEN = "EWC, S >= 2h, overlap correction (chosen, the default)"


def simulate(rng: np.random.Generator, reps: int, n: int, horizon: int, phi: float, effect: float) -> np.ndarray:
    """(reps, n) window-loss differences a - b of forecasts whose errors are AR(phi) with unit variance."""
    periods = n + horizon - 1
    burn = 200 if phi else 0

    def errors() -> np.ndarray:
        e = rng.normal(size=(reps, periods + burn))
        if phi:
            out = np.empty_like(e)
            out[:, 0] = e[:, 0] / np.sqrt(1 - phi**2)
            for t in range(1, e.shape[1]):
                out[:, t] = phi * out[:, t - 1] + e[:, t]
            e = out * np.sqrt(1 - phi**2)
        return e[:, burn:]

    def window_loss(e: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((reps, 1)), np.cumsum(e**2, axis=1)], axis=1)
        return (c[:, horizon:] - c[:, :-horizon]) / horizon

    return window_loss(errors()) - window_loss(errors() * np.sqrt(1 - effect))


def _acov(d: np.ndarray) -> np.ndarray:
    """(R, n) -> (R, n) autocovariances (divisor n) of each demeaned row, via FFT."""
    x = d - d.mean(axis=1, keepdims=True)
    n = x.shape[1]
    f = np.fft.rfft(x, 2 * n, axis=1)
    return np.fft.irfft(f * np.conj(f), 2 * n, axis=1)[:, :n] / n


def p_lag0(d: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    n = d.shape[1]
    stat = d.mean(1) / np.sqrt(d.var(1) / n)
    return stats.t.sf(stat, n - 1), 2 * stats.t.sf(np.abs(stat), n - 1)


def p_newey_west_auto(d: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Bartlett weights, Newey-West (1994) automatic lag floored at h - 1, t(n - 1)."""
    n = d.shape[1]
    g = _acov(d)
    m = int(4 * (n / 100) ** (2 / 9))
    s0 = g[:, 0] + 2 * g[:, 1:m + 1].sum(1)
    s1 = 2 * (np.arange(1, m + 1) * g[:, 1:m + 1]).sum(1)
    lag = np.floor(1.1447 * np.abs(s1 / s0) ** (2 / 3) * n ** (1 / 3))
    lag = np.clip(np.maximum(lag, horizon - 1), 0, n - 1)
    w = np.clip(1 - np.arange(1, n) / (lag + 1)[:, None], 0, None)
    var = (g[:, 0] + 2 * (w * g[:, 1:]).sum(1)) / n
    stat = d.mean(1) / np.sqrt(np.clip(var, 1e-300, None))
    return stats.t.sf(stat, n - 1), 2 * stats.t.sf(np.abs(stat), n - 1)


def p_non_overlapping(d: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    sub = d[:, ::horizon]
    m = sub.shape[1]
    stat = sub.mean(1) / (sub.std(1, ddof=1) / np.sqrt(m))
    return stats.t.sf(stat, m - 1), 2 * stats.t.sf(np.abs(stat), m - 1)


def p_moving_block_bootstrap(d: np.ndarray, horizon: int, n_boot: int = 499) -> tuple[np.ndarray, np.ndarray]:
    """Moving-block bootstrap of the mean, blocks of 2h windows; the resampled means are centred on
    their bootstrap expectation (the mean of all block means), p = (1 + count) / (1 + B)."""
    rng = np.random.default_rng(12345)
    reps, n = d.shape
    length = min(n, 2 * horizon)
    k = int(np.ceil(n / length))
    c = np.concatenate([np.zeros((reps, 1)), np.cumsum(d, axis=1)], axis=1)
    block_means = (c[:, length:] - c[:, :-length]) / length  # (reps, n - length + 1)
    starts = rng.integers(0, block_means.shape[1], size=(n_boot, k))
    boot = block_means[:, starts].mean(axis=2) - block_means.mean(axis=1, keepdims=True)  # (reps, B)
    m = d.mean(axis=1, keepdims=True)
    one = (1 + (boot >= m).sum(axis=1)) / (1 + n_boot)
    two = (1 + (np.abs(boot) >= np.abs(m)).sum(axis=1)) / (1 + n_boot)
    return one, two


def _per_row(**kwargs: Any) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
    def run(d: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        out = [diebold_mariano(row, np.zeros_like(row), horizon, **kwargs) for row in d]
        return np.array([o["p_value"] for o in out]), np.array([o["p_two_sided"] for o in out])
    return run


CANDIDATES: dict[str, Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]] = {
    "previous: rectangular h-1 lags + HLN, t(n-1)": _per_row(method="hln"),
    "naive lag-0 variance, t(n-1)": p_lag0,
    "Newey-West, NW94 automatic lag >= h-1, t(n-1)": p_newey_west_auto,
    "non-overlapping origins, t(m-1)": p_non_overlapping,
    "moving-block bootstrap, blocks of 2h": p_moving_block_bootstrap,
    "EWC, S >= 2h, no overlap correction": _per_row(min_horizons=2.0, overlap_correction=False),
    "EWC, S >= 3h, no overlap correction": _per_row(min_horizons=3.0, overlap_correction=False),
    "EWC, S >= 4h, no overlap correction": _per_row(min_horizons=4.0, overlap_correction=False),
    CHOSEN: _per_row(min_horizons=2.0, overlap_correction=True),
}


def rate(p: np.ndarray) -> dict[str, float]:
    r = float((p < ALPHA).mean())
    return {"rate": r, "mc_se": float(np.sqrt(r * (1 - r) / len(p)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3000, help="simulations per setting for the size")
    parser.add_argument("--power-reps", type=int, default=1000, help="simulations per setting for the power")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dm_size")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    results = []
    for name, n, horizon, phi, effect in SETTINGS:
        t0 = time.perf_counter()
        d0 = simulate(rng, args.reps, n, horizon, phi, 0.0)
        d1 = simulate(rng, args.power_reps, n, horizon, phi, effect)
        rows = {}
        for cand, fn in CANDIDATES.items():
            one, two = fn(d0, horizon)
            rows[cand] = {"size_one_sided": rate(one), "size_two_sided": rate(two),
                          "power_one_sided": rate(fn(d1, horizon)[0])}
        ewc = [diebold_mariano(row, np.zeros_like(row), horizon) for row in d0[:200]]
        results.append({"setting": name, "windows": n, "horizon": horizon, "ar": phi, "effect": effect,
                        "candidates": rows, "chosen_df_median": float(np.median([o["df"] for o in ewc])),
                        "seconds": time.perf_counter() - t0})
        print(f"{name}: {time.perf_counter() - t0:.1f}s", flush=True)
    seconds = time.perf_counter() - started
    machine = {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
               "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
               "statsmodels": statsmodels.__version__}
    command = (f"flock /tmp/pm-cpu.lock python benchmarks/dm_size.py --reps {args.reps} "
               f"--power-reps {args.power_reps} --seed {args.seed}")
    payload = {"command": command, "alpha": ALPHA, "reps": args.reps, "power_reps": args.power_reps,
               "seed": args.seed, "chosen": CHOSEN, "seconds": seconds, "machine": machine, "settings": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), payload)
    write_text(args.out.with_suffix(".md"), render(payload))
    print(render(payload))


def _cell(r: dict[str, float]) -> str:
    return f"{100 * r['rate']:.1f}% ± {100 * r['mc_se']:.1f}"


def render(payload: dict[str, Any]) -> str:
    se5 = 100 * np.sqrt(ALPHA * (1 - ALPHA) / payload["reps"])
    m = payload["machine"]
    lines = [
        "# Diebold-Mariano size under overlapping windows",
        "",
        f"Command: `{payload['command']}`. Wall time {payload['seconds']:.0f} s on {m['platform']} "
        f"({m['cpu_count']} CPUs; numpy {m['numpy']}, scipy {m['scipy']}, statsmodels {m['statsmodels']}).",
        "",
        f"Equal-accuracy forecasts simulated with the text-forecast benchmark's test-window overlap; "
        f"{payload['reps']} simulations per setting for the size, {payload['power_reps']} for the power. "
        f"Cells: rejection rate at alpha {ALPHA} ± its Monte-Carlo standard error (at a true 5% the "
        f"standard error is {se5:.2f} points, so a calibrated test lies within about ±{3 * se5:.1f} points "
        "of 5%). Size one-sided is the test the reports use (\"b is more accurate\"); power is one-sided, "
        "with b's expected MSE lower by the setting's effect.",
        "",
    ]
    for s in payload["settings"]:
        lines += [f"## {s['setting']} (power at a {100 * s['effect']:.0f}% lower MSE; chosen test's median "
                  f"degrees of freedom {s['chosen_df_median']:.0f})", "",
                  "| variance | size, one-sided | size, two-sided | power, one-sided |", "|---|---|---|---|"]
        for cand, r in s["candidates"].items():
            label = f"**{cand}**" if cand == payload["chosen"] else cand
            lines.append(f"| {label} | {_cell(r['size_one_sided'])} | {_cell(r['size_two_sided'])} | "
                         f"{_cell(r['power_one_sided'])} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
