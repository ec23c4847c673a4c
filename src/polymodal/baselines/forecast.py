"""Linear forecasting baselines (DLinear, NLinear), optionally with calendar features.

Both are linear maps of the input window, fitted in closed form with ridge regression
(scikit-learn) instead of by SGD, with the ridge strength chosen on validation MSE. Channels are
independent with shared weights: every channel's windows are samples of one regression.

* NLinear (Zeng et al. 2023): subtract the last input value, regress, add it back.
* DLinear: split the window into a moving-average trend and the remainder, one linear map on
  each (as features of one regression, which is the same model).
* ``calendar=True`` appends sin/cos of the origin's position in the year (and day of week for
  daily data), so the model can learn the season without text.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.linear_model import Ridge


def moving_average(x: np.ndarray, kernel: int) -> np.ndarray:
    """(N, L) -> (N, L) centred moving average with edge replication (DLinear's series_decomp)."""
    kernel = max(1, min(kernel, x.shape[1] if x.shape[1] % 2 else x.shape[1] - 1))
    pad = (kernel - 1) // 2
    padded = np.concatenate([np.repeat(x[:, :1], pad, 1), x, np.repeat(x[:, -1:], kernel - 1 - pad, 1)], axis=1)
    csum = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    return (csum[:, kernel:] - csum[:, :-kernel]) / kernel


class LinearForecaster:
    """Ridge DLinear / NLinear on channel-independent windows (scikit-learn estimator style).

    Args:
        kind: ``"nlinear"`` or ``"dlinear"``.
        alphas: ridge strengths tried; the one with the lowest validation MSE is kept.
        calendar: append calendar features (given to ``fit``/``predict`` as ``cal``).
        kernel: DLinear's moving-average width (25 in the paper; clipped to the input length).
    """

    def __init__(self, kind: Literal["nlinear", "dlinear"] = "nlinear",
                 alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0), calendar: bool = False,
                 kernel: int = 25) -> None:
        self.kind = kind
        self.alphas = alphas
        self.calendar = calendar
        self.kernel = kernel

    def _features(self, x: np.ndarray, cal: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        last = x[:, -1:]  # (N, 1)
        if self.kind == "nlinear":
            feats = x - last
        else:
            trend = moving_average(x, self.kernel)
            feats = np.concatenate([trend, x - trend], axis=1)
        if self.calendar:
            if cal is None:
                raise ValueError("calendar=True needs calendar features")
            feats = np.concatenate([feats, cal], axis=1)
        return feats, last

    def _offset(self, last: np.ndarray) -> np.ndarray:
        return last if self.kind == "nlinear" else np.zeros_like(last)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
            cal: np.ndarray | None = None, cal_val: np.ndarray | None = None) -> LinearForecaster:
        """Fit on (N, L) inputs and (N, H) targets; choose alpha on the validation windows."""
        feats, last = self._features(x, cal)
        feats_val, last_val = self._features(x_val, cal_val)
        best = (np.inf, None, None)
        for alpha in self.alphas:
            model = Ridge(alpha=alpha).fit(feats, y - self._offset(last))
            pred = model.predict(feats_val).reshape(len(y_val), -1)  # Ridge flattens a single target
            mse = float(np.mean((pred + self._offset(last_val) - y_val) ** 2))
            if mse < best[0]:
                best = (mse, alpha, model)
        self.val_mse_, self.alpha_, self.model_ = best
        return self

    def predict(self, x: np.ndarray, cal: np.ndarray | None = None) -> np.ndarray:
        """(N, L) -> (N, H)."""
        feats, last = self._features(x, cal)
        return self.model_.predict(feats).reshape(len(x), -1) + self._offset(last)  # (N, H)
