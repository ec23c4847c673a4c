"""The Markdown run report, flat metric rows, and ``write_report`` for a run folder.

Everything here reads the plain ``metrics`` dict (the content of metrics.json); every key other
than ``models`` is optional and a section is rendered only when its key is present. Metric names
are treated generically: higher is better unless the name contains an error-like token
(``brier``, ``mse``, ``mae``, ``ibs``, ``loss`` ...), see :func:`higher_is_better`.

A metric summary is a dict ``{"mean", "std", "ci_low", "ci_high", "per_seed"}`` (any key may be
missing); a bare number is accepted as ``{"mean": number}``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polymodal.io import write_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BEATS",
    "BELOW",
    "MATCHES",
    "compare_summaries",
    "format_summary",
    "higher_is_better",
    "metrics_to_rows",
    "render_markdown",
    "write_report",
]

BEATS = "beats"
MATCHES = "matches within CI"
BELOW = "is below"

#: Tokens of metric names for which lower is better (``log_loss`` -> ``loss``, ``integrated_brier`` ...).
LOWER_IS_BETTER_TOKENS = frozenset(
    {"brier", "mse", "rmse", "mae", "mape", "smape", "wape", "ibs", "loss", "nll", "ece", "error", "crps",
     "ddi"}
)
#: Order of model kinds in tables: the recipe, then learned baselines, then trivial ones.
KIND_ORDER = {"recipe": 0, "baseline": 2, "trivial": 3}
DIGITS = 3

Summary = Mapping[str, Any]


# --------------------------------------------------------------------------- metric helpers


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better (``roc_auc``, ``c_index``: yes; ``brier``: no)."""
    tokens = re.split(r"[^a-z0-9]+", metric.lower())
    return not any(t in LOWER_IS_BETTER_TOKENS for t in tokens)


def _as_summary(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"mean": float(value)}
    return None


def _finite(x: Any) -> float | None:
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x)):
        return float(x)
    return None


def _mean(s: Summary | None) -> float | None:
    return _finite(s.get("mean")) if s else None


def _interval(s: Summary) -> tuple[float, float] | None:
    """The 95% CI, or ``None`` when the summary has none."""
    lo, hi = _finite(s.get("ci_low")), _finite(s.get("ci_high"))
    return (lo, hi) if lo is not None and hi is not None else None


def compare_summaries(ours: Summary, other: Summary, *, higher_better: bool = True) -> str:
    """Verdict of ``ours`` against ``other``: :data:`BEATS`, :data:`MATCHES` or :data:`BELOW`.

    ``beats`` only if our mean lies beyond the other's CI bound on the better side (above its
    ``ci_high`` when higher is better); ``matches within CI`` if the two intervals overlap;
    ``is below`` (worse) otherwise. A summary without a CI counts as the point interval at its mean.

    Raises:
        ValueError: if either summary has no finite mean.
    """
    m_ours, m_other = _mean(ours), _mean(other)
    if m_ours is None or m_other is None:
        raise ValueError("both summaries need a finite 'mean' to be compared")
    lo_o, hi_o = _interval(ours) or (m_ours, m_ours)
    lo_t, hi_t = _interval(other) or (m_other, m_other)
    if (m_ours > hi_t) if higher_better else (m_ours < lo_t):
        return BEATS
    if lo_o <= hi_t and lo_t <= hi_o:
        return MATCHES
    return BELOW


# --------------------------------------------------------------------------- formatting


def _num(x: Any, digits: int = DIGITS) -> str:
    if isinstance(x, bool) or x is None:
        return "n/a" if x is None else str(x)
    if isinstance(x, int):
        return str(x)
    f = _finite(x)
    if f is None:
        return "n/a" if isinstance(x, float) else _cell(x)
    return f"{f:.{digits}f}"


def _signed(x: float | None, digits: int = DIGITS) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}"


def format_summary(s: Summary | None, digits: int = DIGITS) -> str:
    """``0.654 ± 0.012 [0.610, 0.700]``; parts whose keys are missing are left out; ``n/a`` if no mean."""
    if not s or _mean(s) is None:
        return "n/a"
    text = _num(s["mean"], digits)
    if _finite(s.get("std")) is not None:
        text += f" ± {_num(s['std'], digits)}"
    ci = _interval(s)
    if ci is not None:
        text += f" [{_num(ci[0], digits)}, {_num(ci[1], digits)}]"
    return text


def _point_ci(s: Summary | None) -> str:
    """``0.654 [0.610, 0.700]`` (no std): for prose."""
    if not s or _mean(s) is None:
        return "n/a"
    ci = _interval(s)
    return _num(s["mean"]) + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else " (no CI)")


def _cell(x: Any) -> str:
    text = x if isinstance(x, str) else json.dumps(x, default=str) if isinstance(x, dict | list) else str(x)
    return text.replace("\n", " ").replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _metric_header(metric: str) -> str:
    return f"{metric} {'↑' if higher_is_better(metric) else '↓'}"


# --------------------------------------------------------------------------- reading the metrics dict


def _models(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    models = metrics.get("models") or {}
    return {str(k): dict(v) for k, v in models.items() if isinstance(v, Mapping)}


def _ordered(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Model names: recipe(s) first, then other non-trivial kinds, learned baselines, trivial ones."""
    names = list(models)
    return sorted(names, key=lambda n: (KIND_ORDER.get(str(models[n].get("kind", "")), 1), names.index(n)))


def _summary(model: Mapping[str, Any], split: str, metric: str) -> dict[str, Any] | None:
    return _as_summary(((model.get("splits") or {}).get(split) or {}).get(metric))


def _splits(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for m in models.values():
        seen.update(dict.fromkeys(m.get("splits") or {}))
    return list(seen)


def _main_split(models: Mapping[str, Mapping[str, Any]]) -> str | None:
    splits = _splits(models)
    return "test" if "test" in splits else (splits[-1] if splits else None)


def _metric_names(models: Mapping[str, Mapping[str, Any]], split: str, primary: str | None) -> list[str]:
    seen: dict[str, None] = {}
    for m in models.values():
        seen.update(dict.fromkeys((m.get("splits") or {}).get(split) or {}))
    names = list(seen)
    return [primary, *[n for n in names if n != primary]] if primary in seen else names


def _primary(metrics: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> str | None:
    if metrics.get("primary_metric"):
        return str(metrics["primary_metric"])
    split = _main_split(models)
    names = _metric_names(models, split, None) if split else []
    return names[0] if names else None


def _recipe_name(metrics: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> str | None:
    if metrics.get("recipe") in models:
        return str(metrics["recipe"])
    return next((n for n, m in models.items() if m.get("kind") == "recipe"), None)


def _best(models: Mapping[str, Mapping[str, Any]], names: Iterable[str], split: str, metric: str) -> str | None:
    scored = [(n, _mean(_summary(models[n], split, metric))) for n in names]
    scored = [(n, v) for n, v in scored if v is not None]
    if not scored:
        return None
    sign = 1.0 if higher_is_better(metric) else -1.0
    return max(scored, key=lambda nv: sign * nv[1])[0]


def _seeds(model: Mapping[str, Any], s: Summary | None) -> int | None:
    if isinstance(model.get("seeds"), int):
        return int(model["seeds"])
    per_seed = (s or {}).get("per_seed")
    return len(per_seed) if isinstance(per_seed, list) else None


# --------------------------------------------------------------------------- sections


def _verdict_clause(metrics: Mapping[str, Any], recipe: str, kind: str, split: str, metric: str) -> str:
    models = _models(metrics)
    label = {"trivial": "trivial baseline", "baseline": "learned baseline"}[kind]
    best = _best(models, [n for n, m in models.items() if m.get("kind") == kind], split, metric)
    if best is None:
        return f"no {label} was reported, so it cannot be compared with one"
    ours, other = _summary(models[recipe], split, metric), _summary(models[best], split, metric)
    paired = _paired_row(metrics, recipe, best, metric)
    if paired is not None:
        return f"it is **{_PAIRED_WORDS[paired['verdict']]}** the best {label} ({best}: {_point_ci(other)}; " \
               f"{_paired_text(paired)})"
    verdict = compare_summaries(ours or {}, other or {}, higher_better=higher_is_better(metric))
    no_ci = "" if _interval(ours or {}) and _interval(other or {}) else "; means only, a CI is missing"
    return f"it **{verdict}** the best {label} ({best}: {_point_ci(other)}{no_ci})"


_PAIRED_WORDS = {"better": "better than", "worse": "worse than",
                 "no detectable difference": "not detectably different from", "undefined": "not comparable with"}
_PAIRED_NOTE = ("Verdicts come from a paired bootstrap of the difference (the same resampled test units for "
                "every model, seeds averaged inside each resample): *better* or *worse* when the 95% CI of the "
                "difference excludes 0, else *not detectably different*, with the CI half-width as the smallest "
                "difference these data could detect.")


def _paired_row(metrics: Mapping[str, Any], a: str, b: str, metric: str) -> Mapping[str, Any] | None:
    for row in metrics.get("comparisons") or []:
        if row.get("metric") == f"{metric}_diff" and {row.get("a"), row.get("b")} == {a, b}:
            if row.get("a") == a:
                return row
            flipped = {"better": "worse", "worse": "better"}
            return {**row, "mean": -row["mean"], "ci_low": -row["ci_high"], "ci_high": -row["ci_low"],
                    "verdict": flipped.get(row["verdict"], row["verdict"])}
    return None


def _paired_text(row: Mapping[str, Any]) -> str:
    from polymodal.evaluation.multiple_testing import bootstrap_p_floor, format_p

    floor = bootstrap_p_floor(int(row.get("n_boot") or 1000))
    return (f"difference {_signed(row.get('mean'))} [{_num(row.get('ci_low'))}, {_num(row.get('ci_high'))}], "
            f"p = {format_p(row.get('p_value'), floor)}, Holm-adjusted {format_p(row.get('p_adjusted'), floor)}")


def _comparisons_section(metrics: Mapping[str, Any]) -> str | None:
    # rows a task renders in its own sections (text-forecast's Diebold-Mariano grid) carry "report": False
    rows = [r for r in metrics.get("comparisons") or [] if r.get("report", True)]
    if not rows:
        return None
    from polymodal.evaluation.multiple_testing import bootstrap_p_floor, format_p

    table = []
    for r in rows:
        floor = bootstrap_p_floor(int(r.get("n_boot") or 1000))
        table.append([r.get("model", ""), r.get("metric", ""), _signed(r.get("mean")),
                      f"[{_num(r.get('ci_low'))}, {_num(r.get('ci_high'))}]", _num(r.get("half_width")),
                      format_p(r.get("p_value"), floor), format_p(r.get("p_adjusted"), floor),
                      r.get("verdict", "")])
    header = ["Comparison", "Metric", "Difference", "95% CI", "Detectable (half-width)", "p", "p (Holm)", "Verdict"]
    return "## Paired comparisons (test)\n\n" + _PAIRED_NOTE + " Families: each metric's comparisons.\n\n" \
        + _table(header, table)


def _runs_section(metrics: Mapping[str, Any]) -> str | None:
    log = metrics.get("runs") or []
    resumed = [e for e in log if e.get("resumed") or e.get("jobs_reused")]
    if not resumed:
        return None
    lines = [f"- {e.get('started')}: {len(e.get('jobs_reused') or [])} finished job(s) reused, "
             f"{len(e.get('jobs_run') or [])} run" for e in log]
    return "## Resumes\n\nThis run was interrupted and resumed; each invocation:\n\n" + "\n".join(lines)


def _summary_section(metrics: Mapping[str, Any]) -> str:
    models = _models(metrics)
    recipe, metric, split = _recipe_name(metrics, models), _primary(metrics, models), _main_split(models)
    title = f"# {metrics.get('recipe', recipe or 'run')} — {metrics.get('task', 'task')} report"
    if recipe is None or metric is None or split is None:
        return f"{title}\n\nNo recipe model with metrics was recorded, so there is no verdict."
    ours = _summary(models[recipe], split, metric)
    if _mean(ours) is None:
        return f"{title}\n\n**{recipe}** has no {split} `{metric}`, so there is no verdict."
    seeds = _seeds(models[recipe], ours)
    seed_text = f"mean over {seeds} seeds" if seeds else "mean"
    direction = "higher" if higher_is_better(metric) else "lower"
    text = (
        f"**{recipe}** reaches {split} `{metric}` {_point_ci(ours)} ({seed_text}, 95% bootstrap CI; "
        f"{direction} is better). On the primary metric "
        f"{_verdict_clause(metrics, recipe, 'trivial', split, metric)}, and "
        f"{_verdict_clause(metrics, recipe, 'baseline', split, metric)}. "
        + (_PAIRED_NOTE if metrics.get("comparisons") else
           "*Beats* means its mean lies beyond the other's CI; *matches within CI* means the intervals "
           "overlap; *is below* means it is worse with no overlap.")
    )
    return f"{title}\n\n{text}"


def _dataset_section(metrics: Mapping[str, Any]) -> str | None:
    dataset, selection = metrics.get("dataset") or {}, metrics.get("selection") or {}
    if not dataset and not selection:
        return None
    parts = ["## Dataset and model selection"]
    if dataset.get("description"):
        parts.append(str(dataset["description"]))
    if dataset.get("version"):
        parts.append(f"Data version: {dataset['version']}.")
    sizes, files = dataset.get("sizes") or {}, dataset.get("files") or {}
    if sizes or files:
        splits = list(dict.fromkeys([*sizes, *files]))
        parts.append(_table(["Split", "n", "File"], [[s, _num(sizes.get(s)), files.get(s, "")] for s in splits]))
    if selection:
        desc = f": {selection['description']}" if selection.get("description") else ""
        parts.append(f"Model selection, early stopping and thresholds: **{selection.get('name', '?')}**{desc}.")
    return "\n\n".join(parts)


def _main_table(metrics: Mapping[str, Any]) -> str | None:
    models = _models(metrics)
    split = _main_split(models)
    if split is None:
        return None
    names, cols = _ordered(models), _metric_names(models, split, _primary(metrics, models))
    best = {c: _best_display(models, names, split, c) for c in cols}
    rows = []
    for n in names:
        cells = [format_summary(_summary(models[n], split, c)) for c in cols]
        cells = [
            f"**{v}**" if _display_mean(models[n], split, c) in best[c] else v for v, c in zip(cells, cols, strict=True)
        ]
        s0 = _summary(models[n], split, cols[0]) if cols else None
        rows.append(
            [
                n,
                models[n].get("kind", ""),
                _num((models[n].get("n") or {}).get(split)),
                _num(_seeds(models[n], s0)),
                *cells,
            ]
        )
    header = ["Model", "Kind", f"n ({split})", "Seeds", *[_metric_header(c) for c in cols]]
    note = f"Mean ± std over seeds [95% bootstrap CI], {split} split; best per column in bold."
    return f"## Results ({split})\n\n{note}\n\n" + _table(header, rows)


def _display_mean(model: Mapping[str, Any], split: str, metric: str) -> str | None:
    m = _mean(_summary(model, split, metric))
    return None if m is None else _num(m)


def _best_display(models: Mapping[str, Mapping[str, Any]], names: list[str], split: str, metric: str) -> set[str]:
    """The displayed mean(s) of the best model for ``metric``: ties at display precision all win."""
    best = _best(models, names, split, metric)
    shown = _display_mean(models[best], split, metric) if best else None
    return {shown} if shown is not None else set()


def _threshold(model: Mapping[str, Any]) -> str:
    thr = model.get("threshold")
    per_seed = thr.get("per_seed") if isinstance(thr, Mapping) else None
    values = [v for v in (per_seed or []) if _finite(v) is not None]
    if not values:
        return "n/a" if not isinstance(thr, int | float) else _num(thr)
    return _num(sum(values) / len(values))


def _valid_test_table(models: Mapping[str, Mapping[str, Any]], metric: str) -> str:
    rows = []
    for n in _ordered(models):
        v, t = _summary(models[n], "valid", metric), _summary(models[n], "test", metric)
        gap = _mean(t) - _mean(v) if _mean(t) is not None and _mean(v) is not None else None
        rows.append([n, format_summary(v), format_summary(t), _signed(gap), _threshold(models[n])])
    header = ["Model", f"valid {metric}", f"test {metric}", "test − valid", "threshold (valid-chosen, seed mean)"]
    return _table(header, rows)


def _selection_models(value: Any) -> tuple[dict[str, dict[str, Any]], str]:
    if isinstance(value, Mapping) and isinstance(value.get("models"), Mapping):
        return _models(value), str(value.get("description", ""))
    return _models({"models": value}), ""


def _valid_test_section(metrics: Mapping[str, Any]) -> str | None:
    models, metric = _models(metrics), _primary(metrics, _models(metrics))
    if metric is None or not {"valid", "test"} <= set(_splits(models)):
        return None
    parts = ["## Validation vs test", _valid_test_table(models, metric)]
    for name, value in (metrics.get("selections") or {}).items():
        sel_models, desc = _selection_models(value)
        if sel_models:
            parts.append(f"### Selected on: {name}" + (f"\n\n{desc}" if desc else ""))
            parts.append(_valid_test_table(sel_models, metric))
    return "\n\n".join(parts)


def _our_version(metrics: Mapping[str, Any]) -> str:
    dataset = metrics.get("dataset") or {}
    sizes = dataset.get("sizes") or {}
    size_text = " / ".join(f"{k} {v}" for k, v in sizes.items())
    base = str(dataset.get("version") or dataset.get("description") or "not recorded")
    return f"{base} ({size_text})" if size_text else base


def _match_model(entry: Mapping[str, Any], models: Mapping[str, Any]) -> str | None:
    """Our model for a published entry: ``our_model`` if given, else the same name up to case/punctuation."""
    if entry.get("our_model") in models:
        return str(entry["our_model"])
    key = re.sub(r"[^a-z0-9]", "", str(entry.get("model", "")).lower())
    by_key = {re.sub(r"[^a-z0-9]", "", n.lower()): n for n in models}
    return by_key.get(key)


def _published_section(metrics: Mapping[str, Any]) -> str | None:
    published = [p for p in metrics.get("published") or [] if isinstance(p, Mapping)]
    if not published:
        return None
    models, ours_version = _models(metrics), (metrics.get("dataset") or {}).get("version")
    rows, differing = [], []
    for p in published:
        ours_name = _match_model(p, models)
        split = str(p.get("split", "test"))
        s = _summary(models[ours_name], split, str(p.get("metric"))) if ours_name else None
        delta = _mean(s) - float(p["value"]) if _mean(s) is not None and _finite(p.get("value")) is not None else None
        same = ours_version is not None and str(p.get("dataset_version", "")).strip() == str(ours_version).strip()
        if not same:
            differing.append(str(p.get("dataset_version", "unstated")))
        rows.append(
            [
                p.get("model", "?"),
                p.get("metric", "?"),
                split,
                _num(p.get("value")),
                p.get("source", ""),
                p.get("dataset_version", "unstated"),
                ours_name or "no matching model",
                _point_ci(s),
                _signed(delta),
                "yes" if same else "**no**",
            ]
        )
    header = [
        "Published model",
        "Metric",
        "Split",
        "Published",
        "Source",
        "Their data",
        "Our model",
        "Ours",
        "Ours − published",
        "Same data?",
    ]
    parts = ["## Published numbers beside ours", _table(header, rows)]
    if differing:
        versions = "; ".join(dict.fromkeys(differing))
        parts.append(
            f"**Caveat:** the published numbers used a different data version ({versions}) from ours "
            f"({_our_version(metrics)}). They are context, not a like-for-like comparison."
        )
    return "\n\n".join(parts)


def _robustness_reading(cond: str, s: Summary | None, ref: Summary | None, metric: str) -> str:
    if cond == "none":
        return "reference: all modalities"
    if _mean(s) is None or _mean(ref) is None:
        return "n/a"
    what = cond.split(":", 1)[-1]
    delta = _mean(s) - _mean(ref)
    worse = delta < 0 if higher_is_better(metric) else delta > 0
    ci = _interval(ref)
    if ci is not None and ci[0] <= _mean(s) <= ci[1]:
        return f"no clear effect of `{what}` (within the reference CI)"
    if delta == 0:
        return "no change"
    effect = f"`{what}` helps" if worse else f"`{what}` hurts"
    return effect if ci is not None else f"{effect} (no CI on the reference)"


def _robustness_section(metrics: Mapping[str, Any]) -> str | None:
    rob = {str(k): v for k, v in (metrics.get("robustness") or {}).items() if isinstance(v, Mapping)}
    if not rob:
        return None
    primary = _primary(metrics, _models(metrics))
    names = list(dict.fromkeys(m for v in rob.values() for m in v))
    cols = [primary, *[m for m in names if m != primary]] if primary in names else names
    ref = rob.get("none", {})
    rows = []
    for cond, vals in rob.items():
        row: list[Any] = [f"`{cond}`"]
        for c in cols:
            s, r = _as_summary(vals.get(c)), _as_summary(ref.get(c))
            delta = _mean(s) - _mean(r) if _mean(s) is not None and _mean(r) is not None else None
            row += [format_summary(s), _signed(delta) if cond != "none" else ""]
        rows.append(
            [*row, _robustness_reading(cond, _as_summary(vals.get(cols[0])), _as_summary(ref.get(cols[0])), cols[0])]
        )
    header = [
        "Test-time condition",
        *[h for c in cols for h in (_metric_header(c), f"Δ {c} vs none")],
        f"Reading ({cols[0]})",
    ]
    note = (
        "A modality is dropped (or corrupted) at test time only. Δ is the condition's mean minus the "
        "all-modality mean; a modality *helps* when removing it makes the metric worse beyond the "
        "reference CI."
    )
    missing = "" if "none" in rob else "\n\nNo `none` (all modalities) condition was recorded: Δ is n/a."
    return f"## Does each modality help?\n\n{note}{missing}\n\n" + _table(header, rows)


def _drift_section(metrics: Mapping[str, Any]) -> str | None:
    drift = {str(k): v for k, v in (metrics.get("drift") or {}).items() if isinstance(v, Mapping)}
    if not drift:
        return None
    cols = list(dict.fromkeys(c for v in drift.values() for c in v))
    rows = [[split, *[_num(v.get(c)) for c in cols]] for split, v in drift.items()]
    return "## Drift between splits\n\n" + _table(["Split", *cols], rows)


def _skips_section(metrics: Mapping[str, Any]) -> str | None:
    if "skips" not in metrics:
        return None
    skips = metrics.get("skips") or {}
    if not skips:
        return "## Skipped or repaired inputs\n\nNone: no input was skipped or repaired."
    rows = []
    for reason, info in skips.items():
        info = info if isinstance(info, Mapping) else {"count": info}
        examples = ", ".join(f"`{str(e)[:60]}`" for e in (info.get("examples") or [])[:3])
        rows.append([reason, _num(info.get("count")), examples])
    return "## Skipped or repaired inputs\n\n" + _table(["Reason", "Count", "Examples"], rows)


def _seconds(key: str, value: Any) -> str:
    unit = " s" if "seconds" in key else ""
    if isinstance(value, list):
        vals = [float(v) for v in value if _finite(v) is not None]
        if not vals:
            return "n/a"
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        return f"{mean:.1f}{unit} mean ± {std:.1f} over {len(vals)}"
    return (
        f"{value:.1f}{unit}" if _finite(value) is not None and not isinstance(value, int) else f"{_cell(value)}{unit}"
    )


def _kv_section(title: str, values: Any, fmt: Any = None) -> str | None:
    if not isinstance(values, Mapping) or not values:
        return None
    rows = [[k, fmt(str(k), v) if fmt else _cell(v)] for k, v in values.items()]
    return f"## {title}\n\n" + _table(["Key", "Value"], rows)


def _notes_section(metrics: Mapping[str, Any]) -> str | None:
    notes = metrics.get("notes")
    notes = [notes] if isinstance(notes, str) else list(notes or [])
    return "## Notes\n\n" + "\n".join(f"- {_cell(n)}" for n in notes) if notes else None


def _plots_section(plots: Sequence[str | Path], plot_errors: Sequence[str]) -> str | None:
    if not plots and not plot_errors:
        return None
    parts = ["## Plots"]
    parts += [f"![{Path(p).stem}]({Path(p).as_posix()})" for p in plots]
    parts += [f"Plots could not be drawn: {e}" for e in plot_errors]
    return "\n\n".join(parts)


def render_markdown(
    metrics: Mapping[str, Any],
    *,
    plots: Sequence[str | Path] = (),
    plot_errors: Sequence[str] = (),
    sections: Sequence[str] = (),
) -> str:
    """Render a run's metrics dict as a Markdown report.

    Args:
        metrics: the content of metrics.json (see the module docstring); only ``models`` matters for
            the main sections, every other key adds its section when present.
        plots: plot paths relative to the report's folder, linked as images.
        plot_errors: messages of plots that could not be drawn, shown so nothing fails silently.
        sections: the task's own Markdown sections (``Task.report_sections``), after the main table.

    Returns:
        The Markdown text, ending in a newline.
    """
    sections = [
        _summary_section(metrics),
        _dataset_section(metrics),
        _main_table(metrics),
        *sections,
        _comparisons_section(metrics),
        _valid_test_section(metrics),
        _published_section(metrics),
        _robustness_section(metrics),
        _drift_section(metrics),
        _skips_section(metrics),
        _kv_section("Timing", metrics.get("timing"), _seconds),
        _kv_section("Environment", metrics.get("environment")),
        _notes_section(metrics),
        _runs_section(metrics),
        _plots_section(plots, plot_errors),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


# --------------------------------------------------------------------------- flat rows and the run folder


def metrics_to_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat, JSON-ready row per (model, split, metric) of ``metrics["models"]``.

    Returns:
        Dicts with keys ``model, split, metric, mean, std, ci_low, ci_high, seeds``; a missing or
        non-finite value is ``None`` (so ``json.dumps`` never writes ``NaN``).
    """
    rows = []
    for name, model in _models(metrics).items():
        for split, values in (model.get("splits") or {}).items():
            for metric, raw in (values or {}).items():
                s = _as_summary(raw) or {}
                rows.append(
                    {
                        "model": name,
                        "split": str(split),
                        "metric": str(metric),
                        **{k: _finite(s.get(k)) for k in ("mean", "std", "ci_low", "ci_high")},
                        "seeds": _seeds(model, s),
                    }
                )
    return rows


def write_report(run_dir: Path, metrics: Mapping[str, Any], predictions: pd.DataFrame | None,
                 sections: Sequence[str] = ()) -> Path:
    """Draw the plots into ``run_dir/plots`` and write ``run_dir/report.md`` (atomically).

    ``sections`` are the task's own (``Task.report_sections``), placed after the main table.
    Binary predictions (``y_true``, ``score``) get ROC, PR and calibration plots; survival ones
    (``time``, ``event``, ``risk``, or ``task == "survival"``) get Kaplan-Meier plots; other tasks get
    none. A plot that cannot be drawn (a single-class split, say) is reported in the Markdown.

    Returns:
        The path of report.md.
    """
    from polymodal.reports.plots import plot_binary, plot_survival

    run_dir = Path(run_dir)
    plots: list[Path] = []
    errors: list[str] = []
    if predictions is not None and not predictions.empty and "split" not in predictions.columns:
        errors.append(f"predictions have no 'split' column (columns: {list(predictions.columns)})")
    elif predictions is not None and not predictions.empty:
        survival = metrics.get("task") == "survival" or {"time", "event", "risk"} <= set(predictions.columns)
        plotter = (
            plot_survival if survival else plot_binary if {"y_true", "score"} <= set(predictions.columns) else None
        )
        split = "test" if "test" in set(predictions["split"]) else str(predictions["split"].iloc[-1])
        try:
            plots = plotter(predictions, run_dir / "plots", split=split) if plotter else []
        except ValueError as err:
            errors.append(str(err))
    rel = [p.relative_to(run_dir) for p in plots]
    path = run_dir / "report.md"
    write_text(path, render_markdown(metrics, plots=rel, plot_errors=errors, sections=sections))
    return path
