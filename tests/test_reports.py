"""Reports: Markdown content, verdict logic, flat rows, and plots on small synthetic runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from polymodal.reports import (
    BEATS,
    BELOW,
    MATCHES,
    compare_summaries,
    format_summary,
    higher_is_better,
    metrics_to_rows,
    plot_binary,
    plot_survival,
    render_markdown,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _s(mean: float, std: float, lo: float | None = None, hi: float | None = None) -> dict:
    out = {"mean": mean, "std": std, "per_seed": [mean - std, mean, mean + std]}
    if lo is not None:
        out.update(ci_low=lo, ci_high=hi)
    return out


def _model(kind: str, valid_auc: float, test: dict[str, dict]) -> dict:
    return {
        "kind": kind,
        "description": f"a {kind} model",
        "threshold": {"per_seed": [0.4, 0.5, 0.6]},
        "splits": {"valid": {"roc_auc": _s(valid_auc, 0.01)}, "test": test},
        "n": {"valid": 117, "test": 627},
        "seeds": 3,
    }


@pytest.fixture
def metrics() -> dict:
    models = {
        "tfidf-logistic": _model(
            "baseline",
            0.66,
            {"roc_auc": _s(0.640, 0.010, 0.600, 0.680), "brier": _s(0.230, 0.002, 0.220, 0.240)},
        ),
        "prior": _model("trivial", 0.5, {"roc_auc": _s(0.5, 0.0, 0.5, 0.5), "brier": _s(0.250, 0.0, 0.245, 0.255)}),
        "mexa-ctp": _model(
            "recipe",
            0.70,
            {"roc_auc": _s(0.654, 0.012, 0.610, 0.700), "brier": _s(0.210, 0.003, 0.200, 0.220)},
        ),
    }
    return {
        "recipe": "mexa-ctp",
        "task": "binary",
        "primary_metric": "roc_auc",
        "dataset": {
            "description": "TOP phase I",
            "sizes": {"train": 1044, "valid": 117, "test": 627},
            "files": {"train": "phase_I_train.csv"},
        },
        "selection": {"name": "valid", "description": "official valid split"},
        "models": models,
        "selections": {"valid": copy.deepcopy(models), "temporal": copy.deepcopy(models)},
        "robustness": {
            "none": {"roc_auc": _s(0.654, 0.012, 0.610, 0.700)},
            "drop:drugs": {"roc_auc": _s(0.600, 0.010, 0.560, 0.640)},
            "drop:criteria": {"roc_auc": _s(0.650, 0.010, 0.610, 0.690)},
        },
        "drift": {
            "train": {"n": 1044, "order_min": 1, "order_median": 500, "order_max": 1044, "positive_rate": 0.45},
            "test": {"n": 627, "order_min": 1045, "order_median": 1300, "order_max": 1700, "positive_rate": 0.52},
        },
        "published": [
            {
                "model": "MEXA-CTP",
                "metric": "roc_auc",
                "value": 0.713,
                "source": "MEXA-CTP README",
                "dataset_version": "TOP 2021 release, 1028/146/295 trials",
                "split": "test",
            }
        ],
        "skips": {"unparsable SMILES": {"count": 3, "examples": ["C1CC", "xx|y"]}},
        "timing": {"embedding_seconds": 12.3, "train_seconds_per_seed": [10.0, 12.0, 14.0], "total_seconds": 60.0},
        "environment": {"python": "3.11.7", "torch": "2.4.0", "machine": "x86_64", "cpu_count": 2},
        "notes": ["criteria text dominates the signal"],
    }


def _binary_predictions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in (("valid", 40), ("test", 60)):
        y = rng.integers(0, 2, n)
        for model, noise in (("mexa-ctp", 0.6), ("tfidf-logistic", 1.0), ("prior", None)):
            for s in range(3):
                score = (
                    np.full(n, 0.45) if noise is None else 1 / (1 + np.exp(-(y * 1.5 - 0.75 + rng.normal(0, noise, n))))
                )
                rows += [
                    {"id": f"t{i}", "split": split, "model": model, "seed": s, "y_true": int(y[i]), "score": score[i]}
                    for i in range(n)
                ]
    return pd.DataFrame(rows)


def _survival_predictions() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 80
    risk = rng.normal(size=n)
    time = rng.exponential(scale=np.exp(-risk))
    event = rng.random(n) < 0.8
    rows = []
    for model, r in (("umpsnet", risk), ("km-constant", np.zeros(n))):
        for s in range(2):
            rows += [
                {
                    "id": i,
                    "split": "test",
                    "model": model,
                    "seed": s,
                    "time": time[i],
                    "event": int(event[i]),
                    "risk": r[i] + rng.normal(0, 0.1) * (model == "umpsnet"),
                }
                for i in range(n)
            ]
    return pd.DataFrame(rows)


def _is_png(path: Path) -> bool:
    return path.exists() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


# --------------------------------------------------------------------------- verdict and formatting


def test_verdict_three_cases() -> None:
    other = {"mean": 0.60, "ci_low": 0.55, "ci_high": 0.65}
    assert compare_summaries({"mean": 0.70, "ci_low": 0.64, "ci_high": 0.76}, other) == BEATS
    assert compare_summaries({"mean": 0.62, "ci_low": 0.58, "ci_high": 0.66}, other) == MATCHES
    assert compare_summaries({"mean": 0.45, "ci_low": 0.40, "ci_high": 0.50}, other) == BELOW


def test_verdict_lower_is_better_and_no_ci() -> None:
    other = {"mean": 0.25, "ci_low": 0.24, "ci_high": 0.26}
    assert compare_summaries({"mean": 0.20, "ci_low": 0.19, "ci_high": 0.21}, other, higher_better=False) == BEATS
    assert compare_summaries({"mean": 0.30, "ci_low": 0.29, "ci_high": 0.31}, other, higher_better=False) == BELOW
    assert compare_summaries({"mean": 0.7}, {"mean": 0.6}) == BEATS
    with pytest.raises(ValueError):
        compare_summaries({}, other)


def test_metric_direction() -> None:
    assert higher_is_better("roc_auc") and higher_is_better("c_index") and higher_is_better("f1")
    assert not any(higher_is_better(m) for m in ("brier", "mse", "mae", "ibs", "log_loss", "integrated_brier"))


def test_format_summary() -> None:
    assert format_summary(_s(0.654, 0.012, 0.61, 0.7)) == "0.654 ± 0.012 [0.610, 0.700]"
    assert format_summary({"mean": 0.5}) == "0.500"
    assert format_summary({"mean": float("nan")}) == "n/a"
    assert format_summary(None) == "n/a"


# --------------------------------------------------------------------------- markdown


def test_summary_verdicts(metrics: dict) -> None:
    md = render_markdown(metrics)
    first = md.split("\n\n")[1]
    assert "**beats** the best trivial baseline (prior: 0.500 [0.500, 0.500])" in first
    assert "**matches within CI** the best learned baseline (tfidf-logistic: 0.640 [0.600, 0.680])" in first


def test_summary_below(metrics: dict) -> None:
    metrics["models"]["mexa-ctp"]["splits"]["test"]["roc_auc"] = _s(0.55, 0.01, 0.52, 0.58)
    assert "**is below** the best learned baseline" in render_markdown(metrics)


def test_main_table_rows_order_and_bold(metrics: dict) -> None:
    md = render_markdown(metrics)
    table = md.split("## Results (test)")[1].split("##")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| Model | Kind | n (test) | Seeds | roc_auc ↑ | brier ↓ |")
    assert rows[1] == (
        "| mexa-ctp | recipe | 627 | 3 | **0.654 ± 0.012 [0.610, 0.700]** | **0.210 ± 0.003 [0.200, 0.220]** |"
    )
    assert (
        rows[2]
        == "| tfidf-logistic | baseline | 627 | 3 | 0.640 ± 0.010 [0.600, 0.680] | 0.230 ± 0.002 [0.220, 0.240] |"
    )
    assert rows[3] == "| prior | trivial | 627 | 3 | 0.500 ± 0.000 [0.500, 0.500] | 0.250 ± 0.000 [0.245, 0.255] |"


def test_valid_test_and_selection_tables(metrics: dict) -> None:
    md = render_markdown(metrics)
    assert "| mexa-ctp | 0.700 ± 0.010 | 0.654 ± 0.012 [0.610, 0.700] | -0.046 | 0.500 |" in md
    assert "### Selected on: valid" in md and "### Selected on: temporal" in md


def test_published_caveat(metrics: dict) -> None:
    md = render_markdown(metrics)
    assert "| MEXA-CTP | roc_auc | test | 0.713 | MEXA-CTP README |" in md
    assert "| mexa-ctp | 0.654 [0.610, 0.700] | -0.059 | **no** |" in md
    assert "**Caveat:** the published numbers used a different data version (TOP 2021 release" in md


def test_published_same_version_has_no_caveat(metrics: dict) -> None:
    metrics["dataset"]["version"] = metrics["published"][0]["dataset_version"]
    md = render_markdown(metrics)
    assert "Caveat" not in md and "| yes |" in md


def test_robustness_drift_skips_timing(metrics: dict) -> None:
    md = render_markdown(metrics)
    assert "## Does each modality help?" in md
    assert "| `drop:drugs` | 0.600 ± 0.010 [0.560, 0.640] | -0.054 | `drugs` helps |" in md
    assert "| `drop:criteria` | 0.650 ± 0.010 [0.610, 0.690] | -0.004 | no clear effect of `criteria`" in md
    assert "| test | 627 | 1045 | 1300 | 1700 | 0.520 |" in md
    assert "| unparsable SMILES | 3 | `C1CC`, `xx\\|y` |" in md
    assert "| train_seconds_per_seed | 12.0 s mean ± 1.6 over 3 |" in md
    assert "- criteria text dominates the signal" in md


@pytest.mark.parametrize(
    "drop",
    [
        "dataset",
        "selection",
        "selections",
        "robustness",
        "drift",
        "published",
        "skips",
        "timing",
        "environment",
        "notes",
        "primary_metric",
        "recipe",
        "task",
    ],
)
def test_missing_optional_keys(metrics: dict, drop: str) -> None:
    del metrics[drop]
    md = render_markdown(metrics)
    assert md.startswith("# ") and "## Results (test)" in md


def test_minimal_and_degenerate_inputs() -> None:
    assert render_markdown({}).startswith("# run")
    only_recipe = {"recipe": "r", "models": {"r": {"kind": "recipe", "splits": {"test": {"c_index": 0.61}}}}}
    md = render_markdown(only_recipe)
    assert "no trivial baseline was reported" in md and "| r | recipe | n/a | n/a | **0.610** |" in md
    assert metrics_to_rows(only_recipe) == [
        {
            "model": "r",
            "split": "test",
            "metric": "c_index",
            "mean": 0.61,
            "std": None,
            "ci_low": None,
            "ci_high": None,
            "seeds": None,
        }
    ]


def test_survival_metrics_generic() -> None:
    metrics = {
        "recipe": "umpsnet",
        "task": "survival",
        "primary_metric": "c_index",
        "models": {
            "umpsnet": {
                "kind": "recipe",
                "splits": {"test": {"c_index": _s(0.70, 0.01, 0.66, 0.74), "ibs": _s(0.18, 0.01, 0.16, 0.20)}},
            },
            "km": {
                "kind": "trivial",
                "splits": {"test": {"c_index": _s(0.5, 0.0, 0.5, 0.5), "ibs": _s(0.22, 0.0, 0.21, 0.23)}},
            },
        },
    }
    md = render_markdown(metrics)
    assert "**beats** the best trivial baseline (km" in md and "ibs ↓" in md


def test_flat_rows(metrics: dict) -> None:
    rows = metrics_to_rows(metrics)
    assert len(rows) == 3 * (1 + 2)  # three models x (valid: roc_auc; test: roc_auc, brier)
    assert set(rows[0]) == {"model", "split", "metric", "mean", "std", "ci_low", "ci_high", "seeds"}
    row = next(r for r in rows if (r["model"], r["split"], r["metric"]) == ("mexa-ctp", "test", "roc_auc"))
    assert row == {
        "model": "mexa-ctp",
        "split": "test",
        "metric": "roc_auc",
        "mean": 0.654,
        "std": 0.012,
        "ci_low": 0.61,
        "ci_high": 0.7,
        "seeds": 3,
    }
    metrics["models"]["prior"]["splits"]["test"]["roc_auc"]["mean"] = float("nan")
    json.dumps(metrics_to_rows(metrics), allow_nan=False)


# --------------------------------------------------------------------------- plots and the run folder


def test_plot_binary_writes_pngs(tmp_path: Path) -> None:
    paths = plot_binary(_binary_predictions(), tmp_path / "plots")
    assert [p.name for p in paths] == ["roc.png", "pr.png", "calibration.png"]
    assert all(_is_png(p) for p in paths)
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]  # no temp debris


def test_plot_binary_errors(tmp_path: Path) -> None:
    preds = _binary_predictions()
    with pytest.raises(ValueError, match="no rows for split 'train'"):
        plot_binary(preds, tmp_path, split="train")
    with pytest.raises(ValueError, match="lack column"):
        plot_binary(preds.drop(columns="score"), tmp_path)


def test_plot_survival_km(tmp_path: Path) -> None:
    paths = plot_survival(_survival_predictions(), tmp_path)
    assert [p.name for p in paths] == ["km_umpsnet.png", "km_km-constant.png"]
    assert all(_is_png(p) for p in paths)


def test_write_report_binary(tmp_path: Path, metrics: dict) -> None:
    path = write_report(tmp_path, metrics, _binary_predictions())
    assert path == tmp_path / "report.md"
    md = path.read_text()
    assert "![roc](plots/roc.png)" in md and "![calibration](plots/calibration.png)" in md
    assert _is_png(tmp_path / "plots" / "pr.png")


def test_write_report_survival_and_without_predictions(tmp_path: Path) -> None:
    metrics = {"recipe": "umpsnet", "task": "survival", "models": {}}
    md = write_report(tmp_path / "a", metrics, _survival_predictions()).read_text()
    assert "![km_umpsnet](plots/km_umpsnet.png)" in md
    md = write_report(tmp_path / "b", metrics, None).read_text()
    assert "## Plots" not in md


def test_write_report_records_plot_failure(tmp_path: Path, metrics: dict) -> None:
    preds = _binary_predictions()
    preds["y_true"] = 1
    md = write_report(tmp_path, metrics, preds).read_text()
    assert "Plots could not be drawn: split 'test' has a single class" in md
