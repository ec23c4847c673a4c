"""Which texts to use, chosen on validation data only, with a cheap linear proxy.

"Better use of the text" means choosing which text kinds (report / search), which field (``fact``,
``preds`` or both), how recent (maximum age) and after what publication lag. Training the dual
tower once per candidate would cost minutes per cell, so every candidate is scored with a linear
proxy that fits in closed form: NLinear + calendar features (the strongest simple baseline) plus a
few principal components of the window's pooled text embedding, a ridge fit on the training
windows and scored on the validation windows. A candidate's score is its validation MSE divided
by that of the same ridge without text, averaged over the domain's horizons (one choice per
domain: more validation windows behind each decision, fewer chances to fit noise). The test
windows are never touched here.

The same proxy, refitted with the chosen recipe, is also reported as a model of its own
("NLinear + calendar + text"): if text carries information a linear model can use, this row shows
it beside the dual tower.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.decomposition import PCA

from polymodal.baselines.forecast import LinearForecaster
from polymodal.runs.forecast_text import DomainTexts, Source, TextChoice

if TYPE_CHECKING:  # for annotations only (forecast_jobs imports this module)
    from polymodal.runs.forecast_jobs import CellSetup

# Maximum text age in periods by frequency: "only the latest period", "a quarter of the input",
# "the whole input window". Daily data use a week as the shortest: reports are weekly or monthly.
MAX_AGES = {"M": (1, 2, 8), "W": (2, 6, 24), "D": (7, 24, 96)}
PCA_COMPONENTS = 8  # text dimensions the ridge sees; a few hundred monthly windows cannot fit 384
SELECTION_MAX_TRAIN = 2000  # training windows per selection fit (evenly spaced; see linear_with_text)


def pooled(source: Source) -> np.ndarray:
    """(N, D + 1): the mean of each window's text rows (zeros if none) and a has-text indicator."""
    mask = source.idx >= 0  # (N, K)
    rows = source.table[np.clip(source.idx, 0, None)] * mask[..., None]  # (N, K, D)
    count = mask.sum(1, keepdims=True)  # (N, 1)
    mean = rows.sum(1) / np.maximum(count, 1)
    return np.concatenate([mean, (count > 0).astype(np.float32)], axis=1)


class TextFeatures:
    """Pooled text embeddings -> ``PCA_COMPONENTS`` standardised components plus the indicator.

    Fitted on the training windows only (PCA and the standardisation).
    """

    def fit(self, train: Source) -> TextFeatures:
        z = pooled(train)
        n = min(PCA_COMPONENTS, int(z[:, -1].sum()) - 1, z.shape[1] - 1)  # no PCA without 2+ texts
        self.pca_ = PCA(n_components=n, svd_solver="covariance_eigh").fit(z[:, :-1]) if n > 0 else None
        comp = self._components(z)
        self.mean_, self.std_ = comp.mean(0), comp.std(0) + 1e-6
        return self

    def _components(self, z: np.ndarray) -> np.ndarray:
        comp = self.pca_.transform(z[:, :-1]) if self.pca_ is not None else np.zeros((len(z), 0))
        return comp * z[:, -1:]  # a window without text has all-zero components

    def transform(self, source: Source) -> np.ndarray:
        z = pooled(source)
        return np.concatenate([(self._components(z) - self.mean_) / self.std_, z[:, -1:]], axis=1)


def linear_with_text(cell: CellSetup, cal: dict[str, np.ndarray], src: dict[str, Source] | None,
                     max_train: int | None = None) -> tuple[LinearForecaster, dict[str, np.ndarray]]:
    """NLinear + calendar (+ text components of ``src``), ridge alpha on validation; the features used.

    ``max_train`` thins the training windows to that many, evenly spaced (selection only: the
    daily domain's ~11k stride-1 windows overlap almost entirely, and 54 candidates x 4 horizons
    of full ridge fits would take minutes).
    """
    n = len(cell.x["train"])
    rows = np.arange(n) if max_train is None or n <= max_train else np.linspace(0, n - 1, max_train).astype(int)
    extra = {p: c[rows] if p == "train" else c for p, c in cal.items()}
    if src is not None:
        src = {p: Source(s.table, s.idx[rows]) if p == "train" else s for p, s in src.items()}
        feats = TextFeatures().fit(src["train"])
        extra = {p: np.concatenate([extra[p], feats.transform(src[p])], axis=1) for p in extra}
    model = LinearForecaster(kind="nlinear", calendar=True).fit(
        cell.x["train"][rows], cell.y["train"][rows], cell.x["valid"], cell.y["valid"], extra["train"], extra["valid"])
    return model, extra


def candidate_choices(freq: str, kinds: list[str], fields: tuple[str, ...], lags: tuple[int, ...],
                      k: int) -> list[TextChoice]:
    """Every combination of kinds (each alone and all together), field, maximum age and lag."""
    kind_sets = [(kind,) for kind in kinds] + ([tuple(kinds)] if len(kinds) > 1 else [])
    return [TextChoice(fields=f, k=k, max_age_periods=age, lag_days=lag, kinds=ks)
            for ks, f, age, lag in product(kind_sets, fields, MAX_AGES[freq], lags)]


@dataclass
class Selection:
    """The validation-chosen text recipe of one domain and every candidate's score."""

    chosen: TextChoice | None
    val_ratio: float  # chosen candidate's validation MSE / the text-free ridge's (mean over horizons)
    table: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen.name if self.chosen else None, "val_mse_ratio": self.val_ratio,
                "validation_says_text_helps": self.val_ratio < 1.0, "candidates": self.table}


def select_text(cells: list[CellSetup], cals: list[dict[str, np.ndarray]], texts: DomainTexts,
                candidates: list[TextChoice], sources: Any) -> Selection:
    """Score every candidate on the validation windows of every horizon; keep the lowest mean ratio.

    Args:
        cells, cals: one set-up and its calendar features per horizon.
        sources: ``sources(texts, cell, choice) -> part -> Source`` (the runner's text_source).
    """
    base = [linear_with_text(c, cal, None, SELECTION_MAX_TRAIN)[0].val_mse_ for c, cal in zip(cells, cals, strict=True)]
    table: list[dict[str, Any]] = []
    for choice in candidates:
        ratios, coverage = [], []
        for c, cal, b in zip(cells, cals, base, strict=True):
            src = sources(texts, c, choice)
            coverage.append(float((src["train"].idx >= 0).any(1).mean()))
            if coverage[-1] == 0:  # no training window has a text: nothing to learn from
                break
            ratios.append(linear_with_text(c, cal, src, SELECTION_MAX_TRAIN)[0].val_mse_ / b)
        table.append({"choice": choice.name, "train_coverage": float(np.mean(coverage)),
                      "val_mse_ratio": float(np.mean(ratios)) if len(ratios) == len(cells) else None})
    scored = [i for i, t in enumerate(table) if t["val_mse_ratio"] is not None]
    if not scored:
        return Selection(None, 1.0, table)
    best = min(scored, key=lambda i: table[i]["val_mse_ratio"])
    return Selection(candidates[best], table[best]["val_mse_ratio"], table)
