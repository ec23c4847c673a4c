"""BinaryTask: thresholds from validation rows only, and verdicts from paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.reports import render_markdown
from polymodal.runs.problem import predictions_frame
from polymodal.tasks import BinaryTask, flat_rows


def _frame(models: dict[str, tuple[str, float | None, int]], n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    signal = y * 2.0 - 1.0
    noise = {split: rng.normal(0, 1, n) for split in ("valid", "test")}
    frames = []
    for model, (kind, scale, seeds) in models.items():
        for s in range(seeds):
            for split in ("valid", "test"):
                score = np.full(n, 0.5) if scale is None else 1 / (1 + np.exp(-(signal + scale * noise[split])))
                frames.append(predictions_frame(model=model, kind=kind, split=split, ids=range(n), seed=s,
                                                y_true=y, score=score))
    return pd.concat(frames, ignore_index=True)


def test_identical_models_are_not_detectably_different() -> None:
    frame = _frame({"ours": ("recipe", 2.0, 2), "copy": ("baseline", 2.0, 1), "prior": ("trivial", None, 1)})
    out = BinaryTask(headline="ours", n_boot=200).evaluate(frame)
    row = next(r for r in out["comparisons"] if r["model"] == "ours vs copy" and r["metric"] == "roc_auc_diff")
    assert row["mean"] == 0.0 and row["ci_low"] == row["ci_high"] == 0.0
    assert row["verdict"] == "no detectable difference" and row["p_value"] == 1.0


def test_a_planted_gap_is_found_both_ways_and_flattened_for_json() -> None:
    frame = _frame({"ours": ("recipe", 0.5, 2), "weak": ("baseline", 4.0, 1), "prior": ("trivial", None, 1)})
    out = BinaryTask(headline="ours", n_boot=200).evaluate(frame)
    row = next(r for r in out["comparisons"] if r["model"] == "ours vs weak" and r["metric"] == "roc_auc_diff")
    assert row["verdict"] == "better" and row["ci_low"] > 0
    assert row["p_adjusted"] >= row["p_value"] >= 2 / 201  # Holm never lowers a p-value; the floor holds
    json_rows = [r for r in flat_rows(out) if r["model"] == "ours vs weak"]
    assert {r["metric"] for r in json_rows} == {"roc_auc_diff", "pr_auc_diff"}
    assert all({"p_value", "p_adjusted", "ci_low", "ci_high"} <= set(r) for r in json_rows)
    report = render_markdown({**out, "recipe": "toy"})
    assert "## Paired comparisons (test)" in report and "is **better than** the best learned baseline" in report


def test_thresholds_come_from_validation_rows_only() -> None:
    frame = _frame({"ours": ("recipe", 1.0, 1)})
    before = BinaryTask(headline="ours", n_boot=50).evaluate(frame)["models"]["ours"]["threshold"]["per_seed"]
    shifted = frame.copy()
    test = shifted["split"] == "test"
    shifted.loc[test, "score"] = shifted.loc[test, "score"] ** 3  # test scores change, validation does not
    after = BinaryTask(headline="ours", n_boot=50).evaluate(shifted)["models"]["ours"]["threshold"]["per_seed"]
    assert before == after
    with pytest.raises(Exception, match="split"):
        BinaryTask(headline="ours").evaluate(frame.assign(split="train"))
