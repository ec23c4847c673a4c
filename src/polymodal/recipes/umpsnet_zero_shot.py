"""Scoring patients with a finished UMPSNet run: ``polymodal predict`` and zero-shot cohorts.

Everything is read from the run folder as data: ``config.json`` (the options), the fitted featuriser
of each fold in ``artifacts/featurizer.json`` (genomic columns, scaler statistics, gene families,
clinical medians) and each fold's headline weights ``jobs/fold_<k>/umpsnet/all/seed_<s>/model.pt``
(state dicts, loaded with ``weights_only=True``). A patient's risk is the mean over every fold's and
seed's model; the cancer-type sentence reaches the guided gate through the frozen text encoder,
which is what lets a pan-cancer model route a cancer it never saw.

``polymodal eval RUN --data-dir DIR --cohort NAME`` (:func:`zero_shot`) reads
``tcga_<name>_all_clean.csv[.gz]`` and the metadata file of DIR, scores every patient, and writes
``RUN/zero_shot_<name>/`` (metrics.json from :class:`polymodal.tasks.SurvivalTask`, predictions.csv,
report.md), labelled zero-shot when the cancer type was not among the training cohorts. No outcome
of the new cohort is used for anything but the metrics; the Kaplan-Meier groups split at the
cohort's median predicted risk (no outcome involved).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.data.schema import Record
from polymodal.errors import DataError, MissingDataError
from polymodal.io import atomic_write, read_run_json, write_json
from polymodal.recipes.umpsnet_parts import NAME, UMPSNetConfig, UMPSNetFeaturizer, build_umpsnet, embed_templates

__all__ = ["HEADLINE_MODALITIES", "UMPSNetPredictor", "harmonise_genomics", "zero_shot"]

HEADLINE_MODALITIES = ("cancer", "genomics", "metadata")


def harmonise_genomics(table: pd.DataFrame, columns: list[str], source: str | Path) -> pd.DataFrame:
    """The genomic columns a model was trained on, from a new cohort's table.

    The call site for column harmonisation: ``polymodal.data.harmonise`` (being written on the
    ``harmonise`` branch: renamed genes, imputation of missing ones, coverage report) plugs in here.
    Until it lands, a missing column is an error naming the file and the columns.
    """
    from polymodal.data.sources.tcga import check_genomic_columns

    check_genomic_columns(table, columns, source)
    return table


class UMPSNetPredictor:
    """Scores new patients with a finished run (see the module docstring).

    Input: a CSV with ``case_id``, ``metadata`` (the patient's UMPSNet metadata as a JSON object:
    ``demographic``, ``diagnosis``, ``treatments``, ``dataset``) and the genomic columns the run was
    trained on (``<GENE>_rnaseq`` / ``_cnv``); ``polymodal predict RUN --example-input F`` writes one.
    Output: ``id``, ``risk`` (mean over the run's fold x seed models; higher = earlier event) and
    ``models`` (how many were averaged).
    """

    def __init__(self, run_dir: str | Path, cache_dir: Path | None = None) -> None:
        self.run_dir = Path(run_dir)
        config = read_run_json(self.run_dir / "config.json")
        self.cfg = UMPSNetConfig.model_validate(config["options"])
        self.cache_dir = Path(cache_dir) if cache_dir else None
        path = self.run_dir / "artifacts" / "featurizer.json"
        state = read_run_json(path)
        if not isinstance(state.get("folds"), list) or not state["folds"]:
            raise DataError("no fitted featuriser per fold", file=path, field="folds")
        self.states: list[dict[str, Any]] = state["folds"]
        self.skips: dict[str, Any] = {}

    def read_input(self, path: Path) -> pd.DataFrame:
        frame = pd.read_csv(path, dtype={"case_id": str, "metadata": str}, keep_default_na=False, na_values=[""],
                            float_precision="round_trip")
        for col in ("case_id", "metadata"):
            if col not in frame.columns:
                raise DataError("required column is missing", file=path, field=col)
        self._records(frame, source=path)  # validate now: errors name the file, row and field
        return frame

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        records, table = self._records(frame, source="input")
        risk, used = self.score(records, table, source="input")
        return pd.DataFrame({"id": [r.id for r in records], "risk": risk, "models": len(used)})

    def example_input(self, n: int = 5) -> pd.DataFrame:
        rows = read_run_json(self.run_dir / "artifacts" / "example_input.json")["rows"]
        return pd.DataFrame(rows).head(n)

    def score(self, records: list[Record], table: pd.DataFrame, *, source: str | Path) -> tuple[np.ndarray, list[str]]:
        """(N,) mean risk over every saved headline model, and the models' paths."""
        from polymodal.runs.survival_cv import score_network

        text = embed_templates(self.cfg, records, self.cache_dir)
        risks, used = [], []
        for k, state in enumerate(self.states):
            genomics = harmonise_genomics(table, list(state["scaler"]["columns"]), source)
            feat = UMPSNetFeaturizer.from_state(state, genomics, text)
            for weights in sorted((self.run_dir / "jobs" / f"fold_{k}" / NAME / "all").glob("seed_*/model.pt")):
                model = build_umpsnet(self.cfg, feat, HEADLINE_MODALITIES, len(self.cfg.cohorts))
                model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
                risks.append(score_network(model, feat, records, HEADLINE_MODALITIES)[0])
                used.append(str(weights.relative_to(self.run_dir)))
        if not risks:
            raise MissingDataError(f"no saved {NAME} model under {self.run_dir}/jobs/fold_*/{NAME}/all/seed_*/model.pt")
        return np.mean(risks, axis=0), used

    @staticmethod
    def _records(frame: pd.DataFrame, *, source: str | Path) -> tuple[list[Record], pd.DataFrame]:
        genes = [c for c in frame.columns if c not in ("case_id", "metadata")]
        values = frame[genes].apply(pd.to_numeric, errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            raise DataError(f"non-numeric or missing value {frame.iloc[r][genes[c]]!r}", file=source, row=r + 1,
                            field=genes[c])
        records = []
        for i, (case, text) in enumerate(zip(frame["case_id"], frame["metadata"], strict=True)):
            try:
                meta = json.loads(text)
            except (TypeError, json.JSONDecodeError):
                meta = None
            if not isinstance(meta, dict):
                raise DataError("metadata must be a JSON object (demographic, diagnosis, treatments, dataset)",
                                file=source, row=i + 1, field="metadata")
            records.append(Record(id=str(case), inputs={"genomics": str(case), "metadata": meta},
                                  target=(float("nan"), 0.0), meta={"cohort": str(meta.get("dataset", "")).upper()}))
        table = values.astype(np.float32)
        table.index = pd.Index([r.id for r in records], name="case_id")
        if table.index.has_duplicates:
            dup = str(table.index[table.index.duplicated()][0])
            raise DataError(f"case_id {dup!r} repeats", file=source, field="case_id")
        return records, table


def example_rows(records: list[Record], genomics: pd.DataFrame, columns: list[str], n: int = 5) -> list[dict[str, Any]]:
    """The input format of :class:`UMPSNetPredictor` for the first ``n`` records (no outcome)."""
    rows = []
    for r in records[:n]:
        row: dict[str, Any] = {"case_id": r.id, "metadata": json.dumps(r.inputs["metadata"], sort_keys=True)}
        row.update({c: float(genomics.at[r.id, c]) for c in columns})
        rows.append(row)
    return rows


def zero_shot(run_dir: str | Path, *, cohort: str, data_dir: str | Path | None = None,
              cache_dir: str | Path | None = None) -> tuple[dict[str, Any], Path]:
    """Score ``cohort`` with a finished run's models; returns (metrics, output folder)."""
    from polymodal.data.paths import resolve_data_dir
    from polymodal.data.sources.tcga import METADATA, _folder, cohort_file, read_cohort, read_metadata
    from polymodal.data.splits import SkipReport
    from polymodal.reports import write_report
    from polymodal.runs.environment import environment
    from polymodal.runs.problem import predictions_frame
    from polymodal.tasks.survival import SurvivalTask

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise MissingDataError(f"{run_dir / 'config.json'} is missing: is {run_dir} a finished `polymodal run "
                               f"{NAME}` folder?")
    predictor = UMPSNetPredictor(run_dir, Path(cache_dir) if cache_dir else None)
    cfg = predictor.cfg
    folder = _folder(resolve_data_dir(data_dir))
    path = cohort_file(folder, cohort)
    skips = SkipReport()
    records, table = read_cohort(path, read_metadata(folder / METADATA), skips)
    if not records:
        raise MissingDataError(f"{path.name}: no patient left to score (skips: {skips.to_dict()})")
    risk, used = predictor.score(records, table, source=path)
    t = np.array([float(r.target[0]) for r in records])
    e = np.array([int(r.target[1]) for r in records])
    seen = cohort.upper() in {x.upper() for x in cfg.cohorts}
    label = "seen in training: NOT zero-shot" if seen else "zero-shot: this cancer type was never seen in training"
    name = NAME if seen else f"{NAME} (zero-shot)"
    ids = [r.id for r in records]
    # risk minus the cohort's median: the risk groups (high = above 0) split at the median prediction
    predictions = pd.concat([
        predictions_frame(model=name, kind="recipe", split="test", ids=ids, time=t, event=e,
                          risk=risk - np.median(risk)),
        predictions_frame(model="kaplan-meier", kind="trivial", split="test", ids=ids, time=t, event=e, risk=0.0),
    ], ignore_index=True)
    task = SurvivalTask(headline=name, ensemble=True, n_boot=cfg.protocol.n_boot, seed=0)
    metrics: dict[str, Any] = {
        "recipe": NAME, "zero_shot": not seen,
        "dataset": {"description": f"{path.name}: {len(records)} patients, {int(e.sum())} events ({label}); the "
                                   f"model was trained on {', '.join(cfg.cohorts)}", "files": {"test": str(path)},
                    "sizes": {"test": len(records)}},
        **task.evaluate(predictions),
        "skips": skips.to_dict(), "environment": environment(),
        "notes": [label, f"risk = mean over {len(used)} saved models (every fold and seed): {', '.join(used)}",
                  "Kaplan-Meier groups split at the cohort's median predicted risk (no outcome used)."],
    }
    out = run_dir / f"zero_shot_{cohort.lower()}"
    write_json(out / "metrics.json", metrics)
    atomic_write(out / "predictions.csv", lambda fh: predictions.to_csv(fh, index=False))
    write_report(out, metrics, predictions)
    return metrics, out
