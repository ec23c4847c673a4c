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
it for every admission. Each saved model uses its own fold's vocabularies (fitted on that fold's
training patients, saved as JSON beside its weights): a code outside them is the "unknown" code, as
it was for that fold's test patients, and is counted. Admissions without any diagnosis code are
counted and not scored.

Output: one row per (admission, medication of the models' label sets): ``id`` (hadm_id),
``subject_id``, ``medication`` (ATC3), ``model`` (which cohort's models), ``score`` (the mean
probability over the run's saved models: by default the first seed's model of every fold and
repeat, each trained on different patients; ``--save-models all`` keeps every seed; a model whose
fold never saw the medication counts 0) and ``decision`` (1 when at least half of those models put
the medication in the set at their own validation-chosen threshold). Rows of an admission are
sorted by score, admissions keep the input's order.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.errors import ConfigError, DataError, MissingDataError
from polymodal.io import load_torch_file, read_run_json, write_json
from polymodal.recipes.nla_mmr_model import FROZEN_BUFFERS, NlaMmrConfig, NlaMmrModel, save_weights

__all__ = ["INPUT_COLUMNS", "VisitPredictor", "example_rows", "read_visits", "save_member"]

INPUT_COLUMNS = ("subject_id", "hadm_id", "admittime", "icd_version", "diagnoses")  # + optional procedures
OUTPUT = ["id", "subject_id", "medication", "model", "score", "decision"]
_CODE = re.compile(r"^[A-Z0-9]+$")


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


def save_member(model: torch.nn.Module, fold: Any, threshold: float, directory: Path, max_visits: int) -> None:
    """What scoring new admissions with one trained model needs, as data: its weights (a state dict
    without the frozen inputs), its fold's vocabularies, code texts and threshold (JSON), and the
    frozen medication views (npz)."""
    save_weights(model, directory / "model.pt")
    v = fold.views
    from polymodal.io import atomic_path

    with atomic_path(directory / "medications.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, structure=v.structure, has_structure=v.has_structure, text=v.text, substructures=v.substructures)
    write_json(directory / "state.json", {
        "cohort": fold.cohort, "repeat": fold.repeat, "fold": fold.fold, "threshold": float(threshold),
        "history": fold.problem.history, "max_visits": max_visits, "codes": fold.problem.codes,
        "code_text": fold.problem.code_text, "labels": fold.problem.labels})


def example_rows(cohort: Any, subjects: list[int], n: int = 5) -> list[dict[str, Any]]:
    """A few admissions of ``subjects`` (test patients) in the input format; medications are not part of it."""
    rows = []
    for subject in subjects:
        for visit in cohort.patients[subject]:
            version = (visit.diagnoses[0].split(":")[0][1:]) if visit.diagnoses else "9"

            def raw(codes: tuple[str, ...], version: str = version) -> str:
                return ";".join(c.split(":", 1)[1] for c in codes if c.split(":")[0][1:] == version)

            rows.append({"subject_id": visit.subject_id, "hadm_id": visit.hadm_id,
                         "admittime": str(visit.admittime), "icd_version": version,
                         "diagnoses": raw(visit.diagnoses), "procedures": raw(visit.procedures)})
            if len(rows) >= n:
                return rows
    return rows


class _Member:
    """One saved model with its fold's vocabularies."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state = read_run_json(directory / "state.json")
        npz = directory / "medications.npz"
        if not npz.is_file() or not (directory / "model.pt").is_file():
            raise MissingDataError(f"{directory}: medications.npz or model.pt missing; the run folder is incomplete")
        with np.load(npz) as saved:  # plain arrays: np.load refuses pickled objects by default
            self.arrays = {k: saved[k] for k in saved.files}
        self.index = {c: i + 1 for i, c in enumerate(self.state["codes"])}


class VisitPredictor:
    """``polymodal predict`` for an nla-mmr run (see the module docstring for the input and output)."""

    def __init__(self, run_dir: Path, cache_dir: Path | None = None) -> None:
        from polymodal.data.paths import resolve_cache_dir
        from polymodal.encoders.cache import EmbeddingCache
        from polymodal.encoders.text import HashingTextEncoder, SentenceTextEncoder

        self.run_dir = Path(run_dir)
        config = read_run_json(self.run_dir / "config.json")
        self.cfg = NlaMmrConfig.model_validate(config["options"])
        if self.cfg.save_models == "none":
            raise ConfigError(f"the run in {run_dir} kept no models (save_models 'none'); rerun it without "
                              "--save-models none to score new admissions")
        self.members: dict[str, list[_Member]] = {}
        for state in sorted(self.run_dir.glob("jobs/*/r*/f*/nla-mmr/seed_*/state.json")):
            member = _Member(state.parent)
            self.members.setdefault(member.state["cohort"], []).append(member)
        if not self.members:
            raise MissingDataError(f"{self.run_dir / 'jobs'} holds no saved nla-mmr model: the run is incomplete")
        self.text = (HashingTextEncoder(dim=256) if self.cfg.text_model == "hashing"
                     else SentenceTextEncoder(self.cfg.text_model))
        self.cache = EmbeddingCache(resolve_cache_dir(Path(cache_dir) if cache_dir else None) / "embeddings")
        self.skips: dict[str, Any] = {}

    def read_input(self, path: Path) -> pd.DataFrame:
        visits, self.skips = read_visits(Path(path))
        if visits.empty:
            raise DataError("no admission with a diagnosis code to score", file=path, field="diagnoses")
        return visits

    def example_input(self, n: int = 5) -> pd.DataFrame:
        rows = read_run_json(self.run_dir / "artifacts" / "example_input.json")
        return pd.DataFrame(rows["rows"]).head(n)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Scores of every admission of ``frame`` (the input format, or what :meth:`read_input` returned)."""
        from polymodal.tasks.medication import Sample

        if "_row" not in frame.columns:  # a frame in the input format: validated like a file
            with tempfile.TemporaryDirectory() as tmp:
                frame.to_csv(Path(tmp) / "input.csv", index=False)
                frame = self.read_input(Path(tmp) / "input.csv")
        visits = frame
        unknown = sorted({c for col in ("diagnoses", "procedures") for cs in visits[col] for c in cs}
                         - {c for ms in self.members.values() for m in ms for c in m.state["codes"]})
        if unknown:
            self.skips["codes no saved model's training patients had (scored as the unknown code)"] = {
                "count": len(unknown), "examples": unknown[:5]}
        assigned: dict[str, list[tuple[int, int, list[dict[str, Any]]]]] = {}
        for subject, rows in visits.groupby("subject_id", sort=True):
            recs = rows.to_dict("records")
            for t, rec in enumerate(recs):
                name = "safedrug" if (t > 0 and "safedrug" in self.members) or "all-admissions" not in self.members \
                    else "all-admissions"
                state = self.members[name][0].state
                window = recs[max(0, t + 1 - int(state["max_visits"])): t + 1] if state["history"] else [rec]
                assigned.setdefault(name, []).append((int(subject), int(rec["hadm_id"]), window))
        frames = []
        for name, items in assigned.items():
            members = self.members[name]
            labels = sorted({m for member in members for m in member.state["labels"]})
            column = {m: j for j, m in enumerate(labels)}
            probs = np.zeros((len(members), len(items), len(labels)))
            votes = np.zeros_like(probs)
            for k, member in enumerate(members):
                idx = member.index

                def ids(codes: tuple[str, ...], idx: dict[str, int] = idx) -> tuple[int, ...]:
                    return tuple(dict.fromkeys(idx.get(c, 1) for c in codes))

                n_labels = len(member.state["labels"])
                samples = [Sample(s, h, tuple(ids(w["diagnoses"]) for w in window),
                                  tuple(ids(w["procedures"]) for w in window), np.zeros(n_labels, np.float32))
                           for s, h, window in items]
                p = self._score(member, samples)  # (n, L_member)
                at = [column[m] for m in member.state["labels"]]
                probs[k][:, at] = p
                votes[k][:, at] = p >= float(member.state["threshold"])
            score, decision = probs.mean(axis=0), (votes.mean(axis=0) >= 0.5).astype(int)
            n = len(items)
            frames.append(pd.DataFrame({
                "id": np.repeat([h for _, h, _ in items], len(labels)),
                "subject_id": np.repeat([s for s, _, _ in items], len(labels)),
                "medication": np.tile(labels, n), "model": f"{name} ({len(members)} models)",
                "score": score.ravel(), "decision": decision.ravel()}))
        order = {h: i for i, h in enumerate(visits.sort_values("_row")["hadm_id"])}  # the input's row order
        out = pd.concat(frames, ignore_index=True)
        return out.iloc[np.lexsort((-out["score"].to_numpy(), out["id"].map(order).to_numpy()))].reset_index(drop=True)

    def _score(self, member: _Member, samples: list[Any]) -> np.ndarray:
        from polymodal.tasks.medication import MedicationViews, collate

        a = member.arrays
        views = MedicationViews(a["structure"], a["has_structure"].astype(bool), a["text"], [], a["substructures"])
        text = np.asarray(self.cache.encode(self.text, member.state["code_text"]), dtype=np.float32)
        code_text = np.vstack([np.zeros((1, text.shape[1]), np.float32), text])
        cfg = self.cfg
        model = NlaMmrModel(code_text, views, cfg.dim, cfg.heads, cfg.dropout, cfg.temperature)
        weights = member.directory / "model.pt"
        result = model.load_state_dict(load_torch_file(weights), strict=False)  # weights_only=True, errors name it
        if result.unexpected_keys or set(result.missing_keys) - set(FROZEN_BUFFERS):
            raise DataError(f"weights do not fit the model (missing {result.missing_keys}, unexpected "
                            f"{result.unexpected_keys})", file=weights)
        model.eval()
        with torch.no_grad():
            batch, _ = collate(samples)
            return torch.sigmoid(model(batch)[0]).numpy().astype(np.float64)  # (n, L)
