"""MIMIC-III and MIMIC-IV (hosp) -> visits for medication recommendation, following SafeDrug's preprocessing.

Readers:

* :func:`read_mimic3` reads the uppercase MIMIC-III tables (``ADMISSIONS``, ``DIAGNOSES_ICD``,
  ``PROCEDURES_ICD``, ``PRESCRIPTIONS``, ``D_ICD_DIAGNOSES``, ``D_ICD_PROCEDURES``; ``.csv`` or
  ``.csv.gz``; header case does not matter). All codes are ICD-9.
* :func:`read_mimic4` reads the MIMIC-IV ``hosp`` module as PhysioNet ships it (lowercase
  ``hosp/*.csv.gz`` with ``icd_code`` + ``icd_version``; ICD-9 and ICD-10 codes both kept, keyed by
  version, with their long titles as text).

:func:`build_cohorts` then applies SafeDrug's steps (ycq091044/SafeDrug ``data/processing.py``,
also used by MoleRec) and returns two cohorts:

* ``safedrug``: prescriptions with NDC ``0`` dropped; deduplicated; patients with >= 2 admissions
  in the prescription table; NDC -> ATC3; the 300 most frequent ATC3 codes; ATC3 codes with
  SMILES; the 2000 most frequent diagnosis codes; admissions that have medications, diagnoses and
  procedures (inner join). History is used.
* ``all-admissions``: the same medication and diagnosis steps without the two-admission filter,
  and procedures optional (LEAP's setting: the current visit alone).

Every step records how many rows, visits and patients it kept and dropped (:class:`EtlReport`);
inputs that cannot be used (missing NDC, unmapped NDC, unknown ICD version, a visit with no
diagnoses) are counted with examples. A malformed date raises :class:`DataError` naming the file,
row and column. Nothing is dropped silently.

A damaged file is an error naming it, never a partial table: empty, not UTF-8, a truncated or
corrupt ``.csv.gz``, or a file cut in the middle of a row. The last case is an error rather than a
counted skip because a cut row cannot be told from a whole one by its values (a cut inside the last
field leaves a shortened code, ``4019`` -> ``4``) and a cut file has lost every row after it too;
it is recognised by the missing final line break (PhysioNet's files all end with one), see
:func:`polymodal.data.tables.read_csv`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from polymodal.data.sources.drug_vocab import DrugVocab, normalise_ndc
from polymodal.data.tables import read_csv
from polymodal.errors import DataError, MissingDataError

COHORTS = ("safedrug", "all-admissions")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Visit:
    """One admission: its codes (keys like ``D9:4019``, ``P10:0DTJ4ZZ``) and its ATC3 medications."""

    subject_id: int
    hadm_id: int
    admittime: pd.Timestamp
    diagnoses: tuple[str, ...]
    procedures: tuple[str, ...]
    medications: tuple[str, ...]


@dataclass
class EtlReport:
    """What every step kept and dropped, plus counted skips with examples."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    skips: dict[str, dict[str, Any]] = field(default_factory=dict)

    def step(self, name: str, before: pd.DataFrame, after: pd.DataFrame, note: str = "") -> None:
        row = {"step": name, "rows_kept": len(after), "rows_dropped": len(before) - len(after)}
        for col, label in (("hadm_id", "visits"), ("subject_id", "patients")):
            if col in before.columns and col in after.columns:
                kept = after[col].nunique()
                row[f"{label}_kept"], row[f"{label}_dropped"] = kept, before[col].nunique() - kept
        if note:
            row["note"] = note
        self.steps.append(row)

    def skip(self, reason: str, count: int, examples: list[Any] | None = None) -> None:
        if count <= 0:
            return
        entry = self.skips.setdefault(reason, {"count": 0, "examples": []})
        entry["count"] += int(count)
        entry["examples"] = (entry["examples"] + [str(e) for e in (examples or [])])[:5]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "skips": self.skips}


@dataclass
class MimicTables:
    """The four event tables in one normalised shape, whatever the source.

    admissions: subject_id, hadm_id, admittime. diagnoses / procedures: subject_id, hadm_id, code.
    prescriptions: subject_id, hadm_id, icustay_id, startdate, drug, ndc, gsn. ``code_text`` maps a
    code key to its long title; ``files`` maps each table to the file it came from.
    """

    source: str
    admissions: pd.DataFrame
    diagnoses: pd.DataFrame
    procedures: pd.DataFrame
    prescriptions: pd.DataFrame
    code_text: dict[str, str]
    files: dict[str, str]
    report: EtlReport


@dataclass
class MimicCohort:
    """Visits grouped by patient, in admission order, with the ETL report that produced them."""

    name: str
    source: str
    patients: dict[int, list[Visit]]
    code_text: dict[str, str]
    report: EtlReport

    @property
    def visits(self) -> list[Visit]:
        return [v for s in sorted(self.patients) for v in self.patients[s]]


# --------------------------------------------------------------------------- reading


def _find(root: Path, names: list[str]) -> Path:
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise MissingDataError(f"none of {names} (or .gz) found in {root}")


def _read(path: Path, columns: list[str], dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    frame = read_csv(path, dtype=str, keep_default_na=True, require_rows=True)
    frame.columns = [c.lower() for c in frame.columns]
    for col in columns:
        if col not in frame.columns:
            raise DataError(f"missing column (columns: {list(frame.columns)})", file=path, field=col)
    frame = frame[columns].copy()
    frame["_row"] = range(1, len(frame) + 1)  # 1-based data row, for error messages
    frame.attrs["file"] = str(path)
    for col, kind in (dtypes or {}).items():
        frame[col] = _to_int(frame, col, path, kind == "Int64")
    return frame


def _to_int(frame: pd.DataFrame, col: str, path: Path, nullable: bool) -> pd.Series:
    values = pd.to_numeric(frame[col], errors="coerce")
    bad = values.isna() & frame[col].notna()
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        raise DataError(f"not an integer: {frame[col].iloc[i]!r}", file=path, row=int(frame["_row"].iloc[i]), field=col)
    return values.astype("Int64")


def _parse_dates(frame: pd.DataFrame, col: str, *, required: bool) -> pd.Series:
    """Parse ``col`` with MIMIC's format; a non-empty unparsable value raises with file, row and column."""
    path = frame.attrs.get("file", "?")
    raw = frame[col]
    parsed = pd.to_datetime(raw, format=DATE_FORMAT, errors="coerce")
    # MIMIC-IV's d-only dates (e.g. chartdate) parse with the date-only format.
    short = parsed.isna() & raw.notna()
    if short.any():
        parsed[short] = pd.to_datetime(raw[short], format="%Y-%m-%d", errors="coerce")
    bad = parsed.isna() & raw.notna()
    if required:
        bad |= raw.isna()
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        raise DataError(f"malformed date {raw.iloc[i]!r} (expected {DATE_FORMAT})", file=path,
                        row=int(frame["_row"].iloc[i]), field=col)
    return parsed


def _titles(path: Path, version: int | None, report: EtlReport, kind: str) -> dict[str, str]:
    cols = ["icd9_code", "long_title"] if version == 9 else ["icd_code", "icd_version", "long_title"]
    frame = _read(path, cols)
    out: dict[str, str] = {}
    if version == 9:
        for code, title in zip(frame["icd9_code"], frame["long_title"], strict=True):
            if isinstance(code, str) and isinstance(title, str):
                out[f"{kind}9:{code.strip()}"] = title.strip()
    else:
        for code, ver, title in zip(frame["icd_code"], frame["icd_version"], frame["long_title"], strict=True):
            if isinstance(code, str) and isinstance(title, str) and str(ver).strip() in {"9", "10"}:
                out[f"{kind}{str(ver).strip()}:{code.strip()}"] = title.strip()
    return out


def _codes_v9(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    # a missing code stays NaN here and is counted by the cohort builder, not dropped silently
    return frame.assign(code=f"{kind}9:" + frame["icd9_code"].str.strip())[["subject_id", "hadm_id", "code", "_row"]]


def _codes_versioned(frame: pd.DataFrame, kind: str, table: str, report: EtlReport) -> pd.DataFrame:
    version = frame["icd_version"].str.strip()
    known = version.isin(["9", "10"])
    report.skip(f"{table}: unknown icd_version (not 9 or 10)", int((~known).sum()),
                [f"row {r}: {v!r}" for r, v in zip(frame.loc[~known, "_row"], version[~known], strict=True)])
    frame = frame[known]
    out = frame.assign(code=kind + version[known] + ":" + frame["icd_code"].str.strip())
    return out[["subject_id", "hadm_id", "code", "_row"]]


def _admissions(path: Path, time_col: str) -> pd.DataFrame:
    frame = _read(path, ["subject_id", "hadm_id", time_col], {"subject_id": "Int64", "hadm_id": "Int64"})
    frame["admittime"] = _parse_dates(frame, time_col, required=True)
    return frame[["subject_id", "hadm_id", "admittime"]]


def _prescriptions(path: Path, start_col: str, icustay: bool) -> pd.DataFrame:
    cols = ["subject_id", "hadm_id", start_col, "drug", "ndc", "gsn"] + (["icustay_id"] if icustay else [])
    frame = _read(path, cols, {"subject_id": "Int64", "hadm_id": "Int64"})
    frame["startdate"] = _parse_dates(frame, start_col, required=False)
    if not icustay:
        frame["icustay_id"] = pd.NA
    return frame[["subject_id", "hadm_id", "icustay_id", "startdate", "drug", "ndc", "gsn", "_row"]]


def read_mimic3(directory: str | Path) -> MimicTables:
    """Read the MIMIC-III tables (full or the demo) from ``directory``."""
    root, report = Path(directory), EtlReport()
    files = {t: _find(root, [f"{t}.csv", f"{t.lower()}.csv"]) for t in
             ("ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")}
    ints = {"subject_id": "Int64", "hadm_id": "Int64"}
    diag = _codes_v9(_read(files["DIAGNOSES_ICD"], ["subject_id", "hadm_id", "icd9_code"], ints), "D")
    proc = _codes_v9(_read(files["PROCEDURES_ICD"], ["subject_id", "hadm_id", "icd9_code"], ints), "P")
    text = {**_titles(files["D_ICD_DIAGNOSES"], 9, report, "D"), **_titles(files["D_ICD_PROCEDURES"], 9, report, "P")}
    return MimicTables("MIMIC-III", _admissions(files["ADMISSIONS"], "admittime"), diag, proc,
                       _prescriptions(files["PRESCRIPTIONS"], "startdate", icustay=True), text,
                       {k: str(v) for k, v in files.items()}, report)


def read_mimic4(directory: str | Path) -> MimicTables:
    """Read MIMIC-IV's ``hosp`` module; ``directory`` is the release folder (with ``hosp/``) or ``hosp`` itself."""
    root, report = Path(directory), EtlReport()
    hosp = root / "hosp" if (root / "hosp").is_dir() else root
    if not (hosp / "admissions.csv.gz").is_file() and not (hosp / "admissions.csv").is_file():
        releases = sorted(p / "hosp" for p in root.glob("mimic-iv*") if (p / "hosp").is_dir())
        if releases:
            hosp = releases[-1]
    files = {t: _find(hosp, [f"{t}.csv"]) for t in
             ("admissions", "diagnoses_icd", "procedures_icd", "prescriptions", "d_icd_diagnoses", "d_icd_procedures")}
    ints = {"subject_id": "Int64", "hadm_id": "Int64"}
    cols = ["subject_id", "hadm_id", "icd_code", "icd_version"]
    diag = _codes_versioned(_read(files["diagnoses_icd"], cols, ints), "D", "diagnoses_icd", report)
    proc = _codes_versioned(_read(files["procedures_icd"], cols, ints), "P", "procedures_icd", report)
    text = {**_titles(files["d_icd_diagnoses"], None, report, "D"),
            **_titles(files["d_icd_procedures"], None, report, "P")}
    return MimicTables("MIMIC-IV", _admissions(files["admissions"], "admittime"), diag, proc,
                       _prescriptions(files["prescriptions"], "starttime", icustay=False), text,
                       {k: str(v) for k, v in files.items()}, report)


# --------------------------------------------------------------------------- SafeDrug's steps


def _map_atc3(meds: pd.DataFrame, vocab: DrugVocab, report: EtlReport, fallbacks: bool) -> pd.DataFrame:
    """NDC -> ATC (then GSN, then drug name when ``fallbacks``) -> ATC3; one row per (prescription, ATC3)."""
    by_ndc = meds["ndc"].map(vocab.ndc_to_atc)
    source = pd.Series("ndc", index=meds.index).where(by_ndc.notna(), None)
    atc = by_ndc
    if fallbacks:
        gsn = meds["gsn"].fillna("").str.strip().str.zfill(6)
        by_gsn = gsn.map(vocab.gsn_to_atc)
        use = atc.isna() & by_gsn.notna()
        atc, source = atc.where(~use, by_gsn), source.where(~use, "gsn")
        by_name = meds["drug"].fillna("").str.strip().str.lower().map(vocab.name_to_atc)
        use = atc.isna() & by_name.notna()
        atc, source = atc.where(~use, by_name), source.where(~use, "name")
    unmapped = atc.isna()
    counts = source.value_counts().to_dict()
    report.skip("prescriptions: NDC not mapped to ATC (no NDC, GSN or name match)", int(unmapped.sum()),
                [f"ndc {n} ({d})" for n, d in meds.loc[unmapped, ["ndc", "drug"]].drop_duplicates("ndc").head(5)
                 .itertuples(index=False)])
    mapped = meds[~unmapped].assign(atc=atc[~unmapped]).explode("atc")
    mapped["atc3"] = mapped["atc"].str[:4]
    mapped = mapped.drop(columns=["atc"]).drop_duplicates()
    report.step("map NDC -> ATC3", meds, mapped,
                f"rows mapped by NDC {counts.get('ndc', 0)}, by GSN {counts.get('gsn', 0)}, by drug name "
                f"{counts.get('name', 0)}; distinct NDCs unmapped {meds.loc[unmapped, 'ndc'].nunique()}; a drug in "
                "several ATC3 classes gives one row per class, so rows can grow")
    return mapped


def _medications(tables: MimicTables, vocab: DrugVocab, report: EtlReport, *, min_visits: int,
                 top_meds: int | None, fallbacks: bool) -> pd.DataFrame:
    meds = tables.prescriptions.copy()
    meds["ndc"] = meds["ndc"].map(normalise_ndc)
    no_ndc = meds["ndc"].isna()
    raw_ndc = tables.prescriptions["ndc"].fillna("").str.strip()
    report.skip("prescriptions: NDC '0' (SafeDrug drops these)", int((no_ndc & raw_ndc.ne("")).sum()))
    report.skip("prescriptions: no NDC", int((no_ndc & raw_ndc.eq("")).sum()),
                [f"row {r}: {d}" for r, d in meds.loc[no_ndc & raw_ndc.eq(""), ["_row", "drug"]].head(5)
                 .itertuples(index=False)])
    kept = meds[~no_ndc]
    report.step("prescriptions with an NDC", meds, kept, "SafeDrug forward-fills missing NDCs; we drop and count them")
    no_visit = kept["hadm_id"].isna() | kept["subject_id"].isna()
    report.skip("prescriptions: no hadm_id or subject_id", int(no_visit.sum()))
    before, kept = kept, kept[~no_visit].drop(columns="_row")
    kept = kept.sort_values(["subject_id", "hadm_id", "icustay_id", "startdate", "drug"], na_position="last")
    kept = kept.drop(columns="icustay_id").drop_duplicates()
    report.step("with admission ids, deduplicated", before, kept)
    if min_visits > 1:
        n_visits = kept.groupby("subject_id")["hadm_id"].transform("nunique")
        before, kept = kept, kept[n_visits >= min_visits]
        report.step(f"patients with >= {min_visits} admissions", before, kept)
    kept = _map_atc3(kept, vocab, report, fallbacks)
    if top_meds is not None:
        counts = kept.groupby("atc3").size().sort_values(ascending=False, kind="stable")
        before, kept = kept, kept[kept["atc3"].isin(counts.index[:top_meds])]
        report.step(f"{top_meds} most frequent ATC3", before, kept)
    has_smiles = kept["atc3"].isin(list(vocab.atc3_smiles))
    report.skip("medications: ATC3 without SMILES (SafeDrug drops these)", int((~has_smiles).sum()),
                sorted(kept.loc[~has_smiles, "atc3"].unique())[:5])
    before, kept = kept, kept[has_smiles]
    report.step("ATC3 with SMILES", before, kept)
    return kept.drop_duplicates(["hadm_id", "atc3"])


def _codes(frame: pd.DataFrame, name: str, report: EtlReport, top: int | None) -> pd.DataFrame:
    missing = frame["hadm_id"].isna() | frame["subject_id"].isna() | frame["code"].isna()
    report.skip(f"{name}: no hadm_id, subject_id or code", int(missing.sum()),
                [f"row {r}" for r in frame.loc[missing, "_row"].head(5)])
    kept = frame[~missing].drop(columns="_row").drop_duplicates()
    report.step(f"{name}: complete, deduplicated", frame, kept)
    if top is not None:
        counts = kept.groupby("code").size().sort_values(ascending=False, kind="stable")
        before, kept = kept, kept[kept["code"].isin(counts.index[:top])]
        report.step(f"{name}: {top} most frequent codes", before, kept)
    return kept


def build_cohort(tables: MimicTables, vocab: DrugVocab, cohort: str = "safedrug", *, top_meds: int | None = 300,
                 top_diagnoses: int | None = 2000, drug_fallbacks: bool = True) -> MimicCohort:
    """Apply SafeDrug's preprocessing (``cohort="safedrug"``) or its single-visit variant (``"all-admissions"``).

    Args:
        tables: from :func:`read_mimic3` or :func:`read_mimic4`.
        vocab: from :func:`polymodal.data.sources.drug_vocab.load_drug_vocab`.
        cohort: ``"safedrug"`` (>= 2 admissions; medications, diagnoses and procedures required) or
            ``"all-admissions"`` (every admission with medications and diagnoses; procedures optional).
        top_meds: keep the most frequent ATC3 codes (SafeDrug: 300); ``None`` keeps all (a recipe that
            fits the filter on each training fold, as nla-mmr does, so test patients never shape it).
        top_diagnoses: keep the most frequent diagnosis codes (SafeDrug: 2000); ``None`` keeps all.
        drug_fallbacks: map NDCs missing from the NDC table by GSN, then by drug name.
    """
    if cohort not in COHORTS:
        raise ValueError(f"unknown cohort {cohort!r}; known: {', '.join(COHORTS)}")
    report = EtlReport(skips={k: dict(v) for k, v in tables.report.skips.items()})
    multi = cohort == "safedrug"
    adm = tables.admissions
    report.steps.append({"step": f"{tables.source} admissions", "rows_kept": len(adm),
                         "visits_kept": adm["hadm_id"].nunique(), "patients_kept": adm["subject_id"].nunique()})
    meds = _medications(tables, vocab, report, min_visits=2 if multi else 1, top_meds=top_meds,
                        fallbacks=drug_fallbacks)
    diag = _codes(tables.diagnoses, "diagnoses", report, top_diagnoses)
    proc = _codes(tables.procedures, "procedures", report, None)
    keys = meds[["subject_id", "hadm_id"]].drop_duplicates()
    known = keys["hadm_id"].isin(adm["hadm_id"])
    report.skip("visits: hadm_id of prescriptions not in the admissions table", int((~known).sum()),
                [str(h) for h in keys.loc[~known, "hadm_id"].head(5)])
    keys = keys[known]
    has_diag, has_proc = keys["hadm_id"].isin(diag["hadm_id"]), keys["hadm_id"].isin(proc["hadm_id"])
    report.skip("visits: medications but no diagnoses", int((~has_diag).sum()),
                [str(h) for h in keys.loc[~has_diag, "hadm_id"].head(5)])
    if multi:
        no_proc = has_diag & ~has_proc
        report.skip("visits: medications and diagnoses but no procedures (SafeDrug's inner join)",
                    int(no_proc.sum()), [str(h) for h in keys.loc[no_proc, "hadm_id"].head(5)])
        final = keys[has_diag & has_proc]
    else:
        final = keys[has_diag]
        report.skip("visits kept without procedures (all-admissions cohort; not a drop)",
                    int((has_diag & ~has_proc).sum()))
    report.step("visits with medications and diagnoses" + (" and procedures" if multi else ""), keys, final)
    times = adm.drop_duplicates("hadm_id").set_index("hadm_id")["admittime"]
    diag_by = diag.groupby("hadm_id")["code"].apply(lambda s: tuple(dict.fromkeys(s)))
    proc_by = proc.groupby("hadm_id")["code"].apply(lambda s: tuple(dict.fromkeys(s)))
    med_by = meds.groupby("hadm_id")["atc3"].apply(lambda s: tuple(dict.fromkeys(s)))
    patients: dict[int, list[Visit]] = {}
    for subject, hadm in final.itertuples(index=False):
        patients.setdefault(int(subject), []).append(Visit(
            int(subject), int(hadm), times[hadm], diag_by.get(hadm, ()), proc_by.get(hadm, ()), med_by[hadm]))
    for visits in patients.values():
        visits.sort(key=lambda v: (v.admittime, v.hadm_id))
    codes = {c for vs in patients.values() for v in vs for c in (*v.diagnoses, *v.procedures)}
    untitled = sorted(c for c in codes if c not in tables.code_text)
    report.skip("codes without a long title (text falls back to the code)", len(untitled), untitled[:5])
    text = {c: tables.code_text.get(c) or fallback_text(c) for c in codes}
    return MimicCohort(cohort, tables.source, patients, text, report)


def fallback_text(code: str) -> str:
    kind, _, value = code.partition(":")
    what = "diagnosis" if kind.startswith("D") else "procedure"
    return f"ICD-{kind[1:]} {what} code {value}"
