"""Plots for a run folder: ROC / PR / calibration for binary tasks, Kaplan-Meier for survival.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas, never through
``pyplot``: no global backend state is touched, nothing leaks between calls, and it is safe in a
headless worker. Every file is written atomically (``polymodal.io.atomic_path``).

Scores are averaged over seeds per (model, id) before plotting, so a curve shows the seed-mean
score of each sample; the legend numbers (AUC, AP, Brier) are of that seed-mean score and can differ
slightly from the per-seed means in metrics.json.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from polymodal.io import atomic_path

__all__ = ["average_over_seeds", "plot_binary", "plot_survival"]

BINARY_COLUMNS = ("id", "split", "model", "y_true", "score")
SURVIVAL_COLUMNS = ("id", "split", "model", "time", "event", "risk")


def _require(predictions: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions for {what} plots lack column(s) {missing}; have {list(predictions.columns)}")


def average_over_seeds(
    predictions: pd.DataFrame, split: str, value: str, keep: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Average ``value`` over seeds for each (model, id) of one split.

    Args:
        predictions: long table with columns ``id, split, model, [seed], value, *keep``.
        split: which split to keep.
        value: the column to average (``score`` or ``risk``).
        keep: per-sample columns that do not depend on the seed (``y_true``; ``time, event``).

    Returns:
        Model name -> frame with one row per id and columns ``keep + [value]``, in the order the
        models first appear in ``predictions``.

    Raises:
        ValueError: if the split has no rows.
    """
    rows = predictions[predictions["split"] == split]
    if rows.empty:
        have = sorted(predictions["split"].astype(str).unique())
        raise ValueError(f"predictions have no rows for split {split!r} (splits present: {have})")
    out: dict[str, pd.DataFrame] = {}
    for model, group in rows.groupby("model", sort=False):
        agg = {value: "mean", **{c: "first" for c in keep}}
        out[str(model)] = group.groupby("id", sort=True).agg(agg)[[*keep, value]]
    return out


def _new_figure(width: float = 5.5, height: float = 4.5) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _has_both_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2


def _roc_figure(per_model: dict[str, pd.DataFrame], split: str) -> Figure:
    fig, ax = _new_figure()
    for model, df in per_model.items():
        y, s = df["y_true"].to_numpy(), df["score"].to_numpy()
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{model} (AUC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC ({split}, seed-mean score)")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def _pr_figure(per_model: dict[str, pd.DataFrame], split: str) -> Figure:
    fig, ax = _new_figure()
    prevalence = None
    for model, df in per_model.items():
        y, s = df["y_true"].to_numpy(), df["score"].to_numpy()
        precision, recall, _ = precision_recall_curve(y, s)
        ax.step(recall, precision, where="post", label=f"{model} (AP {average_precision_score(y, s):.3f})")
        prevalence = float(np.mean(y))
    if prevalence is not None:
        ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1, label=f"prevalence {prevalence:.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", title=f"Precision-recall ({split}, seed-mean score)")
    ax.set_ylim(0.0, 1.02)
    ax.legend(loc="lower left", fontsize="small")
    return fig


def _calibration_figure(per_model: dict[str, pd.DataFrame], split: str, n_bins: int) -> Figure:
    fig, ax = _new_figure()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    skipped = []
    for model, df in per_model.items():
        y, s = df["y_true"].to_numpy(), df["score"].to_numpy()
        if s.min() < 0 or s.max() > 1:
            skipped.append(model)  # not a probability: calibration is undefined
            continue
        frac_pos, mean_pred = calibration_curve(y, s, n_bins=n_bins, strategy="uniform")
        ax.plot(mean_pred, frac_pos, marker="o", markersize=3, label=f"{model} (Brier {brier_score_loss(y, s):.3f})")
    if skipped:
        ax.text(
            0.02,
            0.98,
            "not probabilities, not shown: " + ", ".join(skipped),
            transform=ax.transAxes,
            fontsize="x-small",
            va="top",
        )
    ax.set(
        xlabel="Mean predicted probability",
        ylabel="Observed positive fraction",
        title=f"Calibration ({split}, {n_bins} bins)",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def plot_binary(predictions: pd.DataFrame, out_dir: Path, split: str = "test", n_bins: int = 10) -> list[Path]:
    """Write roc.png, pr.png and calibration.png for one split, one curve per model.

    Args:
        predictions: columns ``id, split, model, seed, y_true, score`` (``seed`` may be absent).
        out_dir: folder for the PNGs (created if needed).
        split: which split to plot.
        n_bins: bins of the calibration curve.

    Returns:
        The paths written, in the order roc, pr, calibration.

    Raises:
        ValueError: on missing columns, an empty split, or a split with only one class (ROC and PR
            are undefined then).
    """
    _require(predictions, BINARY_COLUMNS, "binary")
    per_model = average_over_seeds(predictions, split, "score", ["y_true"])
    y_any = next(iter(per_model.values()))["y_true"].to_numpy()
    if not _has_both_classes(y_any):
        raise ValueError(f"split {split!r} has a single class in y_true; ROC and PR curves are undefined")
    out_dir = Path(out_dir)
    return [
        _save(_roc_figure(per_model, split), out_dir / "roc.png"),
        _save(_pr_figure(per_model, split), out_dir / "pr.png"),
        _save(_calibration_figure(per_model, split, n_bins), out_dir / "calibration.png"),
    ]


def _km_panel(ax: Axes, model: str, df: pd.DataFrame) -> None:
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test

    risk = df["risk"].to_numpy()
    high = risk > np.median(risk)
    groups = [("low risk", ~high), ("high risk", high)] if high.any() and (~high).any() else [("all", ~high | high)]
    for label, mask in groups:
        km = KaplanMeierFitter(label=f"{label} (n={int(mask.sum())})")
        km.fit(df["time"].to_numpy()[mask], event_observed=df["event"].to_numpy()[mask])
        km.plot_survival_function(ax=ax, ci_show=True)
    if len(groups) == 2:
        t, e = df["time"].to_numpy(), df["event"].to_numpy()
        p = logrank_test(t[~high], t[high], event_observed_A=e[~high], event_observed_B=e[high]).p_value
        subtitle = f"log-rank p = {p:.3g}"
    else:
        subtitle = "constant risk: no split, no test"
    ax.set(title=f"{model}\n{subtitle}", xlabel="Time", ylabel="Survival probability")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize="small")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def plot_survival(predictions: pd.DataFrame, out_dir: Path, split: str = "test") -> list[Path]:
    """Write one Kaplan-Meier plot per model: predicted low- vs high-risk groups (median split).

    Risk is averaged over seeds per sample, split at its median (``risk > median`` is high risk), and
    the two groups' Kaplan-Meier curves are drawn with lifelines, titled with the log-rank p-value.
    A model with constant risk (a trivial baseline) gets a single curve and no test.

    Args:
        predictions: columns ``id, split, model, seed, time, event, risk`` (``seed`` may be absent).
        out_dir: folder for the PNGs (created if needed).
        split: which split to plot.

    Returns:
        The paths written, ``km_<model>.png`` per model, in the order models first appear.

    Raises:
        ValueError: on missing columns or an empty split.
    """
    _require(predictions, SURVIVAL_COLUMNS, "survival")
    per_model = average_over_seeds(predictions, split, "risk", ["time", "event"])
    paths: list[Path] = []
    for model, df in per_model.items():
        fig, ax = _new_figure()
        _km_panel(ax, model, df)
        name = f"km_{_slug(model)}"
        while Path(out_dir) / f"{name}.png" in paths:  # two names that slug alike
            name += "_"
        paths.append(_save(fig, Path(out_dir) / f"{name}.png"))
    return paths
