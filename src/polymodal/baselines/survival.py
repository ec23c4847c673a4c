"""Survival baselines with the scikit-learn estimator API: Kaplan-Meier (trivial) and a penalised Cox.

``y`` is either a scikit-survival structured array (``Surv.from_arrays(event, time)``: one boolean
field, one float field) or an (N, 2) array of ``[time, event]`` rows (the collator's target layout).
``predict(X)`` returns (N,) risk scores, higher meaning an earlier event, ready for
:func:`polymodal.tasks.survival.evaluate_survival`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from polymodal.baselines.trivial import n_samples
from polymodal.tasks.survival import check_survival_inputs, survival_metrics

__all__ = ["CoxBaseline", "KaplanMeierBaseline", "survival_targets"]


def survival_targets(y: object, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """``(time float64 (N,), event bool (N,))`` from a structured array or an (N, 2) ``[time, event]`` array."""
    arr = np.asarray(y)
    if arr.dtype.names:
        if len(arr.dtype.names) != 2:
            raise ValueError(f"{name}: a structured survival array needs 2 fields, got {arr.dtype.names}")
        bool_fields = [f for f in arr.dtype.names if arr.dtype[f] == np.bool_]
        if len(bool_fields) != 1:
            raise ValueError(f"{name}: exactly one boolean (event) field expected, got {arr.dtype.names}")
        time_field = next(f for f in arr.dtype.names if f != bool_fields[0])
        t, e, _ = check_survival_inputs(arr[time_field], arr[bool_fields[0]])
        return t, e
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be a structured (event, time) array or (N, 2) [time, event], got {arr.shape}")
    t, e, _ = check_survival_inputs(arr[:, 0], arr[:, 1])
    return t, e


class KaplanMeierBaseline(BaseEstimator):
    """The trivial floor: one Kaplan-Meier curve for everyone, hence one constant risk.

    A constant risk ties every comparable pair, so its C-index is exactly 0.5; a model that cannot
    beat it has learned no ranking.

    Attributes:
        km_: the fitted ``lifelines.KaplanMeierFitter`` (its curve is the cohort's survival).
        median_survival_time_: median of the fitted curve (inf if it never falls below 0.5).
    """

    def fit(self, X: object, y: object) -> KaplanMeierBaseline:
        """Fit the curve on the training outcomes.

        Args:
            X: (N, ...) anything with N samples; ignored apart from its length.
            y: (N,) structured or (N, 2) ``[time, event]`` training outcomes.
        """
        t, e = survival_targets(y)
        if n_samples(X) != t.size:
            raise ValueError(f"X has {n_samples(X)} samples but y has {t.size}")
        self.km_ = KaplanMeierFitter().fit(t, event_observed=e)
        self.median_survival_time_ = float(self.km_.median_survival_time_)
        return self

    def predict(self, X: object) -> np.ndarray:
        """(N,) zeros: the same risk for every sample."""
        check_is_fitted(self, "km_")
        return np.zeros(n_samples(X), dtype=np.float64)


class CoxBaseline(BaseEstimator):
    """Cox proportional hazards (lifelines ``CoxPHFitter``), L2 penalty chosen on validation C-index.

    Args:
        penalizer: one penalty, or several to choose from on the validation C-index (ties go to the
            larger penalty, the simpler model). Needs ``X_valid``/``y_valid`` in ``fit`` when more
            than one is given.
        l1_ratio: elastic-net mix passed to lifelines (0 = ridge).
        columns: the columns of a DataFrame ``X`` to use (None = all). An array ``X`` gets columns
            ``x0, x1, ...``.

    Attributes:
        best_penalizer_: the penalty kept.
        validation_c_index_: penalty -> validation C-index (NaN if that fit did not converge).
        model_: the fitted ``CoxPHFitter`` (on train only, with ``best_penalizer_``).
        columns_: the feature columns used.
    """

    def __init__(
        self,
        penalizer: float | Sequence[float] = (0.01, 0.1, 1.0, 10.0),
        l1_ratio: float = 0.0,
        columns: Sequence[str] | None = None,
    ) -> None:
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.columns = columns

    def _frame(self, X: object, columns: Sequence[str] | None = None) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            frame = X
        else:
            arr = np.asarray(X, dtype=np.float64)
            if arr.ndim != 2:
                raise ValueError(f"X must be 2-D, got shape {arr.shape}")
            frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
        cols = list(columns if columns is not None else self.columns if self.columns is not None else frame.columns)
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"X lacks column(s) {missing}")
        out = frame[cols].astype(np.float64).reset_index(drop=True)
        if not np.isfinite(out.to_numpy()).all():
            raise ValueError("X contains NaN or inf")
        return out

    def fit(self, X_train: object, y_train: object, X_valid: object = None, y_valid: object = None) -> CoxBaseline:
        """Fit one Cox model per penalty on train; keep the one with the best validation C-index.

        Args:
            X_train: (N_train, F) DataFrame or array.
            y_train: (N_train,) structured or (N_train, 2) ``[time, event]``.
            X_valid: (N_valid, F), needed when several penalties are given.
            y_valid: (N_valid,) validation outcomes.
        """
        grid = [float(self.penalizer)] if np.isscalar(self.penalizer) else [float(p) for p in self.penalizer]
        if not grid or min(grid) < 0:
            raise ValueError(f"penalizer must be a non-negative float or a non-empty sequence, got {self.penalizer!r}")
        if len(grid) > 1 and (X_valid is None or y_valid is None):
            raise ValueError("several penalties need X_valid and y_valid to choose between them")
        train = self._frame(X_train)
        self.columns_ = list(train.columns)
        t, e = survival_targets(y_train, "y_train")
        if len(train) != t.size:
            raise ValueError(f"X_train has {len(train)} rows but y_train has {t.size}")
        data = train.assign(_time=t, _event=e.astype(np.float64))
        valid = None
        if X_valid is not None and y_valid is not None:
            valid = self._frame(X_valid, self.columns_)
            tv, ev = survival_targets(y_valid, "y_valid")
            if len(valid) != tv.size:
                raise ValueError(f"X_valid has {len(valid)} rows but y_valid has {tv.size}")

        self.validation_c_index_: dict[float, float] = {}
        best: tuple[float, float, CoxPHFitter] | None = None
        for p in sorted(grid, reverse=True):  # strongest penalty first, so ties keep it
            model = CoxPHFitter(penalizer=p, l1_ratio=self.l1_ratio)
            try:
                # lifelines warns about collinear one-hot columns; the penalty is what handles them
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(data, duration_col="_time", event_col="_event")
            except ConvergenceError:
                self.validation_c_index_[p] = float("nan")
                continue
            score = survival_metrics(tv, ev, self._risk(model, valid))["c_index"] if valid is not None else 0.0
            self.validation_c_index_[p] = score
            if best is None or score > best[1]:
                best = (p, score, model)
        if best is None:
            raise RuntimeError(f"CoxPHFitter did not converge for any penalizer in {grid}")
        self.best_penalizer_, _, self.model_ = best
        return self

    @staticmethod
    def _risk(model: CoxPHFitter, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_partial_hazard(frame), dtype=np.float64).reshape(-1)

    def predict(self, X: object) -> np.ndarray:
        """(N,) partial hazards ``exp(x . beta)``: the risk scores."""
        check_is_fitted(self, "model_")
        return self._risk(self.model_, self._frame(X, self.columns_))
