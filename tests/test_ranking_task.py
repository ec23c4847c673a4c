"""RankingTask: metrics recomputed from saved ranked lists equal the hand-computed ones; user bootstrap; checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.errors import DataError
from polymodal.tasks import TASKS
from polymodal.tasks.ranking import RankingTask, hits_from_lists


def _rows(model: str, seed: int, ranked: list[str], relevant: list[str], split: str = "test",
          kind: str = "recipe") -> pd.DataFrame:
    return pd.DataFrame({"model": model, "kind": kind, "selection": "", "fold": 0, "seed": seed, "condition": "none",
                         "subset": "all", "split": split, "id": [str(i) for i in range(len(ranked))],
                         "relevant": relevant, "ranked": ranked})


def test_hits_from_lists_and_errors() -> None:
    hits, n_rel = hits_from_lists(["5 3 9", "1 2 4"], ["3 7", "8"], k=2)
    assert hits.tolist() == [[False, True], [False, False]] and n_rel.tolist() == [2, 1]
    with pytest.raises(DataError, match="row 2, field 'ranked'"):
        hits_from_lists(["5 3", "1"], ["3", "8"], k=2)
    with pytest.raises(DataError, match="row 1, field 'relevant'"):
        hits_from_lists(["5 3"], [""], k=2)


def test_task_evaluates_hand_computed_recall_and_compares() -> None:
    task = RankingTask(headline="m", ks=(2,), n_boot=200)
    assert TASKS["ranking"] is RankingTask and type(task)(**task.spec()).ks == (2,)
    ranked = ["1 2", "3 4", "5 6"]
    # Headline: user 0 finds 1 of 2, user 1 finds 1 of 1, user 2 finds 0 -> recall@2 = (0.5 + 1 + 0) / 3.
    good = _rows("m", 0, ranked, ["1 9", "4", "7"])
    valid = _rows("m", 0, ranked, ["1", "3", "5"], split="valid")
    # Baseline ranks nothing relevant.
    bad = _rows("pop", 0, ["10 11"] * 3, ["1 9", "4", "7"], kind="trivial")
    bad_valid = _rows("pop", 0, ["10 11"] * 3, ["1", "3", "5"], split="valid", kind="trivial")
    metrics = task.evaluate(pd.concat([good, valid, bad, bad_valid], ignore_index=True))
    test = metrics["models"]["m"]["splits"]["test"]
    assert test["recall@2"]["mean"] == pytest.approx(0.5)
    assert test["hr@2"]["mean"] == pytest.approx(2 / 3)
    assert test["precision@2"]["mean"] == pytest.approx(1 / 3)
    assert metrics["models"]["m"]["splits"]["valid"]["recall@2"]["mean"] == pytest.approx(1.0)
    assert test["recall@2"]["ci_low"] <= 0.5 <= test["recall@2"]["ci_high"]
    assert metrics["models"]["pop"]["splits"]["test"]["recall@2"]["mean"] == 0.0
    comp = next(c for c in metrics["comparisons"] if c["metric"] == "recall@2")
    assert comp["model"] == "m vs pop" and comp["mean"] == pytest.approx(0.5)
    assert "p_adjusted" in comp


def test_seeds_average_and_user_sets_must_match() -> None:
    task = RankingTask(headline="m", ks=(1,), n_boot=50)
    a = _rows("m", 0, ["1", "2"], ["1", "3"])
    b = _rows("m", 1, ["3", "2"], ["1", "3"])
    metrics = task.evaluate(pd.concat([a, b], ignore_index=True))
    stats = metrics["models"]["m"]["splits"]["test"]["recall@1"]
    assert stats["per_seed"] == [0.5, 0.0] and stats["mean"] == pytest.approx(0.25)
    c = _rows("m", 2, ["1"], ["1"])
    with pytest.raises(DataError, match="users differ"):
        task.evaluate(pd.concat([a, c], ignore_index=True))
    assert np.isfinite(stats["std"])
