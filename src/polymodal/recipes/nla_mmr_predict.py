"""``polymodal eval`` and ``polymodal predict`` for an nla-mmr run folder.

Input of ``polymodal predict RUN --input visits.csv --output meds.csv``: a CSV with one row per
admission (header required, extra columns ignored)::

    subject_id,hadm_id,admittime,icd_version,diagnoses,procedures
    10006,142345,2164-10-23,9,99591;99662;5672,5491;3893
    10006,151000,2165-02-01,9,4019;25000,

* ``subject_id``, ``hadm_id``: integers; ``hadm_id`` unique (it is the output's ``id``);
* ``admittime``: ``YYYY-MM-DD`` with an optional time; it orders a patient's admissions;
* ``icd_version``: ``9`` or ``10`` (for both code columns of the row);
* ``diagnoses``: ICD codes separated by ``;``, as MIMIC stores them (dots are removed); required;
* ``procedures``: optional column, ``;``-separated ICD procedure codes, may be empty.

A patient's earlier admissions in the same file are its history. An admission with at least one
earlier admission is scored by the ``safedrug`` cohort's models (trained with history); a first
admission by the ``all-admissions`` models (current visit alone); a run with only one cohort uses
it for every admission. Codes no training visit had are embedded from their long titles (saved
from the source's D_ICD tables in ``code_titles.json``), which is the point of a text-based
patient view; a code without a title falls back to ``ICD-9 diagnosis code 4019``-style text and
is counted. Admissions without any diagnosis code are counted and not scored.

Output: one row per (admission, medication of the model's label set): ``id`` (hadm_id),
``subject_id``, ``medication`` (ATC3), ``model`` (which cohort's models), ``score`` (the mean
probability over the run's saved models: by default the first seed's model of every fold and
repeat, each trained on different patients; ``--save-models all`` keeps every seed) and
``decision`` (1 when at least half of those models put the medication in the set at their own
validation-chosen threshold). Rows of an admission are sorted by score, admissions keep the
input's order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.data.sources.mimic import fallback_text
from polymodal.errors import ConfigError, DataError, MissingDataError
from polymodal.io import read_run_json

__all__ = ["INPUT_COLUMNS", "predict_visits", "reevaluate_run"]

INPUT_COLUMNS = ("subject_id", "hadm_id", "admittime", "icd_version", "diagnoses")  # + optional procedures
OUTPUT = ["id", "subject_id", "medication", "model", "score", "decision"]
_CODE = re.compile(r"^[A-Z0-9]+$")


def reevaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """``polymodal eval RUN``: every cohort's tables recomputed from predictions.csv (no retraining)."""
    from polymodal.multilabel_experiment import render_report
    from polymodal.multilabel_predictions import reevaluate

    return reevaluate(run_dir, render_report)


def _codes(text: Any, kind: str, version: int, path: Path, row: int, field: str) -> tuple[str, ...]:
    if not isinstance(text, str) or not text.strip():
        return ()
    out = []
    for raw in text.split(";"):
        code = raw.strip().replace(".", "").upper()
        if not code:
            continue
        if not _CODE.match(code):
            raise DataError(f"ICD code {raw.strip()!r} has characters other than letters and digits", file=path,
                            row=row, field=field)
        out.append(f"{kind}{version}:{code}")
    return tuple(dict.fromkeys(out))  # a code listed twice counts once, as in the ETL


def read_visits(path: Path) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The input CSV checked row by row; returns (visits, counted skips)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"malformed CSV: {err}", file=path) from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in INPUT_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"header lacks column(s) {missing}; expected {[*INPUT_COLUMNS, 'procedures']}", file=path,
                        field=missing[0])
    rows, seen = [], {}
    skipped: list[str] = []
    for i, rec in enumerate(raw.to_dict("records"), start=1):
        ids = {}
        for col in ("subject_id", "hadm_id"):
            try:
                ids[col] = int(str(rec[col]).strip())
            except ValueError:
                raise DataError(f"not an integer: {rec[col]!r}", file=path, row=i, field=col) from None
        if ids["hadm_id"] in seen:
            raise DataError(f"hadm_id {ids['hadm_id']} already on row {seen[ids['hadm_id']]}", file=path, row=i,
                            field="hadm_id")
        seen[ids["hadm_id"]] = i
        when = pd.to_datetime(str(rec["admittime"]).strip(), errors="coerce", format="mixed")
        if pd.isna(when) or not re.match(r"^\d{4}-\d{2}-\d{2}", str(rec["admittime"]).strip()):
            raise DataError(f"malformed date {rec['admittime']!r} (expected YYYY-MM-DD[ HH:MM:SS])", file=path,
                            row=i, field="admittime")
        version = str(rec["icd_version"]).strip()
        if version not in {"9", "10"}:
            raise DataError(f"unknown ICD version {rec['icd_version']!r} (expected 9 or 10)", file=path, row=i,
                            field="icd_version")
        diagnoses = _codes(rec["diagnoses"], "D", int(version), path, i, "diagnoses")
        procedures = _codes(rec.get("procedures", ""), "P", int(version), path, i, "procedures")
        if not diagnoses:
            skipped.append(f"row {i}: hadm_id {ids['hadm_id']}")
            continue
        rows.append({**ids, "admittime": when, "diagnoses": diagnoses, "procedures": procedures, "_row": i})
    skips = {"admissions without a diagnosis code (not scored)": {"count": len(skipped), "examples": skipped[:5]}}
    frame = pd.DataFrame(rows, columns=["subject_id", "hadm_id", "admittime", "diagnoses", "procedures", "_row"])
    return frame.sort_values(["subject_id", "admittime", "hadm_id"]), {k: v for k, v in skips.items() if v["count"]}


class _Cohort:
    """One cohort's saved models, views and label order."""

    def __init__(self, directory: Path) -> None:
        self.problem = read_run_json(directory / "problem.json")
        manifest = read_run_json(directory / "models.json")
        self.members = manifest.get("models") or []
        if not self.members:
            raise MissingDataError(f"{directory / 'models.json'} lists no saved model")
        npz = directory / "medications.npz"
        if not npz.is_file():
            raise MissingDataError(f"{npz} not found: the run folder is incomplete")
        with np.load(npz) as saved:
            self.arrays = {k: saved[k] for k in saved.files}
        self.directory = directory


def predict_visits(run_dir: str | Path, input_path: str | Path, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Score every admission of ``input_path`` with the run's NLA-MMR models (see the module docstring)."""
    from polymodal.data.paths import resolve_cache_dir
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.encoders.text import HashingTextEncoder, SentenceTextEncoder
    from polymodal.multilabel_experiment import FROZEN_BUFFERS
    from polymodal.recipes.nla_mmr import NlaMmrConfig, NlaMmrModel
    from polymodal.tasks.medication import MedicationViews, Sample, collate

    run_dir, input_path = Path(run_dir), Path(input_path)
    config = read_run_json(run_dir / "config.json")
    cfg = NlaMmrConfig.model_validate({k: v for k, v in config.items() if k != "recipe"})
    if cfg.save_models == "none":
        raise ConfigError(f"the run in {run_dir} kept no models (save_models 'none'); rerun it without "
                          "--save-models none to score new admissions")
    cohorts = {name: _Cohort(run_dir / name) for name in cfg.cohorts}
    titles_path = run_dir / "code_titles.json"
    titles: dict[str, str] = read_run_json(titles_path)
    visits, skips = read_visits(input_path)
    if visits.empty:
        raise DataError("no admission with a diagnosis code to score", file=input_path, field="diagnoses")

    codes = sorted({c for col in ("diagnoses", "procedures") for cs in visits[col] for c in cs})
    untitled = [c for c in codes if c not in titles]
    if untitled:
        skips["codes without a long title in the run's D_ICD tables (text falls back to the code)"] = {
            "count": len(untitled), "examples": untitled[:5]}
    texts = [titles.get(c) or fallback_text(c) for c in codes]
    text = HashingTextEncoder(dim=256) if cfg.text_model == "hashing" else SentenceTextEncoder(cfg.text_model)
    cache = EmbeddingCache(resolve_cache_dir(Path(cache_dir) if cache_dir else None) / "embeddings")
    code_text = np.vstack([np.zeros((1, text.dim), np.float32), cache.encode(text, texts)])
    index = {c: i + 1 for i, c in enumerate(codes)}

    # each admission's window (the patient's admissions up to it) and the cohort whose models score it
    assigned: dict[str, list[tuple[int, int, Sample]]] = {}
    for subject, rows in visits.groupby("subject_id", sort=True):
        recs = rows.to_dict("records")
        for t, rec in enumerate(recs):
            has_history = t > 0 and "safedrug" in cohorts
            name = "safedrug" if has_history or "all-admissions" not in cohorts else "all-admissions"
            history = bool(cohorts[name].problem.get("history"))
            max_visits = int(cohorts[name].problem.get("max_visits", cfg.max_visits))
            window = recs[max(0, t + 1 - max_visits): t + 1] if history else [rec]
            n_labels = len(cohorts[name].problem["labels"])
            sample = Sample(int(subject), int(rec["hadm_id"]),
                            tuple(tuple(index[c] for c in w["diagnoses"]) for w in window),
                            tuple(tuple(index[c] for c in w["procedures"]) for w in window),
                            np.zeros(n_labels, np.float32))
            assigned.setdefault(name, []).append((int(subject), int(rec["hadm_id"]), sample))

    frames = []
    for name, items in assigned.items():
        cohort = cohorts[name]
        a = cohort.arrays
        views = MedicationViews(a["structure"], a["has_structure"].astype(bool), a["text"], [], a["substructures"])
        batch, _ = collate([s for _, _, s in items])
        probs, votes = [], []
        for member in cohort.members:
            model = NlaMmrModel(code_text, views, cfg.dim, cfg.heads, cfg.dropout, cfg.temperature)
            weights = cohort.directory / member["file"]
            if not weights.is_file():
                raise MissingDataError(f"{weights} not found: the run folder is incomplete")
            result = model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=False)
            if result.unexpected_keys or set(result.missing_keys) - set(FROZEN_BUFFERS):
                raise DataError(f"weights do not fit the model (missing {result.missing_keys}, unexpected "
                                f"{result.unexpected_keys})", file=weights)
            model.eval()
            with torch.no_grad():
                p = torch.sigmoid(model(batch)[0]).numpy().astype(np.float64)  # (n, L)
            probs.append(p)
            votes.append(p >= float(member["threshold"]))
        score, decision = np.mean(probs, axis=0), (np.mean(votes, axis=0) >= 0.5).astype(int)
        labels = cohort.problem["labels"]
        n, n_labels = score.shape
        frames.append(pd.DataFrame({
            "id": np.repeat([h for _, h, _ in items], n_labels), "subject_id": np.repeat([s for s, _, _ in items],
                                                                                          n_labels),
            "medication": np.tile(labels, n), "model": f"{name} ({len(cohort.members)} models)",
            "score": score.ravel(), "decision": decision.ravel()}))
    order = {h: i for i, h in enumerate(visits.sort_values("_row")["hadm_id"])}  # the input's row order
    out = pd.concat(frames, ignore_index=True)
    out = out.iloc[np.lexsort((-out["score"].to_numpy(), out["id"].map(order).to_numpy()))].reset_index(drop=True)
    out.attrs["skips"] = skips
    out.attrs["columns"] = OUTPUT
    return out

