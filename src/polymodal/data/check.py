"""``polymodal data check``: which datasets the data directory holds, and whether they load.

Each known dataset gets a status:

* ``ok``: every file polymodal needs is there (and, for a TOP phase with all three splits, the
  adapter reads it without error);
* ``partial``: some of the files are there, not all (TOP phase II and III ship without their
  largest files in ../shared/data, for example);
* ``missing``: nothing is there;
* ``error``: the files are there but the adapter rejects them (the message names file, row, field).

Only TOP is loaded: it is the only dataset a recipe reads so far. For the other folders of
../shared/data (see its SOURCES.md) the check reports presence and a file count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polymodal.data.icd import CODES_FILE, NAMES_FILE
from polymodal.data.paths import resolve_data_dir
from polymodal.data.sources.top import SPLITS, TOP_DIR, load_top
from polymodal.errors import PolymodalError

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
