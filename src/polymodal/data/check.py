"""``polymodal data check``: which datasets the data directory holds, and whether they load.

Each known dataset gets a status:

* ``ok``: every file polymodal needs is there (and, for a TOP phase with all three splits, the
  adapter reads it without error);
* ``partial``: some of the files are there, not all (TOP phase II and III ship without their
  largest files in ../shared/data, for example);
* ``missing``: nothing is there;
* ``error``: the files are there but the adapter rejects them (the message names file, row, field).

Every dataset a recipe reads is loaded with the reader that recipe uses (without decoding images
or building cohorts, so the check stays quick): TOP, Time-MMD (every domain's series and texts),
the MIMIC-III demo, the drug tables, the TCGA cohorts, Derm7pt+ and PH2. A folder that is present
but lacks a file its reader needs is ``partial``. For the other folders of ../shared/data (see its
SOURCES.md) the check reports presence and a file count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polymodal.data.icd import CODES_FILE, NAMES_FILE
from polymodal.data.paths import resolve_data_dir
from polymodal.data.sources.top import SPLITS, TOP_DIR, load_top
from polymodal.errors import MissingDataError, PolymodalError

__all__ = ["OTHER_DATASETS", "TOP_PHASES", "check_data_dir"]

TOP_PHASES = ("I", "II", "III")

#: Folders polymodal knows besides TOP (../shared/data/SOURCES.md and SOURCES-images.md).
OTHER_DATASETS = (
    "mimic_iii_demo_1.4",
    "drug_vocab_ethos",
    "safedrug_drug_tables",
    "Time-MMD",
    "fashion_product_hierarchy",
    "fashion_product_images",
    "MIntRec_text",
    "MELD_text",
    "tcga_survival_mcat_umpsnet",
    "pneumoniamnist",
    "movielens_latest_small",
    "ph2",
    "derm7pt_plus",
)

Entry = dict[str, str]


def check_data_dir(data_dir: str | Path | None = None) -> dict[str, Any]:
    """Inspect a data directory.

    Args:
        data_dir: the directory, else ``$POLYMODAL_DATA``, else ``~/.cache/polymodal/data``.

    Returns:
        ``{"data_dir": str, "datasets": {name: {"status": "ok"|"missing"|"partial"|"error",
        "details": str}}}`` with one entry per TOP phase (``TOP phase I`` ...),
        one for TOP's ICD-10 tables, and one per other known folder. A data directory that does not
        exist gives every dataset ``missing`` with a details line saying so (never an exception).
    """
    root = resolve_data_dir(data_dir)
    names = [*(_top_name(p) for p in TOP_PHASES), _icd_name(), *OTHER_DATASETS]
    if not root.is_dir():
        why = "is not a directory" if root.exists() else "does not exist"
        details = f"data directory {root} {why}; pass --data-dir or set $POLYMODAL_DATA"
        return {"data_dir": str(root), "datasets": {name: _entry("missing", details) for name in names}}
    datasets: dict[str, Entry] = {_top_name(phase): _check_top_phase(root, phase) for phase in TOP_PHASES}
    datasets[_icd_name()] = _check_icd(root)
    datasets.update({name: _check_folder(root / name) for name in OTHER_DATASETS})
    done: dict[Callable[[Path], str], Entry] = {}  # the drug tables' reader serves two folders
    for name, reader in _READERS.items():
        if datasets[name]["status"] != "missing":
            datasets[name] = done[reader] = done.get(reader) or _check_reader(root, reader)
    return {"data_dir": str(root), "datasets": datasets}


def _top_name(phase: str) -> str:
    return f"TOP phase {phase}"


def _icd_name() -> str:
    return "TOP ICD-10 tables"


def _entry(status: str, details: str) -> Entry:
    return {"status": status, "details": details}


def _check_top_phase(root: Path, phase: str) -> Entry:
    """Which split files exist; a complete phase is loaded with the adapter the recipes use."""
    folder = root / TOP_DIR
    files = {split: folder / f"phase_{phase}_{split}.csv" for split in SPLITS}
    present = [split for split, path in files.items() if path.is_file()]
    absent = [path.name for split, path in files.items() if split not in present]
    if not present:
        return _entry("missing", f"no phase_{phase}_{{train,valid,test}}.csv in {folder}")
    if absent:
        return _entry("partial", f"has {', '.join(present)}; missing {', '.join(absent)}")
    try:
        splits = load_top(root, phase)
    except (PolymodalError, OSError) as err:
        # A DataError names file, row and field; a MissingDataError here means the ICD tables.
        return _entry("error", str(err))
    sizes = " / ".join(f"{name} {n}" for name, n in splits.sizes().items())
    counts = splits.skips.counts
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "none"
    return _entry("ok", f"loaded {sizes} trials; skips and repairs: {skipped}")


def _check_icd(root: Path) -> Entry:
    folder = root / TOP_DIR / "icdcode"
    names, codes = folder / NAMES_FILE, folder / CODES_FILE
    if not names.is_file():
        status = "partial" if codes.is_file() else "missing"
        return _entry(status, f"no {NAMES_FILE} in {folder} (every TOP phase needs it)")
    if not codes.is_file():
        return _entry("partial", f"{NAMES_FILE} present; no {CODES_FILE} (billable codes then count as "
                                 "repairs under their named ancestors)")
    return _entry("ok", f"{NAMES_FILE} and {CODES_FILE} present")


def _check_folder(folder: Path) -> Entry:
    """Presence and file count only: no recipe reads these folders yet."""
    if not folder.is_dir():
        return _entry("missing", f"no folder {folder}")
    try:
        n = sum(1 for path in folder.rglob("*") if path.is_file())
    except OSError as err:
        return _entry("error", f"cannot list {folder}: {err}")
    if n == 0:
        return _entry("missing", f"folder {folder} is empty")
    return _entry("ok", f"{n} file{'s' if n != 1 else ''}")


def _check_reader(root: Path, reader: Callable[[Path], str]) -> Entry:
    """Run a dataset's reader: ``ok`` with its summary, ``partial`` if a file is absent, ``error`` if one is bad."""
    try:
        return _entry("ok", reader(root))
    except MissingDataError as err:
        return _entry("partial", str(err))
    except (PolymodalError, OSError) as err:  # a DataError names file, row and field
        return _entry("error", str(err))


def _read_time_mmd(root: Path) -> str:
    from polymodal.data.sources.time_mmd import DOMAINS, load_series, load_texts

    sizes = []
    for domain in DOMAINS:
        series, texts = load_series(root, domain), load_texts(root, domain)
        sizes.append(f"{domain} {len(series)} {series.freq} / {len(texts)} texts")
    return "; ".join(sizes)


def _read_mimic3_demo(root: Path) -> str:
    from polymodal.data.sources.mimic import read_mimic3

    tables = read_mimic3(root / "mimic_iii_demo_1.4")
    return (f"{len(tables.admissions)} admissions, {len(tables.diagnoses)} diagnoses, {len(tables.procedures)} "
            f"procedures, {len(tables.prescriptions)} prescriptions")


def _read_drug_tables(root: Path) -> str:
    from polymodal.data.sources.drug_vocab import load_drug_vocab

    vocab = load_drug_vocab(root)  # reads both drug folders
    return f"{len(vocab.ndc_to_atc)} NDCs, {len(vocab.atc3_smiles)} ATC3 with SMILES, {len(vocab.ddi_pairs)} DDI pairs"


def _read_tcga(root: Path) -> str:
    from polymodal.data.sources.tcga import (
        FOLDER,
        METADATA,
        SIGNATURES,
        SPLITS,
        read_cohort,
        read_folds,
        read_metadata,
        read_signatures,
    )
    from polymodal.data.splits import SkipReport

    folder = root / FOLDER
    metadata = read_metadata(folder / METADATA)
    read_signatures(folder / SIGNATURES)
    n_folds = len(list((folder / SPLITS).glob("splits_*.csv")))
    if not n_folds:
        raise MissingDataError(f"no splits_<k>.csv in {folder / SPLITS}")
    read_folds(folder / SPLITS, n_folds)
    files = sorted(folder.glob("tcga_*_all_clean.csv*"))
    if not files:
        raise MissingDataError(f"no tcga_<cohort>_all_clean.csv[.gz] in {folder}")
    skips, sizes = SkipReport(), []
    for path in files:
        records, _ = read_cohort(path, metadata, skips)
        sizes.append(f"{path.name.split('_')[1].upper()} {len(records)}")
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(skips.counts.items())) or "none"
    return f"patients: {', '.join(sizes)}; {n_folds} folds; skips: {skipped}"


def _read_derm7pt(root: Path) -> str:
    from polymodal.data.sources.derm7pt import SPLIT_KINDS, load_derm7pt

    return "; ".join(f"{kind} " + " / ".join(f"{k} {n}" for k, n in load_derm7pt(root, kind, check_images=False)
                                             .sizes().items()) for kind in SPLIT_KINDS)


def _read_ph2(root: Path) -> str:
    from polymodal.data.sources.ph2 import load_ph2

    records, _ = load_ph2(root, check_images=False)
    return f"{len(records)} images listed (image files not decoded)"


#: Folders whose reader the check runs, and the reader (it returns a one-line summary).
_READERS: dict[str, Callable[[Path], str]] = {
    "Time-MMD": _read_time_mmd,
    "mimic_iii_demo_1.4": _read_mimic3_demo,
    "drug_vocab_ethos": _read_drug_tables,
    "safedrug_drug_tables": _read_drug_tables,
    "tcga_survival_mcat_umpsnet": _read_tcga,
    "derm7pt_plus": _read_derm7pt,
    "ph2": _read_ph2,
}
