"""TOP: the Trial Outcome Prediction benchmark (Fu et al., HINT, 2022).

Source: github.com/futianfan/clinical-trial-outcome-prediction, folder ``data/`` (ClinicalTrials.gov
snapshot of 2021-02-20, outcome labels from IQVIA; non-commercial academic use only). Each CSV row is
one trial with the columns ``nctid, status, why_stop, label, phase, diseases, icdcodes, drugs,
smiless, criteria``. One Record per row::

    Record(id="NCT01187615", target=0.0,
           inputs={"drugs": [canonical SMILES], "drug_names": [...], "diseases": [...],
                   "icd_codes": ["D02.20", ...], "inclusion": [...], "exclusion": [...]},
           meta={"nct_number": 1187615, "phase": "phase 1", "file": "phase_I_train.csv", "row": 1})

``status`` and ``why_stop`` are never read into a Record: a trial's status ("terminated",
"withdrawn") and its reason to stop ("lack of efficacy") give the outcome away.

Tasks. TOP's phase-level task ("outcome") predicts whether a phase I, II or III trial succeeds;
files ``phase_{I,II,III}_{train,valid,test}.csv``. HINT also reports an indication-level task
(``HINT/learn_indication.py``: will the drug pass all three phases), which reads
``indication_{train,valid,test}.csv``; the repository never published those files and its data
README does not describe them, so ``task="indication"`` loads them only if you supply them.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rdkit import Chem, rdBase

from polymodal.data.criteria import split_criteria
from polymodal.data.icd import IcdHierarchy
from polymodal.data.schema import Record
from polymodal.data.splits import DatasetSplits, SkipReport
from polymodal.data.tables import read_csv
from polymodal.errors import ConfigError, DataError, MissingDataError

__all__ = ["COLUMNS", "INPUT_KEYS", "TOP_DIR", "load_top", "parse_phase", "read_top_csv"]

TOP_DIR = "TOP_clinical_trial_outcome"
REPO = "futianfan/clinical-trial-outcome-prediction"
SNAPSHOT = "ClinicalTrials.gov snapshot 2021-02-20"
COLUMNS = ("nctid", "status", "why_stop", "label", "phase", "diseases", "icdcodes", "drugs", "smiless",
           "criteria")
# Columns a trial to be scored may lack: its outcome is unknown, and status/why_stop are never read.
UNLABELED_OPTIONAL = ("status", "why_stop", "label", "phase")
INPUT_KEYS = ("drugs", "drug_names", "diseases", "icd_codes", "inclusion", "exclusion")
SPLITS = ("train", "valid", "test")
TASKS = ("outcome", "indication")

_PHASES = {"1": "I", "2": "II", "3": "III", "I": "I", "II": "II", "III": "III", "TOY": "toy"}
_NCT = re.compile(r"^NCT(\d{8})$")


def parse_phase(phase: str | int) -> str:
    """Canonical phase name: "1", "phase 1", "Phase_I" -> "I" (likewise II, III); "toy" -> "toy".

    Raises:
        ConfigError: anything else.
    """
    text = re.sub(r"^phase[\s_-]*", "", str(phase).strip(), flags=re.IGNORECASE).upper()
    if text not in _PHASES:
        raise ConfigError(f"unknown TOP phase {phase!r}: use 'I', 'II', 'III' (or 1, 2, 3) or 'toy'")
    return _PHASES[text]


def load_top(data_dir: str | Path, phase: str = "I", *, task: str = "outcome",
             strict: bool = False) -> DatasetSplits:
    """Load one TOP task as train / valid / test Records.

    Args:
        data_dir: the polymodal data directory; its child ``TOP_clinical_trial_outcome/`` holds the
            CSV files and ``icdcode/``.
        phase: "I", "II", "III" (also 1, "phase 2" ...) or "toy" (the tutorial files ``toy_*.csv``).
            Ignored for ``task="indication"``.
        task: "outcome" (phase-level success, TOP's benchmark) or "indication" (see module docstring).
        strict: raise a DataError on an unparsable SMILES or an unknown ICD code instead of dropping
            it and counting it in ``splits.skips``.

    Returns:
        DatasetSplits with ``files`` (split -> path), ``description`` and ``skips``.

    Raises:
        MissingDataError: a split file is absent (all missing paths are named).
        DataError: malformed CSV, missing column, bad NCT id / label / literal list (file, row, field).
        ConfigError: unknown phase or task.
    """
    root = Path(data_dir) / TOP_DIR
    stem, what = _stem(phase, task)
    paths = {split: root / f"{stem}_{split}.csv" for split in SPLITS}
    _require(paths, what, task)
    icd = IcdHierarchy.from_data_dir(data_dir)
    skips = SkipReport()
    parsed = {split: _read_split(path, _RowParser(path, icd, strict, skips)) for split, path in paths.items()}
    return DatasetSplits(
        train=parsed["train"], valid=parsed["valid"], test=parsed["test"], skips=skips,
        files={split: str(path) for split, path in paths.items()},
        description=f"TOP {what} ({REPO}, {SNAPSHOT})",
    )


def read_top_csv(path: str | Path, *, require_label: bool = True, strict: bool = False,
                 icd: IcdHierarchy | None = None) -> tuple[list[Record], SkipReport]:
    """Read one CSV in TOP's format, with the same row parser as :func:`load_top`.

    This is how new trials are scored (``polymodal predict``): with ``require_label=False`` the
    columns ``label``, ``phase``, ``status`` and ``why_stop`` may be absent and an empty label cell
    gives ``target = NaN``; a label that is present must still be 0 or 1.

    Args:
        path: the CSV file.
        require_label: every row must carry a 0/1 label (and every TOP column must exist).
        strict: raise a DataError on an unparsable SMILES or an unknown ICD code instead of
            dropping it and counting it in the returned SkipReport.
        icd: the ICD-10 hierarchy; by default the ``icdcode/`` folder beside the file, as in TOP's
            layout (a fitted TrialFeaturizer carries the one it was trained with: pass ``.icd``).

    Returns:
        The Records in file order, and what was skipped or repaired.

    Raises:
        MissingDataError: the file (or the default ICD table) is absent.
        DataError: malformed CSV, missing column, bad NCT id / label / literal list (file, row, field).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"TOP-format CSV not found: {path}")
    icd = icd if icd is not None else IcdHierarchy.from_data_dir(path.parent / "icdcode")
    skips = SkipReport()
    optional = () if require_label else UNLABELED_OPTIONAL
    parse = _RowParser(path, icd, strict, skips, require_label=require_label)
    return _read_split(path, parse, optional=optional), skips


def _stem(phase: str | int, task: str) -> tuple[str, str]:
    """File stem and a human name for the requested task."""
    if task == "indication":
        return "indication", "indication-level outcome"
    if task != "outcome":
        raise ConfigError(f"unknown TOP task {task!r}: use one of {TASKS}")
    name = parse_phase(phase)
    return ("toy", "toy (tutorial subset)") if name == "toy" else (f"phase_{name}", f"phase {name}")


def _require(paths: dict[str, Path], what: str, task: str) -> None:
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if not missing:
        return
    message = (f"TOP {what}: missing {', '.join(missing)}. These files come from the TOP benchmark repository "
               f"https://github.com/{REPO} (folder data/); put them in {paths['train'].parent}.")
    if task == "indication":
        # Why the usual fix does not apply: upstream never published these files.
        message += (" Note: HINT/learn_indication.py reads data/indication_{train,valid,test}.csv, but the "
                    "repository never published them and its data README does not define them; "
                    "use task='outcome' with phase I, II or III.")
    raise MissingDataError(message)


def _read_split(path: Path, parse: Callable[[int, Any], Record], *, optional: Iterable[str] = ()) -> list[Record]:
    frame = _read_csv(path, optional=optional)
    records = [parse(i, row) for i, row in enumerate(frame.itertuples(index=False), start=1)]
    seen: dict[str, int] = {}
    for record in records:
        if record.id in seen:
            raise DataError(f"NCT id {record.id} repeats row {seen[record.id]}", file=path,
                            row=record.meta["row"], field="nctid")
        seen[record.id] = record.meta["row"]
    return records


def _read_csv(path: Path, *, optional: Iterable[str] = ()) -> pd.DataFrame:
    """The file as strings (empty cells stay ""), with the expected columns and at least one row, else a DataError.

    Columns in ``optional`` may be absent; they are then added as empty text. A file cut mid-row is
    caught without the final-newline rule (a hand-written file to score may lack its last line
    break): TOP's last column, ``criteria``, is quoted multi-line text, so a cut inside it is a parser
    error, and a row cut before it has fewer fields than the header (``check_fields``).
    """
    # Every cell is text: "NA" is a valid disease abbreviation, not a missing value.
    frame = read_csv(path, final_newline=False, require_rows=True, check_fields=True, dtype=str,
                     keep_default_na=False)
    for column in set(optional) - set(frame.columns):
        frame[column] = ""
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(f"header row lacks column(s) {missing}; it has {list(frame.columns)}", file=path,
                        field=missing[0])
    return frame[list(COLUMNS)]


@dataclass
class _RowParser:
    """Turns one CSV row into a Record; remembers canonical SMILES across rows (drugs repeat)."""

    path: Path
    icd: IcdHierarchy
    strict: bool
    skips: SkipReport
    require_label: bool = True
    _smiles: dict[str, str | None] = field(default_factory=dict)

    def __call__(self, row: int, values: Any) -> Record:
        """Record for data row ``row`` (1-based); ``values`` has one attribute per column."""
        nct = _NCT.match(values.nctid.strip())
        if nct is None:
            raise self._error(row, "nctid", f"not an NCT id: {values.nctid!r}")
        inclusion, exclusion = split_criteria(values.criteria)
        inputs = {
            "drugs": self._drugs(row, self._strings(row, "smiless", values.smiless)),
            "drug_names": _unique(name.strip() for name in self._strings(row, "drugs", values.drugs)),
            "diseases": _unique(d.strip().lower() for d in self._strings(row, "diseases", values.diseases)),
            "icd_codes": self._codes(row, values.icdcodes),
            "inclusion": inclusion,
            "exclusion": exclusion,
        }
        for key, value in inputs.items():
            if not value:  # a missing modality is allowed, but reported
                self.skips.add(f"missing modality: {key}", self._where(row, values.nctid))
        meta = {"nct_number": int(nct.group(1)), "phase": values.phase.strip(), "file": self.path.name,
                "row": row}
        return Record(id=values.nctid.strip(), inputs=inputs, target=self._label(row, values.label), meta=meta)

    def _label(self, row: int, text: str) -> float:
        if not self.require_label and not text.strip():
            return math.nan  # a trial to be scored: its outcome is not known yet
        try:
            label = float(text)
        except ValueError:
            label = None
        if label not in (0.0, 1.0):
            raise self._error(row, "label", f"label must be 0 or 1, got {text!r}")
        return label

    def _strings(self, row: int, column: str, text: str) -> list[str]:
        """A python-literal list of strings ("['a', 'b']"); an empty cell is an empty list."""
        if not text.strip():
            return []
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise self._error(row, column, f"not a python list literal: {_short(text)}") from None
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise self._error(row, column, f"expected a list of strings, got {_short(text)}")
        return list(value)

    def _drugs(self, row: int, smiles_list: list[str]) -> list[str]:
        canonical: list[str] = []
        for smiles in smiles_list:
            smiles = smiles.strip()
            if smiles not in self._smiles:
                self._smiles[smiles] = _canonical_smiles(smiles)
            if self._smiles[smiles] is None:
                self._skip_or_raise(row, "smiless", "unparsable SMILES", smiles)
            else:
                canonical.append(self._smiles[smiles])
        return _unique(canonical)

    def _codes(self, row: int, text: str) -> list[str]:
        """Flatten TOP's doubly nested code lists: ``["['D02.20', 'D02.21']", "['C34.90']"]``."""
        codes: list[str] = []
        for group in self._strings(row, "icdcodes", text):
            codes.extend(self._strings(row, "icdcodes", group))
        kept: list[str] = []
        for code in _unique(code.strip() for code in codes if code.strip()):
            if self.icd.is_known(code):
                kept.append(self.icd.normalize(code))
            elif (ancestor := self.icd.known_ancestor(code)) is not None:
                # A well-formed code newer than TOP's 2016 tables ("F32.A"): keep it, its hierarchy
                # above the unknown level is known. Counted so the report shows how many.
                kept.append(self.icd.normalize(code))
                self.skips.add("ICD code not in tables, kept under known ancestor",
                               f"{self.path.name} row {row}: {code!r} (under {ancestor})")
            else:
                self._skip_or_raise(row, "icdcodes", "unknown ICD-10 code", code)
        return kept

    def _skip_or_raise(self, row: int, column: str, reason: str, value: str) -> None:
        if self.strict:
            raise self._error(row, column, f"{reason} {_short(value)}")
        self.skips.add(reason, f"{self.path.name} row {row}: {_short(value)}")

    def _error(self, row: int, column: str, message: str) -> DataError:
        return DataError(message, file=self.path, row=row, field=column)

    def _where(self, row: int, nctid: str) -> str:
        return f"{self.path.name} row {row} ({nctid.strip()})"


def _canonical_smiles(smiles: str) -> str | None:
    """RDKit canonical SMILES, or None when RDKit cannot parse it."""
    if not smiles:
        return None
    with rdBase.BlockLogs():  # a bad SMILES is counted in the SkipReport, not printed to stderr
        mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def _unique(items: Iterable[str]) -> list[str]:
    """Non-empty items, first occurrence kept, order kept."""
    return [item for item in dict.fromkeys(items) if item]


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
