"""The meiju recipe end to end on generated MELD / MIntRec files (hashing encoder, tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.recipes.meiju import MeijuConfig
from polymodal.recipes.registry import REGISTRY
from polymodal.runs import load_run, run_recipe
from polymodal.tasks.base import flat_rows

WORDS = {"joy": "wonderful great", "anger": "furious hate", "neutral": "okay the", "sadness": "sad cry"}
SENT = {"joy": "positive", "anger": "negative", "neutral": "neutral", "sadness": "negative"}


def write_data(root: Path, n_dialogues: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    meld = root / "MELD_text"
    meld.mkdir(parents=True)
    files = {"train": "train_sent_emo.csv", "valid": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
    for split, name in files.items():
        rows = []
        for d in range(n_dialogues[split]):
            for u in range(4):
                emo = str(rng.choice(list(WORDS)))
                rows.append({"Sr No.": len(rows) + 1, "Utterance": f"{WORDS[emo]} word{rng.integers(50)}",
                             "Speaker": "Ross", "Emotion": emo, "Sentiment": SENT[emo], "Dialogue_ID": d,
                             "Utterance_ID": u, "Season": 1, "Episode": 1, "StartTime": "a", "EndTime": "b"})
        pd.DataFrame(rows).to_csv(meld / name, index=False)
    return root


@pytest.mark.parametrize("case", ["paired"])
def test_meiju_runs_evaluates_and_predicts(tmp_path: Path, case: str, one_torch_thread: None) -> None:
    data = write_data(tmp_path / "data", {"train": 40, "valid": 10, "test": 10})
    cfg = MeijuConfig(case=case, text_encoder="hashing", budgets=(0.25, 1.0), seeds=2, rounds=1,
                      threshold_grid=(0.5, 0.9), max_epochs=4, patience=2, hidden=16, tfidf_cs=(1.0,), n_boot=20)
    metrics = run_recipe(REGISTRY.get("meiju"), cfg, out_dir=tmp_path / "run", data_dir=data,
                         cache_dir=tmp_path / "cache", progress=False)
    assert metrics is not None
    models = metrics["models"]
    for name in ("meiju [25%]", "meiju PL=valid-threshold [25%]", "meiju no PL [25%]", "meiju [100%]",
                 "meiju no cross-task [100%]", "majority [25%]", "tfidf-logreg [100%]"):
        assert name in models, name
    test = models["meiju [100%]"]["splits"]["test"]
    for metric in ("weighted_f1_emotion", "weighted_f1_sentiment", "meiju_score", "macro_f1_emotion",
                   "accuracy_sentiment"):
        assert 0.0 <= test[metric]["mean"] <= 1.0 and test[metric]["ci_low"] <= test[metric]["ci_high"]
    assert metrics["bootstrap_unit"] == "dialogue"
    # The keyword signal is planted: the TF-IDF baseline must find it, the majority class cannot.
    lr = models["tfidf-logreg [100%]"]["splits"]["test"]["weighted_f1_emotion"]["mean"]
    maj = models["majority [100%]"]["splits"]["test"]["weighted_f1_emotion"]["mean"]
    assert lr > 0.9 and maj < 0.4
    rows = flat_rows(metrics)
    assert any(r["model"] == "meiju [25%] vs tfidf-logreg [25%]" and "p_adjusted" in r for r in rows)
    assert any(r["model"] == "meiju no PL [25%] vs meiju no PL, no cross-task [25%]" for r in rows)
    assert metrics["pseudo_labels"] and {"precision", "n_pseudo"} <= set(metrics["pseudo_labels"][0])

    run = load_run(tmp_path / "run")
    utterances = pd.DataFrame({"text": ["wonderful great day", "furious hate you", "okay the end"],
                               "dialogue": ["a", "a", "b"], "order": ["0", "1", "0"]})
    path = tmp_path / "utterances.csv"
    utterances.to_csv(path, index=False)
    predictor = run.predictor(cache_dir=tmp_path / "cache")
    out = predictor.predict(predictor.read_input(path))
    assert list(out["id"]) == ["0", "1", "2"]
    assert set(out["emotion"]) <= set(WORDS) | {"disgust", "fear", "surprise"}
    probs = json.loads(out["sentiment_probabilities"].iloc[0])
    assert set(probs) == {"negative", "neutral", "positive"} and sum(probs.values()) == pytest.approx(1, abs=1e-3)


def test_unpaired_case_masks_the_other_corpus_labels(tmp_path: Path) -> None:
    from polymodal.encoders.text import HashingTextEncoder
    from polymodal.recipes.meiju_pipeline import load_case
    from tests.test_meiju_sources import write_mintrec

    data = write_data(tmp_path / "data", {"train": 3, "valid": 2, "test": 2})
    write_mintrec(data, 2)
    cfg = MeijuConfig(case="unpaired")
    case = load_case(cfg, data, HashingTextEncoder(dim=32), None)
    assert case.tasks == ("emotion", "intent") and case.cross_task == ("intent", "emotion")
    frame, labels = case.frames["train"], case.data["train"].labels
    meld = (frame["source"] == "meld").to_numpy()
    assert (labels[meld, 1] == -1).all() and (labels[meld, 0] >= 0).all()
    assert (labels[~meld, 0] == -1).all() and (labels[~meld, 1] >= 0).all()
    assert frame["dialogue"].str.startswith(("meld:", "mintrec2:")).all()
    # Pooled context: a dialogue's first utterance has none; MELD and MIntRec dialogue 0 stay apart.
    first = frame["order"].to_numpy() == frame.groupby("dialogue")["order"].transform("min").to_numpy()
    assert (case.data["train"].masks["context"] == ~first).all()
