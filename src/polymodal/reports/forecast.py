"""Report sections and plots of a forecasting run (text-forecast), rendered from metrics.json alone.

The sections are what ``ForecastTask.report_sections`` returns: the counts of cells where text helps
(on adjusted Diebold-Mariano p-values, raw beside them), the relative-MSE table, the text recipe
chosen per domain on validation, every cell's test MSE and p-values, and the per-cell tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["forecast_sections", "plot_cells"]

NO_TEXT, TEXT, SHUFFLED = "patch transformer (no text)", "patch transformer + text", "patch transformer + shuffled text"
COLUMNS = ("last value", "seasonal naive", "NLinear", "DLinear", "NLinear + calendar", "NLinear + calendar + text",
           NO_TEXT, "patch transformer + calendar", TEXT, "text removed at test", SHUFFLED)


def _fmt(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else f"{v:.4g}"


def _p(v: Any) -> str:
    from polymodal.evaluation.multiple_testing import format_p

    return format_p(None if v is None else float(v))


def _counts(c: Mapping[str, Any], what: str, adjust: str) -> str:
    gains = ", ".join(c["cells_text_gain_not_shuffled"]) or "none"
    return (f"{what}: text significant in **{c['text_significant_gain']}** cells ({c['text_significant_gain_raw']} "
            f"at raw p), shuffled text in {c['shuffled_significant_gain']} ({c['shuffled_significant_gain_raw']} raw); "
            f"text significant and shuffled not in **{c['text_significant_and_shuffled_not']}** ({gains}; "
            f"{c['text_significant_and_shuffled_not_raw']} raw: "
            f"{', '.join(c['cells_text_gain_not_shuffled_raw']) or 'none'}); text beats shuffled text significantly "
            f"in {c['text_significantly_better_than_shuffled']} "
            f"({c['text_significantly_better_than_shuffled_raw']} raw).")


def forecast_sections(metrics: Mapping[str, Any]) -> list[str]:
    """Markdown sections of a forecast run (see the module docstring)."""
    s = metrics.get("summary") or {}
    if not s:
        return []
    adjust = {"holm": "Holm", "bh": "Benjamini-Hochberg"}.get(s.get("p_adjust", ""), s.get("p_adjust", ""))
    family = ("all Diebold-Mariano tests of the run (cells x comparisons)" if s.get("dm_family") == "grid"
              else "each comparison across cells")
    head = [f"## Does text help? ({s['cells']} domain-horizon cells)", "",
            f"Diebold-Mariano tests (one-sided, seed-mean per-window test MSE, long-run variance for overlapping "
            f"windows); p-values adjusted with {adjust} over {family} ({s.get('dm_tests')} tests); significant = "
            f"adjusted p < {s['alpha']}.", "",
            _counts(s, "Patch transformer + text vs the same model without text", adjust), "",
            _counts(s["linear"], "Linear proxy (NLinear + calendar + the validation-chosen texts' principal "
                                 "components) vs NLinear + calendar", adjust), "",
            "Relative test MSE (target, normalised) vs the patch transformer without text over the cells where both "
            "ran (the mean is pulled by a few outlying cells; the median is not), and the cells where each model "
            "has the lowest test MSE:", "",
            "| model | mean relative MSE | median relative MSE | best in cells |", "|---|---|---|---|"]
    head += [f"| {k} | {v:+.1%} | {s['median_relative_mse_vs_no_text'][k]:+.1%} | {s['best_model_cells'].get(k, 0)} |"
             for k, v in s["mean_relative_mse_vs_no_text"].items()]
    sections = ["\n".join(head)]
    selection = metrics.get("text_selection") or {}
    if selection:
        lines = ["## Text recipe chosen on validation (per domain, linear proxy; test windows never used)", "",
                 "| domain | kinds covering >= 50% of training windows | chosen (kinds, field, k, max age in periods, "
                 "lag) | validation MSE ratio vs no text | candidates |", "|---|---|---|---|---|"]
        for domain, sel in selection.items():
            cov = ", ".join(f"{k} {v:.0%}" for k, v in sel["kinds_covering_training"].items()) or "none"
            lines.append(f"| {domain} | {cov} | {sel['chosen'] or 'none'} | {_fmt(sel['val_mse_ratio'])} | "
                         f"{sel['candidates']} |")
        sections.append("\n".join(lines))
    subsets, tests, info = metrics.get("subsets") or {}, metrics.get("tests") or {}, metrics.get("cells_info") or {}
    lines = ["## Every cell: test MSE (target, normalised, seed mean); adjusted p-values (raw in brackets)", "",
             "| cell | last | seasonal | NLinear | DLinear | NLinear+cal | NLinear+cal+text | no text | +calendar | "
             "+text | text removed | +shuffled | p text vs no text | p shuffled vs no text | "
             "p linear text vs NLinear+cal |", "|" + "---|" * 15]
    for cell, models in subsets.items():
        row = [_fmt(models[k]["splits"]["test"]["mse"]["mean"]) if k in models else "" for k in COLUMNS]
        ps = []
        for label in ("text vs no text", "shuffled vs no text", "linear: text vs no text"):
            t = tests.get(cell, {}).get(label)
            ps.append(f"{_p(t.get('p_adjusted'))} ({_p(t['p_value'])})" if t else "")
        lines.append(f"| {cell} | " + " | ".join(row + ps) + " |")
    sections.append("\n".join(lines))
    for cell, models in subsets.items():
        i = info.get(cell, {})
        windows = "/".join(str(i.get(f"windows_{p}", "?")) for p in ("train", "valid", "test"))
        cov = ", ".join(f"{k} {v:.0%}" for k, v in (i.get("text_kind_train_coverage") or {}).items()) or "none"
        lines = [f"### {cell} (input {i.get('input_len')}, windows {windows}, text: {i.get('chosen_text') or 'none'})",
                 "", f"Share of training windows with a text of each kind (kinds under 50% are not used): {cov}.", "",
                 "| model | kind | MSE [95% CI] | MAE | MSE (orig.) | MAE (orig.) | seeds |",
                 "|---|---|---|---|---|---|---|"]
        for name, m in models.items():
            t = m["splits"]["test"]
            std = f" ± {t['mse']['std']:.3g}" if m["seeds"] > 1 else ""
            lines.append(f"| {name} | {m['kind']} | {t['mse']['mean']:.4g}{std} [{_fmt(t['mse']['ci_low'])}, "
                         f"{_fmt(t['mse']['ci_high'])}] | {t['mae']['mean']:.4g} | {_fmt(t['mse_orig']['mean'])} | "
                         f"{_fmt(t['mae_orig']['mean'])} | {m['seeds']} |")
        lines += ["", "| test (DM, one-sided) | mean loss diff | p | p adjusted |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['mean_diff']:.4g} | {_p(v['p_value'])} | {_p(v.get('p_adjusted'))} |"
                  for k, v in tests.get(cell, {}).items()]
        sections.append("\n".join(lines))
    adapter = metrics.get("adapter") or {}
    if adapter:
        lines = ["## What the adapter did", ""]
        for domain, a in adapter.items():
            lines.append(f"- **{domain}** ({a['freq']}, {a['periods']} periods {a['first']}..{a['last']}, "
                         f"{len(a['channels'])} channels, texts {a['text_kinds']}): "
                         + "; ".join(a["series_actions"] + a["text_actions"] or ["nothing to fix"]))
        sections.append("\n".join(lines))
    return sections


def plot_cells(plot: pd.DataFrame, out_dir: Path, first_only: bool = True) -> list[Path]:
    """One PNG per domain (its shortest horizon): history, truth and the seed-mean forecasts of the
    last test window, from the run's ``tables/plot.csv``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from polymodal.io import atomic_path

    paths = []
    cells = list(dict.fromkeys(plot["subset"]))
    chosen: dict[str, str] = {}
    for cell in cells:
        domain, horizon = cell.rsplit("/h", 1)
        if domain not in chosen or int(horizon) < int(chosen[domain].rsplit("/h", 1)[1]):
            chosen[domain] = cell
    for domain, cell in (chosen.items() if first_only else ((c, c) for c in cells)):
        part = plot[plot["subset"] == cell]
        fig = Figure(figsize=(7, 3.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        series = {name: rows.groupby("step")["value"].mean() for name, rows in part.groupby("series", sort=False)}
        for name, color in (("history", "0.3"), ("truth", "k"), (NO_TEXT, "tab:blue"), (TEXT, "tab:red")):
            if name in series:
                ax.plot(series[name].index.to_numpy(), series[name].to_numpy(), color=color, label=name)
        ax.set_title(f"{cell}: last test window (target)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out_dir) / f"{domain.replace('/', '_')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        paths.append(path)
    return paths


