"""Benchmark: does choosing the texts on validation help on test? (text-forecast, linear proxy only)

    flock /tmp/pm-cpu.lock python benchmarks/text_forecast_selection.py [--data-dir DIR]

For every Time-MMD domain and horizon, the NLinear + calendar ridge is fitted three ways: without
text; with the default texts (every kind covering half the training windows, ``fact``, the whole
input window, no lag); and with the recipe the runner chooses on validation (kinds, field,
maximum age, lag; forecast_selection). Test MSE (OT, normalised) and one-sided Diebold-Mariano
p-values are written to benchmarks/results/text_forecast_selection.json and .md. Only the linear
proxy is refitted, so the whole run takes a minute or two; the dual tower's numbers with the
chosen recipe are in text_forecast.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.data.paths import resolve_cache_dir, resolve_data_dir  # noqa: E402
from polymodal.data.sources.time_mmd import DOMAINS, FREQUENCIES, load_series, load_texts  # noqa: E402
from polymodal.encoders.cache import EmbeddingCache  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.recipes.text_forecast import TextForecastConfig, choose_text, embed_texts  # noqa: E402
from polymodal.runs.forecast_jobs import DomainData, setup_cell  # noqa: E402
from polymodal.runs.forecast_selection import linear_with_text  # noqa: E402
from polymodal.runs.forecast_text import DomainTexts, TextChoice, text_source  # noqa: E402
from polymodal.tasks.forecast import calendar_features, diebold_mariano, window_mse  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS))
    args = parser.parse_args()
    cfg = TextForecastConfig()
    root = resolve_data_dir(args.data_dir)
    cache = EmbeddingCache(resolve_cache_dir() / "embeddings")
    t0 = time.perf_counter()
    rows = []
    for domain in args.domains:
        series = load_series(root, domain)
        texts = load_texts(root, domain, cfg.text_kinds)
        dt = DomainTexts(texts, *embed_texts(texts, cfg, cache))
        spec = FREQUENCIES[series.freq]
        input_len, period = spec["input_len"], spec["period"]
        period_td = np.timedelta64({"M": 31, "W": 7, "D": 1}[series.freq], "D")
        sel = choose_text(cfg, DomainData(series, dt, tuple(spec["horizons"])))
        chosen = sel.pop("choice")
        default = TextChoice(fields="fact", k=cfg.text_k, kinds=tuple(sel["kinds_used"])) if chosen else None
        for horizon in spec["horizons"]:
            cell = setup_cell(series, horizon, input_len, cfg.channels)
            cal = {p: calendar_features(cell.origin_time[p], period) for p in cell.x}
            n = len(cell.origins["test"])
            y = cell.y["test"][:n]
            preds = {"no text": linear_with_text(cell, cal, None)}
            for name, choice in (("default texts", default), ("validation-chosen texts", chosen)):
                if choice is not None:
                    src = {p: text_source(dt, cell.origin_time[p], choice, period_td, input_len) for p in cell.x}
                    preds[name] = linear_with_text(cell, cal, src)
            out = {k: m.predict(cell.x["test"], f["test"])[:n] for k, (m, f) in preds.items()}
            mse = {k: float(np.mean((p - y) ** 2)) for k, p in out.items()}
            loss = {k: window_mse(y, p) for k, p in out.items()}
            tests = {}
            for label, a, b in (("default vs no text", "no text", "default texts"),
                                ("chosen vs no text", "no text", "validation-chosen texts"),
                                ("chosen vs default", "default texts", "validation-chosen texts")):
                if a in loss and b in loss:
                    tests[label] = diebold_mariano(loss[a], loss[b], horizon)["p_value"]
            rows.append({"domain": domain, "horizon": horizon, "chosen": sel["chosen"],
                         "val_mse_ratio": sel["val_mse_ratio"], "test_mse": mse, "p": tests})
            print(domain, horizon, {k: round(v, 4) for k, v in mse.items()}, flush=True)
    wall = time.perf_counter() - t0
    env = environment()
    with_text = [r for r in rows if "validation-chosen texts" in r["test_mse"]]

    def rel(r: dict, name: str) -> float:
        return r["test_mse"][name] / r["test_mse"]["no text"] - 1

    summary = {
        "cells": len(rows), "cells_with_text": len(with_text),
        "median_relative_mse_default": float(np.median([rel(r, "default texts") for r in with_text])),
        "median_relative_mse_chosen": float(np.median([rel(r, "validation-chosen texts") for r in with_text])),
        "chosen_better_than_default_cells": sum(r["test_mse"]["validation-chosen texts"]
                                                < r["test_mse"]["default texts"] for r in with_text),
        "chosen_significant_vs_no_text": sum(r["p"]["chosen vs no text"] < 0.05 for r in with_text),
        "default_significant_vs_no_text": sum(r["p"]["default vs no text"] < 0.05 for r in with_text),
        "chosen_significant_vs_default": sum(r["p"]["chosen vs default"] < 0.05 for r in with_text),
    }
    command = "python benchmarks/text_forecast_selection.py" + (
        "" if args.domains == list(DOMAINS) else " --domains " + " ".join(args.domains))
    write_json(RESULTS / "text_forecast_selection.json",
               {"benchmark": "text_forecast_selection", "command": command, "wall_seconds": round(wall, 1),
                "environment": env, "summary": summary, "cells": rows})
    s = summary
    lines = ["# text-forecast: does the validation-chosen text recipe help on test? (linear proxy)", "",
             f"Command: `{command}` (under the shared CPU lock), {wall:.0f} s on {env['cpu_count']} cores "
             f"({env['processor']}). Model: NLinear + calendar ridge, alone or with 8 principal components of the "
             "window's pooled text embeddings. Default texts: every kind covering half the training windows, `fact`, "
             "the whole input window, no lag. Chosen: per domain on validation (forecast_selection).", "",
             f"{s['cells_with_text']} of {s['cells']} cells have texts. Median relative test MSE vs no text: default "
             f"{s['median_relative_mse_default']:+.1%}, chosen {s['median_relative_mse_chosen']:+.1%}. Chosen beats "
             f"default on test in {s['chosen_better_than_default_cells']} cells. Significant gain (one-sided DM, "
             f"p < 0.05) over no text: default {s['default_significant_vs_no_text']}, chosen "
             f"{s['chosen_significant_vs_no_text']}; chosen over default: {s['chosen_significant_vs_default']}.", "",
             "| domain | H | chosen recipe | val ratio | MSE no text | MSE default | MSE chosen | p default vs none | "
             "p chosen vs none | p chosen vs default |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, p = r["test_mse"], r["p"]
        cols = [f"{m[k]:.4g}" if k in m else "" for k in ("no text", "default texts", "validation-chosen texts")]
        ps = [f"{p[k]:.3g}" if k in p else "" for k in ("default vs no text", "chosen vs no text", "chosen vs default")]
        lines.append(f"| {r['domain']} | {r['horizon']} | {r['chosen']} | {r['val_mse_ratio']:.3f} | "
                     + " | ".join(cols + ps) + " |")
    write_text(RESULTS / "text_forecast_selection.md", "\n".join(lines) + "\n")
    print(f"wall {wall:.0f} s; {summary}")


if __name__ == "__main__":
    main()
