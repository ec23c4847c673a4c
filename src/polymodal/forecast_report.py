"""metrics.json, report.md and one plot per domain for a text-forecast run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from polymodal.io import atomic_path, write_json, write_text

NO_TEXT, TEXT, SHUFFLED = "patch transformer (no text)", "patch transformer + text", "patch transformer + shuffled text"
ALPHA = 0.05


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of significant gains and the mean relative MSE change of each model vs no text."""
    rel: dict[str, list[float]] = {}
    sig_text = sig_shuf = sig_text_not_shuf = sig_text_vs_shuf = 0
    gains = []
    for c in cells:
        base = c["models"].get(NO_TEXT, {}).get("mse")
        if not base:
            continue
        for name, m in c["models"].items():
            rel.setdefault(name, []).append(m["mse"] / base - 1)
        t = c["tests"]
        text_sig = t.get("text vs no text", {}).get("p_value", 1.0) < ALPHA
        shuf_sig = t.get("shuffled vs no text", {}).get("p_value", 1.0) < ALPHA
        sig_text += text_sig
        sig_shuf += shuf_sig
        if text_sig and not shuf_sig:
            sig_text_not_shuf += 1
            gains.append(f"{c['domain']} H{c['horizon']}")
        sig_text_vs_shuf += t.get("text vs shuffled", {}).get("p_value", 1.0) < ALPHA
    return {
        "cells": len(cells), "alpha": ALPHA,
        "text_significant_gain": sig_text, "shuffled_significant_gain": sig_shuf,
        "text_significant_and_shuffled_not": sig_text_not_shuf, "cells_text_gain_not_shuffled": gains,
        "text_significantly_better_than_shuffled": sig_text_vs_shuf,
        "mean_relative_mse_vs_no_text": {k: float(np.mean(v)) for k, v in rel.items()},
        "domains_with_gain": sorted({g.split(" H")[0] for g in gains}),
    }


def _plot(path: Path, cell: dict[str, Any]) -> None:
    fig = Figure(figsize=(7, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    hist, truth = np.asarray(cell["plot"]["history"]), np.asarray(cell["plot"]["truth"])
    ax.plot(np.arange(len(hist)), hist, color="0.3", label="history")
    future = np.arange(len(hist), len(hist) + len(truth))
    ax.plot(future, truth, color="k", label="truth")
    for (name, f), color in zip(cell["plot"]["forecasts"].items(), ("tab:blue", "tab:red"), strict=False):
        ax.plot(future, np.asarray(f), color=color, label=name)
    ax.set_title(f"{cell['domain']}: last test window, horizon {cell['horizon']} (OT)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def render(cells: list[dict[str, Any]], adapter: dict[str, Any], summary: dict[str, Any],
           published: list[dict[str, Any]]) -> str:
    s = summary
    gains = ", ".join(s["cells_text_gain_not_shuffled"]) or "none"
    lines = ["# text-forecast on Time-MMD", "",
             f"{s['cells']} domain-horizon cells. Text gives a significant gain (Diebold-Mariano, one-sided, "
             f"p < {s['alpha']}) over the same model without text in **{s['text_significant_gain']}** cells; "
             f"shuffled text does in {s['shuffled_significant_gain']}; text is significant and shuffled text is not "
             f"in **{s['text_significant_and_shuffled_not']}** cells ({gains}); "
             f"text beats shuffled text significantly in {s['text_significantly_better_than_shuffled']}.", "",
             "Mean relative test MSE (OT, normalised) vs the patch transformer without text:", "",
             "| model | mean relative MSE |", "|---|---|"]
    lines += [f"| {k} | {v:+.1%} |" for k, v in s["mean_relative_mse_vs_no_text"].items()]
    lines += ["", "## Published (not on the same models)", "", "| model | metric | value | source | data |",
              "|---|---|---|---|---|"]
    lines += [f"| {p['model']} | {p['metric']} | {p['value']:.3f} | {p['source']} | {p['dataset_version']} |"
              for p in published]
    for c in cells:
        lines += ["", f"## {c['domain']}, horizon {c['horizon']} (input {c['input_len']}, windows "
                  f"{c['windows']['train']}/{c['windows']['valid']}/{c['windows']['test']}, text: {c['chosen_text']})",
                  "", "Share of training windows with a text of each kind (kinds under 50% are not used): "
                  + (", ".join(f"{k} {v:.0%}" for k, v in c.get("text_kind_train_coverage", {}).items()) or "none")
                  + ".", "",
                  "| model | MSE | MAE | MSE (orig.) | MAE (orig.) | seeds |", "|---|---|---|---|---|---|"]
        for name, m in c["models"].items():
            std = f" ± {m['mse_std']:.3g}" if m["seeds"] > 1 else ""
            lines.append(f"| {name} | {m['mse']:.4g}{std} | {m['mae']:.4g} | {_fmt(m['mse_orig'])} | "
                         f"{_fmt(m['mae_orig'])} | {m['seeds']} |")
        lines += ["", "| test (DM, one-sided) | mean loss diff | p |", "|---|---|---|"]
        lines += [f"| {k} | {v['mean_diff']:.4g} | {v['p_value']:.3g} |" for k, v in c["tests"].items()]
    lines += ["", "## What the adapter did", ""]
    for domain, a in adapter.items():
        lines.append(f"- **{domain}** ({a['freq']}, {a['periods']} periods {a['first']}..{a['last']}, "
                     f"{len(a['channels'])} channels, texts {a['text_kinds']}): "
                     + "; ".join(a["series_actions"] + a["text_actions"] or ["nothing to fix"]))
    return "\n".join(lines) + "\n"


def write_forecast_report(out_dir: Path, cells: list[dict[str, Any]], adapter: dict[str, Any],
                          config: dict[str, Any], published: list[dict[str, Any]],
                          cache_stats: dict[str, Any]) -> dict[str, Any]:
    """Write the run folder and return metrics (``models`` holds each model's mean over cells for the CLI)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(cells)
    for domain in {c["domain"] for c in cells}:
        first = min((c for c in cells if c["domain"] == domain), key=lambda c: c["horizon"])
        _plot(out_dir / "plots" / f"{domain}.png", first)
    names = list(dict.fromkeys(n for c in cells for n in c["models"]))
    models = {n: {"splits": {"test": {m: {"mean": float(np.mean([c["models"][n][m] for c in cells
                                                                  if n in c["models"]]))}
                                      for m in ("mse", "mae")}}} for n in names}
    metrics = {"recipe": "text-forecast", "task": "forecast", "primary_metric": "mse", "models": models,
               "summary": summary, "cells": [{k: v for k, v in c.items() if k != "plot"} for c in cells],
               "adapter": adapter, "config": config, "published": published, "embedding_cache": cache_stats}
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "config.json", {"recipe": "text-forecast", **config})
    write_text(out_dir / "report.md", render(cells, adapter, summary, published))
    return metrics
