"""Paired bootstrap of metric differences between models evaluated on the same test units.

A verdict "A is better than B" must come from the distribution of the *difference* A - B, not
from two separate intervals (which is lopsided and weak). Every model is therefore scored on the
same resamples: the units (trials, patients, windows, images, queries) are drawn once per
resample, optionally within strata (class for binary tasks, cohort for survival) and by cluster
(all visits of one patient move together), and the same draws are applied to every model and
every seed. Within a resample each model's metric is averaged over its own seeds, as in
:func:`~polymodal.evaluation.bootstrap.bootstrap_ci`, so the interval describes how the
seed-mean, the reported number, moves when the test set is redrawn.

Three ways in, one result (:class:`Replicates`, per-model point estimates and (B,) replicates):

* :func:`replicate_metric`: any ``metric(y_true_subset, scores_subset) -> float``. The metrics
  registered in :data:`~polymodal.evaluation.metrics.BINARY_METRICS` evaluate all resamples of a
  chunk in one vectorised call (:func:`~polymodal.evaluation.bootstrap.batched_metric`); any other
  callable runs in a loop. ``y_true`` and the scores are indexed along their first axis only, so a
  (N, L) multilabel matrix or an (N, 2) (time, event) survival array works unchanged.
* :func:`replicate_unit_means`: the metric is the mean of per-unit values (per-window forecast
  losses, per-query ranking metrics, per-patient Brier terms). Seed-averaging and resampling
  reduce to sums, so thousands of resamples cost milliseconds.
* Both accept ``strata`` and ``clusters``.

:func:`model_ci` reads one model's percentile interval off the same replicates (identical to
:func:`~polymodal.evaluation.bootstrap.bootstrap_ci` for the same seed and class strata).

:func:`compare` turns two models' replicates into a difference row; :func:`compare_family` runs a
declared family (every model against the headline model and the best trivial and best learned
baselines) and adjusts its p-values for multiplicity
(:func:`polymodal.evaluation.multiple_testing.adjust_pvalues`).

The bootstrap p-value is two-sided: ``p = min(1, 2 * (1 + min(n_le, n_ge)) / (1 + B))`` where
``n_le`` / ``n_ge`` count the valid resampled differences at or below / at or above 0 and ``B``
counts the valid resamples. The ``+1`` keeps it away from 0: the smallest value it can take is
``2 / (B + 1)`` (:func:`polymodal.evaluation.multiple_testing.bootstrap_p_floor`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from polymodal.evaluation.bootstrap import batched_metric, check_bootstrap_params, stratified_indices
from polymodal.evaluation.multiple_testing import AdjustMethod, adjust_pvalues

__all__ = [
    "Replicates",
    "Verdict",
    "compare",
    "compare_family",
    "draw_resamples",
    "family_pairs",
    "model_ci",
    "replicate_metric",
    "replicate_unit_means",
]

Verdict = Literal["better", "worse", "no detectable difference", "undefined"]
Metric = Callable[[np.ndarray, np.ndarray], float]

# Resamples are processed in chunks so that the (chunk, N, ...) index and value arrays stay near 16 MB.
_MAX_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Replicates:
    """Every model's metric on the full test set and on the same B resamples.

    Attributes:
        point: model -> metric on the full test set, averaged over the model's seeds.
        values: model -> (B,) metric on each resample, averaged over the model's seeds; resample b
            used the same units for every model. NaN where the metric is undefined on a resample.
        n_boot: B.
        higher_is_better: direction of the metric (decides "better" / "worse").
        metric: the metric's name, used in row labels (``"<metric>_diff"``).
        method: how units were drawn, for the report.
    """

    point: dict[str, float]
    values: dict[str, np.ndarray]
    n_boot: int
    higher_is_better: bool
    metric: str
    method: str = field(default="")


# ---------------------------------------------------------------------------------------------
# Drawing units


def _as_labels(name: str, x: object, n: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one entry per unit), got {arr.shape}")
    return arr


def _cluster_table(clusters: np.ndarray, strata: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units ordered by cluster (N,), each cluster's stratum code (C,), and offsets (C+1,) such that
    cluster c's units are ``order[offsets[c]:offsets[c + 1]]``."""
    uniq, codes = np.unique(clusters, return_inverse=True)
    if strata is None:
        cluster_strata = np.zeros(len(uniq), dtype=np.int64)
    else:
        s_codes = np.unique(strata, return_inverse=True)[1]
        cluster_strata = np.full(len(uniq), -1, dtype=np.int64)
        cluster_strata[codes] = s_codes
        if (cluster_strata[codes] != s_codes).any():
            bad = int(np.flatnonzero(cluster_strata[codes] != s_codes)[0])
            raise ValueError(f"cluster {clusters[bad]!r} spans more than one stratum (unit {bad}): a cluster "
                             "must lie in one stratum to be drawn within it")
    order = np.argsort(codes, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uniq)))])
    return order, cluster_strata, offsets


def _strata_draw(rng: np.random.Generator, strata: np.ndarray, n_boot: int) -> np.ndarray:
    """(n_boot, N) draws that keep each stratum's count; the stratum layout is the same in every row."""
    values = np.unique(strata)
    if np.isin(values, (0, 1)).all():
        return stratified_indices(rng, strata, n_boot)  # the binary tasks' class-stratified draws
    parts = []
    for value in values:
        members = np.flatnonzero(strata == value)
        parts.append(members[rng.integers(0, members.size, size=(n_boot, members.size))])
    return np.concatenate(parts, axis=1)


def draw_resamples(rng: np.random.Generator, n_units: int, n_boot: int, strata: object | None = None,
                   clusters: object | None = None) -> list[np.ndarray] | np.ndarray:
    """Bootstrap draws of unit indices, shared by every model that is compared.

    Args:
        rng: the random generator (consumed).
        n_units: N, the number of test units.
        n_boot: number of resamples.
        strata: optional (N,) stratum labels; each resample keeps every stratum's unit count (or,
            with clusters, its cluster count).
        clusters: optional (N,) cluster ids; whole clusters are drawn with replacement, so all
            units of one cluster (visits of a patient, windows of a block) enter a resample together.

    Returns:
        Without clusters an (n_boot, N) int64 array (every row has the same stratum layout).
        With clusters a list of n_boot int64 arrays whose lengths vary with the drawn clusters.
    """
    strata_arr = None if strata is None else _as_labels("strata", strata, n_units)
    if clusters is None:
        if strata_arr is None:
            return rng.integers(0, n_units, size=(n_boot, n_units))
        return _strata_draw(rng, strata_arr, n_boot)
    order, cluster_strata, offsets = _cluster_table(_as_labels("clusters", clusters, n_units), strata_arr)
    drawn = _strata_draw(rng, cluster_strata, n_boot) if strata_arr is not None else \
        rng.integers(0, len(cluster_strata), size=(n_boot, len(cluster_strata)))
    members = [order[offsets[c]:offsets[c + 1]] for c in range(len(cluster_strata))]
    return [np.concatenate([members[c] for c in row]) for row in drawn]


def _chunks(rng: np.random.Generator, n_units: int, n_boot: int, strata: object | None, clusters: object | None,
            unit_size: int) -> Iterator[list[np.ndarray] | np.ndarray]:
    chunk = max(1, min(n_boot, _MAX_CHUNK_ELEMENTS // max(1, n_units * unit_size)))
    for start in range(0, n_boot, chunk):
        yield draw_resamples(rng, n_units, min(chunk, n_boot - start), strata, clusters)


def _method(strata: object | None, clusters: object | None) -> str:
    parts = ["percentile bootstrap of the paired difference, same draws for every model, seeds averaged "
             "within each resample"]
    if strata is not None:
        parts.append("stratified")
    if clusters is not None:
        parts.append("clusters drawn whole")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Replicates


def _seed_stack(model: str, runs: object, n_units: int) -> np.ndarray:
    """(K, N, ...) array of a model's per-seed scores.

    A sequence holds one (N, ...) array per seed; an array is read as (K, N, ...) when its second
    axis has N entries, else as one seed's (N, ...) scores.
    """
    if isinstance(runs, np.ndarray):
        arr = runs if runs.ndim >= 2 and runs.shape[1] == n_units else runs[None]
    else:
        seeds = [np.asarray(r) for r in runs]  # type: ignore[union-attr]
        if not seeds:
            raise ValueError(f"model {model!r} has no seeds")
        if len({s.shape for s in seeds}) != 1:
            raise ValueError(f"model {model!r}: seeds have different shapes {sorted({s.shape for s in seeds})}")
        arr = np.stack(seeds)
    if arr.ndim < 2 or arr.shape[1] != n_units:
        raise ValueError(f"model {model!r}: scores must be K per-seed arrays of {n_units} units "
                         f"(or a (K, {n_units}, ...) array), got shape {arr.shape}")
    return arr


def replicate_metric(metric: Metric, y_true: object, scores: Mapping[str, object], *, n_boot: int = 1000,
                     seed: int = 0, strata: object | None = None, clusters: object | None = None,
                     higher_is_better: bool | None = None, name: str | None = None) -> Replicates:
    """Every model's seed-mean metric on the full test set and on the same bootstrap resamples.

    For a registered binary metric pass ``strata=y_true`` to keep the class counts (as
    :func:`~polymodal.evaluation.bootstrap.bootstrap_ci` does); its vectorised kernel is then used.
    A threshold metric (F1, ...) needs each seed's 0/1 predictions at its validation threshold as
    the "scores".

    Args:
        metric: ``metric(y_true_subset, scores_subset) -> float``; a registered
            :class:`~polymodal.evaluation.metrics.MetricSpec` brings its name and direction.
        y_true: (N, ...) targets, indexed along the first axis (labels, a label matrix, (time, event)).
        scores: model -> its K seeds' (N, ...) scores (a sequence of arrays or a (K, N, ...) array;
            one (N,) array counts as one seed). Models may have different K.
        n_boot: B resamples.
        seed: seed of the resampling generator; the same seed gives the same draws.
        strata: optional (N,) stratum labels (see :func:`draw_resamples`).
        clusters: optional (N,) cluster ids (see :func:`draw_resamples`); then every resample is
            evaluated in a loop.
        higher_is_better: direction; taken from the metric if it has ``higher_is_better``.
        name: metric name for row labels; taken from the metric's ``name`` or ``__name__``.

    Returns:
        :class:`Replicates` with (B,) values per model.
    """
    check_bootstrap_params(n_boot, 0.05)
    if not scores:
        raise ValueError("scores is empty: need at least one model")
    y = np.asarray(y_true)
    n = y.shape[0]
    direction = higher_is_better if higher_is_better is not None else getattr(metric, "higher_is_better", None)
    if direction is None:
        raise ValueError("higher_is_better is needed for a metric without that attribute")
    label = name or getattr(metric, "name", None) or getattr(metric, "__name__", "metric")
    stacks = {m: _seed_stack(m, runs, n) for m, runs in scores.items()}
    if getattr(metric, "uses_threshold", False):
        for m, stack in stacks.items():
            if not np.isin(stack, (0, 1)).all():
                raise ValueError(f"model {m!r}: {label} needs 0/1 predictions (scores >= each seed's validation "
                                 "threshold), got continuous scores")
    point = {m: float(np.mean([metric(y, s) for s in stack])) for m, stack in stacks.items()}

    kernel = batched_metric(metric)
    unit_size = max(int(np.prod(y.shape[1:], dtype=np.int64)),
                    max(int(np.prod(s.shape[2:], dtype=np.int64)) for s in stacks.values()))
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {m: [] for m in stacks}
    for draws in _chunks(rng, n, n_boot, strata, clusters, unit_size):
        if isinstance(draws, np.ndarray):
            y_b = y[draws]  # (b, N, ...)
            for m, stack in stacks.items():
                parts[m].append(np.mean([kernel(y_b, s[draws]) for s in stack], axis=0))
        else:  # clusters: resamples differ in length, so each is evaluated on its own
            for m, stack in stacks.items():
                parts[m].append(np.array([np.mean([metric(y[idx], s[idx]) for s in stack]) for idx in draws]))
    values = {m: np.concatenate(p).astype(np.float64) for m, p in parts.items()}
    return Replicates(point, values, n_boot, bool(direction), str(label), _method(strata, clusters))


def replicate_unit_means(unit_values: Mapping[str, object], *, n_boot: int = 1000, seed: int = 0,
                         strata: object | None = None, clusters: object | None = None,
                         higher_is_better: bool = False, name: str = "loss") -> Replicates:
    """Replicates of a metric that is the mean of per-unit values (fast path).

    Seed-averaging commutes with the mean over units, so each model's seeds are averaged per unit
    first; a resample's metric is then ``sum(drawn values) / (number of drawn units)``; with
    clusters, whole clusters' sums and sizes are drawn (a ratio estimator).

    Args:
        unit_values: model -> K seeds' (N,) per-unit values (a sequence or a (K, N) array; one (N,)
            array is one seed), e.g. per-window MSE or per-query reciprocal rank.
        n_boot, seed, strata, clusters: as in :func:`replicate_metric`.
        higher_is_better: False for losses (the default), True for per-query scores.
        name: metric name for row labels.

    Returns:
        :class:`Replicates`; a model with NaN unit values has NaN replicates.
    """
    check_bootstrap_params(n_boot, 0.05)
    if not unit_values:
        raise ValueError("unit_values is empty: need at least one model")
    n = np.asarray(next(iter(unit_values.values())), dtype=np.float64).shape[-1]  # (N,) or (K, N): N is last
    means = {m: _seed_stack(m, v, n).astype(np.float64).mean(axis=0) for m, v in unit_values.items()}
    for m, v in means.items():
        if v.ndim != 1:
            raise ValueError(f"model {m!r}: unit values must be (N,) per seed, got shape {v.shape[1:]} per unit")
    point = {m: float(v.mean()) for m, v in means.items()}
    rng = np.random.default_rng(seed)
    if clusters is None:
        parts: dict[str, list[np.ndarray]] = {m: [] for m in means}
        for draws in _chunks(rng, n, n_boot, strata, None, 1):
            for m, v in means.items():
                parts[m].append(v[draws].mean(axis=1))  # type: ignore[index]
        values = {m: np.concatenate(p) for m, p in parts.items()}
    else:
        codes = np.unique(_as_labels("clusters", clusters, n), return_inverse=True)[1]
        n_clusters = int(codes.max()) + 1
        sizes = np.bincount(codes, minlength=n_clusters).astype(np.float64)
        sums = {m: np.bincount(codes, weights=v, minlength=n_clusters) for m, v in means.items()}
        strata_arr = None if strata is None else _as_labels("strata", strata, n)
        c_strata = None if strata_arr is None else _cluster_table(codes, strata_arr)[1]
        parts = {m: [] for m in means}
        chunk = max(1, min(n_boot, _MAX_CHUNK_ELEMENTS // n_clusters))
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            drawn = rng.integers(0, n_clusters, size=(b, n_clusters)) if c_strata is None \
                else _strata_draw(rng, c_strata, b)
            size_b = sizes[drawn].sum(axis=1)
            for m in means:
                parts[m].append(sums[m][drawn].sum(axis=1) / size_b)
        values = {m: np.concatenate(p) for m, p in parts.items()}
    return Replicates(point, values, n_boot, higher_is_better, name, _method(strata, clusters))


def model_ci(reps: Replicates, model: str, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile CI of one model's seed-mean from the shared replicates.

    With ``strata=y_true`` and the same ``seed`` this is exactly
    :func:`~polymodal.evaluation.bootstrap.bootstrap_ci` (same draws), so one pass gives both the
    per-model intervals and the paired differences.

    Returns:
        ``(low, high)``; ``(nan, nan)`` if the metric is undefined on every resample.
    """
    check_bootstrap_params(reps.n_boot, alpha)
    values = reps.values[model]
    if np.isnan(values).all():
        return float("nan"), float("nan")
    low, high = np.nanquantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# ---------------------------------------------------------------------------------------------
# Differences


def _verdict(low: float, high: float, higher_is_better: bool) -> Verdict:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined"
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "no detectable difference"


def compare(reps: Replicates, a: str, b: str, alpha: float = 0.05) -> dict[str, Any]:
    """The paired difference ``a - b`` of one metric, from shared resamples.

    Args:
        reps: replicates of both models (same draws).
        a, b: model names.
        alpha: 1 - coverage of the percentile interval.

    Returns:
        ``{"model": "a vs b", "a", "b", "metric": "<metric>_diff", "mean", "ci_low", "ci_high",
        "half_width", "p_value", "p_adjusted", "verdict", "n_boot"}``: ``mean`` is the difference
        of the full-sample seed-means; ``ci_low``/``ci_high`` the percentile interval of the
        resampled differences; ``half_width`` half its width, the smallest difference these data
        could have detected; ``p_value`` the two-sided bootstrap p-value described in the module
        docstring (``p_adjusted`` equals it until a family adjusts it); ``verdict`` "better" /
        "worse" (for ``a``, by the metric's direction) when the interval excludes 0, else
        "no detectable difference" ("undefined" when the metric is undefined on every resample);
        ``n_boot`` the valid resamples.
    """
    check_bootstrap_params(reps.n_boot, alpha)
    for m in (a, b):
        if m not in reps.values:
            raise KeyError(f"no replicates for model {m!r}; have {sorted(reps.values)}")
    diff = reps.values[a] - reps.values[b]
    diff = diff[np.isfinite(diff)]
    mean = reps.point[a] - reps.point[b]
    row: dict[str, Any] = {"model": f"{a} vs {b}", "a": a, "b": b, "metric": f"{reps.metric}_diff",
                           "mean": float(mean)}
    if diff.size == 0:
        nan = float("nan")
        row.update(ci_low=nan, ci_high=nan, half_width=nan, p_value=nan, p_adjusted=nan, verdict="undefined",
                   n_boot=0)
        return row
    low, high = (float(x) for x in np.quantile(diff, [alpha / 2, 1 - alpha / 2]))
    n_le, n_ge = int((diff <= 0).sum()), int((diff >= 0).sum())
    p = min(1.0, 2.0 * (1 + min(n_le, n_ge)) / (1 + diff.size))
    row.update(ci_low=low, ci_high=high, half_width=(high - low) / 2, p_value=p, p_adjusted=p,
               verdict=_verdict(low, high, reps.higher_is_better), n_boot=int(diff.size))
    return row


def _best(reps: Replicates, names: Sequence[str]) -> str | None:
    finite = [m for m in names if np.isfinite(reps.point[m])]
    if not finite:
        return None
    key = (lambda m: reps.point[m]) if reps.higher_is_better else (lambda m: -reps.point[m])
    return max(finite, key=key)


def family_pairs(models: Sequence[str], headline: str, references: Sequence[str | None]) -> list[tuple[str, str]]:
    """The comparisons of a family: headline vs every other model, every model vs each reference.

    Unordered duplicates are dropped (headline vs a reference appears once, headline first).
    """
    pairs: list[tuple[str, str]] = [(headline, m) for m in models if m != headline]
    seen = {frozenset(p) for p in pairs}
    for ref in references:
        if ref is None:
            continue
        for m in models:
            if m != ref and frozenset((m, ref)) not in seen:
                pairs.append((m, ref))
                seen.add(frozenset((m, ref)))
    return pairs


def compare_family(reps: Replicates, headline: str, *, trivial: Sequence[str] = (), learned: Sequence[str] = (),
                   best_trivial: str | None = None, best_learned: str | None = None, alpha: float = 0.05,
                   adjust: AdjustMethod = "holm") -> list[dict[str, Any]]:
    """One declared family of paired comparisons, p-values adjusted within it.

    The family is: the headline model against every other model, and every model against the
    best trivial baseline and the best learned baseline. "Best" is given by the caller (chosen on
    validation) or, if not given, is the baseline with the best full-sample point estimate on the
    evaluated split; picking the strongest competitor after seeing it can only make the headline's
    claim harder, never easier.

    Args:
        reps: replicates of every model in the family (same draws).
        headline: the recipe's model.
        trivial: names of the trivial baselines (prior, last value, ...).
        learned: names of the learned baselines (TF-IDF logistic regression, NLinear, ...).
        best_trivial, best_learned: override the choice of the reference baselines.
        alpha: 1 - coverage of every interval.
        adjust: ``"holm"`` (family-wise error, the default) or ``"bh"`` (false discovery rate).

    Returns:
        Rows of :func:`compare` in family order, ``p_adjusted`` filled by the adjustment.
    """
    models = list(reps.values)
    for m in (headline, *trivial, *learned):
        if m not in reps.values:
            raise KeyError(f"model {m!r} is not among the replicates {models}")
    ref_trivial = best_trivial if best_trivial is not None else _best(reps, list(trivial))
    ref_learned = best_learned if best_learned is not None else _best(reps, list(learned))
    rows = [compare(reps, a, b, alpha) for a, b in family_pairs(models, headline, [ref_trivial, ref_learned])]
    adjusted = adjust_pvalues([r["p_value"] for r in rows], method=adjust)
    for row, p_adj in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = float(p_adj)
    return rows
