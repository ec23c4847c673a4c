"""meiju building blocks: metrics (hand-computed), masked loss, cross-task attention, learning, pseudo-labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.baselines.multitask_text import fit_majority, fit_tfidf_logreg, proba_full
from polymodal.errors import ConfigError
from polymodal.evaluation.multitask import harmonic_score, multitask_metrics, task_metrics
from polymodal.recipes.meiju_pipeline import budget_label, check_modalities, label_budget
from polymodal.training.multitask import FitSettings, MultiTaskData, fit_multitask, masked_loss, predict_proba
from polymodal.training.multitask_model import MultiTaskClassifier
from polymodal.training.pseudo_label import pseudo_label_precision, select_pseudo_labels, self_train


def test_task_metrics_hand_computed_and_missing_ignored() -> None:
    # Labelled rows: t = [0, 0, 0, 1], p = [0, 0, 1, 1]; the -1 row must be ignored.
    out = task_metrics(np.array([0, 0, 0, 1, -1]), np.array([0, 0, 1, 1, 1]), n_classes=2)
    # class 0: P 1, R 2/3, F1 0.8 (support 3); class 1: P 1/2, R 1, F1 2/3 (support 1)
    assert out["weighted_f1"] == pytest.approx((3 * 0.8 + 2 / 3) / 4)
    assert out["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["n"] == 4
    assert np.isnan(task_metrics(np.array([-1, -1]), np.array([0, 1]), 2)["weighted_f1"])


def test_meiju_score_is_harmonic_mean_as_in_challenge_baseline() -> None:
    # MEIJU2025 baseline README, track 1 English: emotion 0.3174, intent 0.3944 -> joint 0.3516.
    assert harmonic_score([0.3174, 0.3944]) == pytest.approx(0.3516, abs=2e-4)
    assert harmonic_score([0.5, 0.0]) == 0.0
    y = np.array([[0, -1], [1, -1], [-1, 2], [-1, 0]])
    p = np.array([[0, 1], [1, 1], [2, 2], [1, 1]])
    m = multitask_metrics(y, p, ("emotion", "intent"), (2, 3))
    assert m["weighted_f1_emotion"] == 1.0 and m["n_emotion"] == 2
    assert m["weighted_f1_intent"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)  # intent: t=[2,0], p=[2,1]
    assert m["meiju_score"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def test_masked_loss_uses_only_labelled_rows() -> None:
    torch.manual_seed(0)
    logits = {"a": torch.randn(4, 3, requires_grad=True), "b": torch.randn(4, 2, requires_grad=True)}
    labels = torch.tensor([[0, -1], [2, 1], [-1, -1], [1, 0]])
    loss = masked_loss(logits, labels, ("a", "b"))
    ce = torch.nn.functional.cross_entropy
    expected = ce(logits["a"][[0, 1, 3]], torch.tensor([0, 2, 1])) + ce(logits["b"][[1, 3]], torch.tensor([1, 0]))
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert torch.all(logits["a"].grad[2] == 0) and torch.all(logits["b"].grad[[0, 2]] == 0)


def _model(cross: bool) -> MultiTaskClassifier:
    torch.manual_seed(0)
    return MultiTaskClassifier({"text": 6, "context": 6}, {"emotion": 3, "sentiment": 2}, hidden=8, dropout=0.0,
                               cross_task=("sentiment", "emotion") if cross else None, heads=2).eval()


def test_cross_task_attention_lets_helper_reach_target_only_when_on() -> None:
    x = {"text": torch.randn(5, 6), "context": torch.randn(5, 6)}
    masks = {"context": torch.tensor([True, False, True, True, False])}
    for cross in (True, False):
        model = _model(cross)
        before = model(x, masks)
        with torch.no_grad():
            model.task_proj["sentiment"][0].weight.add_(1.0)  # change only the helper's task vector
        after = model(x, masks)
        assert after["emotion"].shape == (5, 3) and after["sentiment"].shape == (5, 2)
        changed = not torch.allclose(before["emotion"], after["emotion"])
        assert changed is cross


def test_missing_modality_mask_ignores_its_values() -> None:
    model = _model(True)
    x = {"text": torch.randn(3, 6), "context": torch.randn(3, 6)}
    masks = {"context": torch.zeros(3, dtype=torch.bool)}
    out1 = model(x, masks)["emotion"]
    out2 = model({"text": x["text"], "context": torch.randn(3, 6) * 100}, masks)["emotion"]
    assert torch.allclose(out1, out2)


def _planted(n: int, seed: int, missing_b: float = 0.5) -> MultiTaskData:
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(n, 16)).astype(np.float32)
    ctx = rng.normal(size=(n, 16)).astype(np.float32)
    a = (text[:, 0] > 0).astype(int) + (ctx[:, 1] > 0.5)  # emotion-like: 3 classes, uses the context too
    b = (text[:, 2] > 0).astype(int)
    labels = np.stack([a, b], axis=1)
    labels[rng.random(n) < missing_b, 1] = -1
    return MultiTaskData({"text": text, "context": ctx}, {"text": np.ones(n, bool), "context": np.ones(n, bool)},
                         labels)


def test_learning_finds_planted_signal(one_torch_thread: None) -> None:
    train, valid, test = _planted(600, 0), _planted(200, 1), _planted(300, 2)
    settings = FitSettings(hidden=32, dropout=0.0, heads=2, lr=3e-3, batch_size=64, max_epochs=30, patience=5)
    model, info = fit_multitask(train, valid, {"a": 3, "b": 2}, ("b", "a"), settings, seed=0)
    probs = predict_proba(model, test)
    pred = np.stack([probs["a"].argmax(1), probs["b"].argmax(1)], axis=1)
    m = multitask_metrics(test.labels, pred, ("a", "b"), (3, 2))
    assert m["accuracy_a"] > 0.7 and m["accuracy_b"] > 0.85  # majority class: ~0.45 and ~0.5
    assert info["valid_meiju_score"] > 0.7


def test_select_pseudo_labels_and_precision() -> None:
    probs = {"a": np.array([[0.995, 0.005], [0.6, 0.4], [0.001, 0.999], [0.999, 0.001]]),
             "b": np.array([[0.2, 0.8], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])}
    applicable = np.array([[True, False], [True, False], [True, False], [False, True]])
    pseudo = select_pseudo_labels(probs, ("a", "b"), applicable, threshold=0.99)
    assert pseudo.tolist() == [[0, -1], [-1, -1], [1, -1], [-1, -1]]
    hidden = np.array([[0, -1], [1, -1], [0, -1], [-1, 1]])
    n, precision = pseudo_label_precision(pseudo, hidden)
    assert n.tolist() == [2, 0] and precision[0] == 0.5 and np.isnan(precision[1])


def test_self_train_grid_picks_best_validation_threshold() -> None:
    labeled = _planted(20, 0, missing_b=1.0)
    labeled.labels[:, 1] = -1
    unlabeled = _planted(10, 1, missing_b=1.0)
    calls: list[int] = []

    def fit(data: MultiTaskData) -> int:
        calls.append(len(data))
        return len(data)  # "model" = training-set size

    def predict(model: int, data: MultiTaskData) -> dict[str, np.ndarray]:
        p = np.linspace(0.5, 1.0, len(data))
        return {"a": np.stack([p, 1 - p, np.zeros_like(p)], 1), "b": np.stack([p, 1 - p], 1)}

    # Validation prefers the model trained on the most data, i.e. the lowest threshold.
    applicable = np.ones((10, 2), bool) & np.array([True, False])
    shared: dict = {}
    model, chosen, stats = self_train(fit, predict, lambda m: float(m), labeled, unlabeled, ("a", "b"),
                                      applicable, (0.99, 0.7), rounds=2, start=20, round1=shared)
    assert chosen == 0.7 and len(calls) == 3  # two candidates at round 1, then one
    assert model == 20 + 6  # 6 of the 10 unlabelled samples reach p >= 0.7 on the applicable task
    assert {s.threshold for s in stats if s.round == 1} == {0.99, 0.7}
    assert all(s.threshold == 0.7 for s in stats if s.round == 2)
    # A later fixed-0.99 path reuses the grid's round-1 fit at 0.99: only its round 2 is trained.
    calls.clear()
    self_train(fit, predict, lambda m: float(m), labeled, unlabeled, ("a", "b"), applicable, (0.99,), rounds=2,
               start=20, round1=shared)
    assert len(calls) == 1


def test_label_budget_stratified_per_corpus() -> None:
    labels = np.full((300, 2), -1)
    labels[:200, 0] = np.repeat([0, 1], 100)
    labels[200:, 1] = np.repeat([0, 1, 2, 3], 25)
    keep = label_budget(labels, labels != -1, 0.2, seed=3)
    assert keep[:200].sum() == 40 and keep[200:].sum() == 20
    assert np.bincount(labels[:200][keep[:200], 0]).tolist() == [20, 20]
    assert np.bincount(labels[200:][keep[200:], 1]).tolist() == [5, 5, 5, 5]
    assert not np.array_equal(keep, label_budget(labels, labels != -1, 0.2, seed=4))
    assert label_budget(labels, labels != -1, 1.0, seed=0).all()
    assert budget_label(0.05) == "5%" and budget_label(1.0) == "100%" and budget_label(0.125) == "12.5%"


def test_modalities_audio_video_absent() -> None:
    assert check_modalities(("text", "context")) == ("context", "text")
    with pytest.raises(ConfigError, match="no audio or video"):
        check_modalities(("text", "audio"))


def test_text_baselines_learn_keywords() -> None:
    words = ["great", "awful", "fine"]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    texts = [f"it was {words[k]} today {rng.integers(100)}" for k in y]
    y_missing = y.copy()
    y_missing[:10] = -1
    pipe, c = fit_tfidf_logreg(texts[:80], y_missing[:80], texts[80:], y[80:], cs=(0.1, 10.0))
    assert (proba_full(pipe, texts[80:], 3).argmax(1) == y[80:]).mean() == 1.0
    assert c in (0.1, 10.0)
    majority = fit_majority(np.array([2, 2, 1, -1, -1, -1]))
    assert proba_full(majority, ["x", "y"], 3).tolist() == [[0, 0, 1], [0, 0, 1]]


def test_bootstrap_kernel_matches_sklearn_on_resamples() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    from polymodal.evaluation.multitask import cluster_weights, weighted_task_metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    p = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))
    clusters = np.repeat(np.arange(15), 4)
    w = cluster_weights(np.random.default_rng(1), clusters, 5)  # (5, 60)
    assert w.shape == (5, 60) and np.all(w.reshape(5, 15, 4) == w.reshape(5, 15, 4)[:, :, :1])  # whole clusters
    got = weighted_task_metrics(y, p, 4, w)
    for b in range(5):
        rows = np.repeat(np.arange(60), w[b].astype(int))
        assert got["weighted_f1"][b] == pytest.approx(f1_score(y[rows], p[rows], average="weighted"))
        assert got["macro_f1"][b] == pytest.approx(f1_score(y[rows], p[rows], average="macro"))
        assert got["accuracy"][b] == pytest.approx(accuracy_score(y[rows], p[rows]))


def test_multitask_task_metrics_cis_and_missing_rows_after_csv_round_trip(tmp_path) -> None:
    import pandas as pd

    from polymodal.tasks.multitask import MultiTaskClassification, budget_of

    rows = []
    for model, kind, flip in (("meiju [10%]", "recipe", 0), ("majority [10%]", "trivial", 1)):
        for seed in (0, 1):
            for split in ("valid", "test"):
                for i in range(8):
                    emo = ["joy", "anger"][i % 2]
                    rows.append({"model": model, "kind": kind, "selection": "valid", "fold": 0, "seed": seed,
                                 "condition": "none", "subset": "all", "split": split, "id": f"m{i}",
                                 "dialogue": f"d{i // 2}", "task": "emotion", "y_true": emo,
                                 "y_pred": "joy" if flip else emo})
                    # intent: not labelled on MELD rows (empty y_true), still predicted
                    rows.append({**rows[-1], "task": "intent", "y_true": "", "y_pred": "Inform"})
                for i in range(4):
                    rows.append({"model": model, "kind": kind, "selection": "valid", "fold": 0, "seed": seed,
                                 "condition": "none", "subset": "all", "split": split, "id": f"x{i}",
                                 "dialogue": "", "task": "intent", "y_true": ["Inform", "Thank"][i % 2],
                                 "y_pred": ["Inform", "Thank"][i % 2]})
    path = tmp_path / "p.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    frame = pd.read_csv(path)
    task = MultiTaskClassification(classes={"emotion": ["anger", "joy"], "intent": ["Inform", "Thank"]},
                                   headline="meiju", selections=("valid",), n_boot=50)
    metrics = task.evaluate(frame)
    head = metrics["models"]["meiju [10%]"]["splits"]["test"]
    assert head["weighted_f1_emotion"]["mean"] == 1.0 and head["meiju_score"]["mean"] == 1.0
    maj = metrics["models"]["majority [10%]"]["splits"]["test"]
    # majority predicts "joy" on 4 joy + 4 anger: F1(joy) = 2/3, F1(anger) = 0 -> weighted 1/3
    assert maj["weighted_f1_emotion"]["mean"] == pytest.approx(1 / 3)
    assert maj["meiju_score"]["mean"] == pytest.approx(2 * (1 / 3) * 1.0 / (1 / 3 + 1.0))
    assert metrics["models"]["meiju [10%]"]["n"]["test_intent"] == 4  # the 8 unlabelled intent rows are ignored
    (comp,) = metrics["comparisons"]
    assert comp["model"] == "meiju [10%] vs majority [10%]" and comp["mean"] == pytest.approx(1 - 0.5)
    assert comp["ci_low"] <= comp["mean"] <= comp["ci_high"] and "p_adjusted" in comp
    assert budget_of("meiju no PL [25%]") == "25%" and budget_of("x") == ""
