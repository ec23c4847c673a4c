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


def _count(cells: list[dict[str, Any]], text: str, shuf: str, vs_shuf: str) -> dict[str, Any]:
    """Cells where the text test is significant, the shuffled one too, and text-but-not-shuffled."""
    sig_text = sig_shuf = sig_vs_shuf = 0
    gains = []
    for c in cells:
        t = c["tests"]
        text_sig = t.get(text, {}).get("p_value", 1.0) < ALPHA
        shuf_sig = t.get(shuf, {}).get("p_value", 1.0) < ALPHA
        sig_text += text_sig
        sig_shuf += shuf_sig
        if text_sig and not shuf_sig:
            gains.append(f"{c['domain']} H{c['horizon']}")
        sig_vs_shuf += t.get(vs_shuf, {}).get("p_value", 1.0) < ALPHA
    return {"text_significant_gain": sig_text, "shuffled_significant_gain": sig_shuf,
            "text_significant_and_shuffled_not": len(gains), "cells_text_gain_not_shuffled": gains,
            "text_significantly_better_than_shuffled": sig_vs_shuf,
            "domains_with_gain": sorted({g.split(" H")[0] for g in gains})}


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of significant gains (tower and linear proxy) and the mean relative MSE vs no text."""
    rel: dict[str, list[float]] = {}
    for c in cells:
        base = c["models"].get(NO_TEXT, {}).get("mse")
        if not base:
            continue
        for name, m in c["models"].items():
            rel.setdefault(name, []).append(m["mse"] / base - 1)
    tower = _count(cells, "text vs no text", "shuffled vs no text", "text vs shuffled")
    linear = _count(cells, "linear: text vs no text", "linear: shuffled vs no text", "linear: text vs shuffled")
    best: dict[str, int] = {}
    for c in cells:
        name = min(c["models"], key=lambda k: c["models"][k]["mse"])
        best[name] = best.get(name, 0) + 1
    bartlett = sum(1 for c in cells for t in c["tests"].values() if t.get("rectangular", 1.0) == 0.0)
    return {"cells": len(cells), "alpha": ALPHA, **tower, "linear": linear,
            "mean_relative_mse_vs_no_text": {k: float(np.mean(v)) for k, v in rel.items()},
            "median_relative_mse_vs_no_text": {k: float(np.median(v)) for k, v in rel.items()},
            "best_model_cells": dict(sorted(best.items(), key=lambda kv: -kv[1])),
            "dm_tests_with_bartlett_variance": bartlett}


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


def _linear_sentence(lin: dict[str, Any]) -> str:
    gains = ", ".join(lin["cells_text_gain_not_shuffled"]) or "none"
    return (f"Linear proxy (NLinear + calendar + the validation-chosen texts' principal components) vs NLinear + "
            f"calendar: text significant in **{lin['text_significant_gain']}** cells, shuffled text in "
            f"{lin['shuffled_significant_gain']}, text significant and shuffled not in "
            f"**{lin['text_significant_and_shuffled_not']}** ({gains}); text beats shuffled text significantly in "
            f"{lin['text_significantly_better_than_shuffled']}.")


def _selection_lines(adapter: dict[str, Any]) -> list[str]:
    lines = ["", "## Text recipe chosen on validation (per domain, linear proxy; test windows never used)", "",
             "| domain | kinds covering >= 50% of training windows | chosen (kinds, field, k, max age in periods, "
             "lag) | validation MSE ratio vs no text | candidates |", "|---|---|---|---|---|"]
    for domain, a in adapter.items():
        sel = a.get("text_selection")
        if not sel:
            continue
        cov = ", ".join(f"{k} {v:.0%}" for k, v in sel.get("kinds_covering_training", {}).items()) or "none"
        ratio = sel.get("val_mse_ratio")
        lines.append(f"| {domain} | {cov} | {sel.get('chosen')} | {_fmt(ratio)} | {len(sel.get('candidates', []))} |")
    return lines


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
             _linear_sentence(s["linear"]), "",
             "Relative test MSE (OT, normalised) vs the patch transformer without text, over the cells where "
             "both ran (the mean is pulled by a few outlying cells; the median is not), and the number of cells "
             "where each model has the lowest test MSE:", "",
             "| model | mean relative MSE | median relative MSE | best in cells |", "|---|---|---|---|"]
    lines += [f"| {k} | {v:+.1%} | {s['median_relative_mse_vs_no_text'][k]:+.1%} | "
              f"{s['best_model_cells'].get(k, 0)} |" for k, v in s["mean_relative_mse_vs_no_text"].items()]
    lines += ["", f"Diebold-Mariano tests where the rectangular-kernel variance was not positive and Bartlett "
              f"weights were used: {s['dm_tests_with_bartlett_variance']}."]
    lines += ["", "## Published (not on the same models)", "", "| model | metric | value | source | data |",
              "|---|---|---|---|---|"]
    lines += [f"| {p['model']} | {p['metric']} | {p['value']:.3f} | {p['source']} | {p['dataset_version']} |"
              for p in published]
    lines += _selection_lines(adapter)
    lines += ["", "## Every cell: test MSE (OT, normalised), seed-mean p-values", "",
              "| domain | H | last | seasonal | NLinear | DLinear | NLinear+cal | NLinear+cal+text | no text | "
              "+calendar | +text | text removed | +shuffled | p text vs no text | p shuffled vs no text | "
              "p linear text vs NLinear+cal |", "|" + "---|" * 16]
    cols = ("last value", "seasonal naive", "NLinear", "DLinear", "NLinear + calendar", "NLinear + calendar + text",
            NO_TEXT, "patch transformer + calendar", TEXT, "text removed at test", SHUFFLED)
    for c in cells:
        row = [_fmt(c["models"][k]["mse"]) if k in c["models"] else "" for k in cols]
        ps = [_fmt(c["tests"].get(t, {}).get("p_value")) for t in ("text vs no text", "shuffled vs no text",
                                                                    "linear: text vs no text")]
        lines.append(f"| {c['domain']} | {c['horizon']} | " + " | ".join(row + ps) + " |")
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
