"""Medication (multi-label set) recipes on the one runner: repeated patient-level cross-validation.

For every cohort and repeat, patients are shuffled into K folds; fold k is the test fold, fold k+1
the validation fold (early stopping and the set threshold), the rest train. Per (cohort, repeat,
fold) the code and label vocabularies and SafeDrug's frequency filters are fitted on the training
patients only (:func:`polymodal.tasks.medication.make_problem`), and so are the DDI controller's
target and GAMENet's co-prescription graph.

Jobs (the unit of resume): one per (cohort, repeat, fold, neural model, seed), and one per (cohort,
repeat, fold) for the non-neural baselines, keyed ``COHORT/rR/fF/MODEL/seed_S`` and
``COHORT/rR/fF/baselines``. Each returns its test visits' rows (:class:`~polymodal.tasks.multilabel.MultilabelTask`
columns); the seed column holds ``1000 * repeat + seed``, the training seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.data.sources.mimic import MimicCohort
from polymodal.runs.problem import Job, JobContext, JobResult, predictions_frame
from polymodal.tasks.medication import MedicationProblem, MedicationViews, collate, make_problem
from polymodal.tasks.multilabel import SCORE_DECIMALS, choose_set_threshold, ddi_pair_counts, join_scores

__all__ = ["Fold", "MedicationCohort", "MedicationSpec", "medication_jobs", "patient_folds", "true_ddi_rate"]

ModelFactory = Callable[["Fold", int], tuple[torch.nn.Module, torch.nn.Module]]


def patient_folds(groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """K (train, valid, test) index triples over visits, split by patient (a patient is in one part only).

    Args:
        groups: (N,) patient id of each visit. k: folds (>= 3). seed: shuffles the patients.
    """
    patients = np.unique(groups)
    if len(patients) < k:
        raise ValueError(f"{len(patients)} patients cannot make {k} patient-level folds")
    order = np.random.default_rng(seed).permutation(patients)
    fold_of = {p: i % k for i, p in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    out = []
    for i in range(k):
        test, valid = np.flatnonzero(fold == i), np.flatnonzero(fold == (i + 1) % k)
        train = np.flatnonzero((fold != i) & (fold != (i + 1) % k))
        out.append((train, valid, test))
    return out


def true_ddi_rate(problem: MedicationProblem, idx: np.ndarray) -> float:
    """The DDI rate of the true medication sets of visits ``idx`` (pairs pooled over visits)."""
    dd, pairs = ddi_pair_counts(problem.targets[idx].astype(int), problem.ddi)
    return float(dd.sum() / pairs.sum()) if pairs.sum() else 0.0


@dataclass
class Fold:
    """One (cohort, repeat, fold): the problem indexed with this fold's training vocabularies, and its parts."""

    cohort: str
    repeat: int
    fold: int
    problem: MedicationProblem
    views: MedicationViews
    code_text: np.ndarray  # (C + 1, T): row 0 pads, row 1 is the unknown code
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


@dataclass
class MedicationSpec:
    """What a medication recipe contributes; the rest (folds, baselines, rows) is shared.

    Attributes:
        name: the recipe model's name (the headline).
        build_model: ``(fold, seed) -> (model, objective)``.
        save_model: ``(model, fold, threshold, directory)``: what ``polymodal predict`` needs; None: nothing.
        save_seeds: the seeds whose recipe model is saved.
        droppable: modalities the recipe model can be scored without (robustness rows).
        text_embed: ``list[str] -> (N, T)``; fingerprint: ``list[str] -> (N, F)`` for SMILES (cached).
        dim, target_ddi, kp: the literature baselines' width and the DDI controller's target (None:
            the training visits' own rate) and gain.
    """

    name: str
    build_model: ModelFactory
    text_embed: Callable[[list[str]], np.ndarray]
    fingerprint: Callable[[list[str]], np.ndarray]
    save_model: Callable[[torch.nn.Module, Fold, float, Path], None] | None = None
    save_seeds: Sequence[int] = (0,)
    droppable: Sequence[str] = ()
    seeds: int = 3
    folds: int = 5
    repeats: int = 1
    max_visits: int = 10
    top_meds: int | None = 300
    top_diagnoses: int | None = 2000
    baselines: bool = True
    robustness: bool = True
    dim: int = 64
    target_ddi: float | None = None
    kp: float = 0.05


@dataclass
class MedicationCohort:
    """A cohort and its folds (each fold's vocabularies and views are built on first use, then kept)."""

    name: str
    cohort: MimicCohort
    vocab: Any
    history: bool
    spec: MedicationSpec
    _folds: dict[tuple[int, int], Fold] = field(default_factory=dict, repr=False)

    def splits(self, repeat: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        groups = np.array([s for s in sorted(self.cohort.patients) for _ in self.cohort.patients[s]])
        return patient_folds(groups, self.spec.folds, seed=repeat)

    def fold(self, repeat: int, k: int) -> Fold:
        if (repeat, k) not in self._folds:
            train, valid, test = self.splits(repeat)[k]
            subjects = sorted(self.cohort.patients)
            groups = [s for s in subjects for _ in self.cohort.patients[s]]
            problem = make_problem(self.cohort, self.vocab, history=self.history, max_visits=self.spec.max_visits,
                                   train_subjects={groups[i] for i in train}, top_meds=self.spec.top_meds,
                                   top_diagnoses=self.spec.top_diagnoses)
            views = _views(problem.labels, self.vocab, self.spec)
            text = np.asarray(self.spec.text_embed(problem.code_text), dtype=np.float32)
            code_text = np.vstack([np.zeros((1, text.shape[1]), np.float32), text])
            self._folds[(repeat, k)] = Fold(self.name, repeat, k, problem, views, code_text, train, valid, test)
        return self._folds[(repeat, k)]

    def vocabulary_facts(self) -> list[dict[str, Any]]:
        """Per fold: vocabulary sizes and how many test visits hold a medication outside the labels."""
        out = []
        for repeat in range(self.spec.repeats):
            for k in range(self.spec.folds):
                f = self.fold(repeat, k)
                labels = set(f.problem.labels)
                outside = [i for i in f.test if set(f.problem.samples[i].true_set) - labels]
                out.append({"repeat": repeat, "fold": k, "codes": len(f.problem.codes) - 1,
                            "labels": len(labels), "test_visits": len(f.test),
                            "test_visits_with_unseen_medication": len(outside)})
        return out


def _views(labels: list[str], vocab: Any, spec: MedicationSpec) -> MedicationViews:
    from polymodal.tasks.medication import medication_views

    return medication_views(labels, vocab, spec.text_embed, spec.fingerprint)


def medication_jobs(cohorts: Sequence[MedicationCohort], spec: MedicationSpec) -> list[Job]:
    """Every job of every cohort, repeat and fold, in report order (recipe, literature, simple baselines)."""
    neural = [spec.name, *(("safedrug", "gamenet", "retain") if spec.baselines else ())]
    jobs = []
    for c in cohorts:
        for repeat in range(spec.repeats):
            for k in range(spec.folds):
                base = f"{c.name}/r{repeat}/f{k}"
                for model in neural:
                    for seed in range(spec.seeds):
                        jobs.append(Job(f"{base}/{model}/seed_{seed}", partial(_neural, c, repeat, k, model, seed),
                                        seed=1000 * repeat + seed, parallel=False,
                                        label=f"{model} [{c.name}] repeat {repeat} fold {k} seed {seed}"))
                if spec.baselines:
                    jobs.append(Job(f"{base}/baselines", partial(_simple, c, repeat, k), seed=1000 * repeat,
                                    parallel=False, label=f"baselines [{c.name}] repeat {repeat} fold {k}"))
    return jobs


# ---------------------------------------------------------------------------------------------- rows


def _rows(f: Fold, model: str, kind: str, seed: int, scores: np.ndarray, threshold: float,
          condition: str = "none") -> pd.DataFrame:
    samples = [f.problem.samples[i] for i in f.test]
    labels = np.asarray(f.problem.labels)
    rounded = np.round(np.asarray(scores, dtype=np.float64), SCORE_DECIMALS)  # (n, L): what the CSV keeps
    return predictions_frame(
        model=model, kind=kind, split="test", ids=[s.hadm_id for s in samples], selection="valid", fold=f.fold,
        seed=1000 * f.repeat + seed, condition=condition, subset=f.cohort,
        patient=[str(s.subject_id) for s in samples], threshold=float(threshold), labels=";".join(labels),
        true_set=[";".join(s.true_set) for s in samples],
        predicted_set=[";".join(labels[row >= threshold]) for row in rounded],
        scores=[join_scores(row) for row in rounded])


def _threshold(f: Fold, valid_scores: np.ndarray) -> float:
    # chosen on the rounded scores: exactly the values predictions.csv keeps
    return choose_set_threshold(f.problem.targets[f.valid], np.round(valid_scores, SCORE_DECIMALS))


def _predict(model: torch.nn.Module, f: Fold, idx: np.ndarray, drop: frozenset[str] = frozenset()) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        batch, _ = collate([f.problem.samples[i] for i in idx])
        return torch.sigmoid(model(batch, drop)[0]).numpy().astype(np.float64)  # (n, L)


def _literature(name: str, f: Fold, spec: MedicationSpec, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    from polymodal.baselines.medication import GameNet, Retain
    from polymodal.baselines.safedrug import SafeDrug
    from polymodal.objectives.ddi import MedicationObjective

    problem = f.problem
    ddi = torch.as_tensor(problem.ddi)
    n_codes, n_labels = len(problem.codes) + 1, len(problem.labels)
    ddi_kw = {"target": spec.target_ddi if spec.target_ddi is not None else true_ddi_rate(problem, f.train),
              "kp": spec.kp}
    torch.manual_seed(seed)
    if name == "retain":
        return Retain(n_codes, n_labels, spec.dim), MedicationObjective(ddi, use_ddi=False)
    if name == "safedrug":
        if f.views.graphs is None:
            raise ValueError("SafeDrug needs the medications' molecule graphs (medication_views builds them)")
        return SafeDrug(n_codes, f.views.graphs, f.views.substructures, spec.dim), MedicationObjective(ddi, **ddi_kw)
    y = problem.targets[f.train]
    ehr = ((y.T @ y) > 0).astype(np.float32)  # co-prescribed in a training visit
    np.fill_diagonal(ehr, 0.0)
    return GameNet(n_codes, ehr, problem.ddi, spec.dim), MedicationObjective(ddi, **ddi_kw)


def _neural(c: MedicationCohort, repeat: int, k: int, model_name: str, seed: int, ctx: JobContext) -> JobResult:
    from polymodal.training.multilabel_system import fit_medication_model

    spec, f = c.spec, c.fold(repeat, k)
    if ctx.train.threads:
        torch.set_num_threads(ctx.train.threads)
    train_seed = 1000 * repeat + seed
    if model_name == spec.name:
        model, objective = spec.build_model(f, train_seed)
        kind = "recipe"
    else:
        model, objective = _literature(model_name, f, spec, train_seed)
        kind = "baseline"
    samples = f.problem.samples
    info = fit_medication_model(model, objective, [samples[i] for i in f.train], [samples[i] for i in f.valid],
                                train=ctx.train, seed=train_seed)
    threshold = _threshold(f, _predict(model, f, f.valid))
    frames = [_rows(f, model_name, kind, seed, _predict(model, f, f.test), threshold)]
    if kind == "recipe" and spec.robustness:
        for m in spec.droppable:
            frames.append(_rows(f, model_name, kind, seed, _predict(model, f, f.test, frozenset({m})), threshold,
                                condition=f"drop:{m}"))
    if kind == "recipe" and spec.save_model is not None and seed in spec.save_seeds:
        spec.save_model(model, f, threshold, Path(ctx.dir))
    return JobResult(pd.concat(frames, ignore_index=True), info={**info, "threshold": threshold})


def _previous_visit(f: Fold, idx: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """The previous visit's medications (training frequencies for a first visit); frequencies break ties."""
    rows = [f.problem.samples[i].previous_target for i in idx]
    return np.stack([(r if r is not None else freq) + 1e-6 * freq for r in rows])  # (n, L)


def _simple(c: MedicationCohort, repeat: int, k: int, ctx: JobContext) -> JobResult:
    """The non-neural baselines on the fold's training visits (bag of the current visit's codes)."""
    from polymodal.baselines.medication import MostFrequentSet, NearestVisits, PerLabelLogistic

    f = c.fold(repeat, k)
    y = f.problem.targets
    x = {part: f.problem.multi_hot(getattr(f, part)) for part in ("train", "valid", "test")}
    frames = []
    for name, kind, est in (("per-label-logistic", "baseline", PerLabelLogistic(C=1.0)),
                            ("nearest-visits", "baseline", NearestVisits(k=5)),
                            ("most-frequent", "trivial", MostFrequentSet())):
        est.fit(x["train"], y[f.train])
        frames.append(_rows(f, name, kind, 0, est.predict_proba(x["test"]),
                            _threshold(f, est.predict_proba(x["valid"]))))
    if c.history:
        freq = y[f.train].mean(axis=0)
        frames.append(_rows(f, "previous-visit", "baseline", 0, _previous_visit(f, f.test, freq),
                            _threshold(f, _previous_visit(f, f.valid, freq))))
    return JobResult(pd.concat(frames, ignore_index=True))
