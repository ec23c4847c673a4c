"""The fault suite: every damaged input gives one exact line naming the file (and row and field), nothing else.

Each case builds a small valid dataset in ``tmp_path`` with the synthetic generators, damages one
file the way real copies get damaged (empty, header only, cut mid-row, truncated or bit-flipped
gzip, not UTF-8, a typo date) or plants a bad value the readers already reject, and calls the
reader a recipe calls. It asserts the error class (``DataError`` / ``MissingDataError``), that
the message is one line naming the file, the row and the field where there is one, and that
nothing was written (readers never write).

The command-line cases run ``python -m polymodal`` as a user would (about 3 to 10 s each, so only
a few): exit code 2 and exactly one line on stderr for our errors and usage errors, 130 and one
line for Ctrl-C, non-zero from ``data check`` when a dataset is in error, and no run output left.
docs/reliability.md lists the
promises these tests hold.
"""

from __future__ import annotations

import csv
import errno
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from polymodal.data.sources.derm7pt import load_derm7pt
from polymodal.data.sources.drug_vocab import load_drug_vocab
from polymodal.data.sources.mimic import read_mimic3, read_mimic4
from polymodal.data.sources.tcga import load_cohorts
from polymodal.data.sources.time_mmd import MAX_FILL_PERIODS, load_series, load_texts
from polymodal.data.sources.top import COLUMNS, load_top, read_top_csv
from polymodal.encoders import EmbeddingCache
from polymodal.errors import DataError, MissingDataError, StorageError
from tests.derm_synthetic import write_derm7pt
from tests.mimic_synthetic import write_drug_tables, write_mimic3, write_mimic4
from tests.tcga_synthetic import write_tcga

SRC = Path(__file__).resolve().parents[1] / "src"

# --------------------------------------------------------------------------- small valid datasets

TOP = "TOP_clinical_trial_outcome"
CRITERIA = "Inclusion Criteria:\n\n  -  Adults\n\nExclusion Criteria:\n\n  -  Pregnancy\n"
MIMIC3 = "mimic_iii_demo_1.4"
TCGA = "tcga_survival_mcat_umpsnet"


def _top_row(i: int, label: int, **overrides: str) -> dict[str, str]:
    row = {"nctid": f"NCT{i:08d}", "status": "completed", "why_stop": "", "label": str(label), "phase": "phase 1",
           "diseases": "['lung cancer']", "icdcodes": "[\"['C34.90']\"]", "drugs": "['ethanol']",
           "smiless": "['CCO']", "criteria": CRITERIA}
    return {**row, **overrides}


def _write_top_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def make_top(root: Path, n: int = 12) -> Path:
    """TOP phase I: n trials per split, labels alternating, and a tiny ICD-10 table."""
    top = root / TOP
    (top / "icdcode").mkdir(parents=True, exist_ok=True)
    (top / "icdcode" / "icd_10_direct_mapping.csv").write_text(
        'C34,"Malignant neoplasm of bronchus and lung"\nC349,"... unspecified part"\nC3490,"... lung"\n',
        encoding="utf-8")
    for k, split in enumerate(("train", "valid", "test")):
        _write_top_csv(top / f"phase_I_{split}.csv", [_top_row(1000 * k + i, i % 2) for i in range(n)])
    return root


def make_time_mmd(root: Path, domain: str = "Agriculture", n: int = 48) -> Path:
    """A monthly series (OT and one covariate) and a few report and search texts."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2000-01-01", periods=n, freq="MS")
    num, txt = root / "Time-MMD" / "numerical" / domain, root / "Time-MMD" / "textual" / domain
    num.mkdir(parents=True, exist_ok=True)
    txt.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"start_date": dates.strftime("%Y-%m-%d"),
                  "end_date": (dates + pd.offsets.MonthEnd(0)).strftime("%Y-%m-%d"),
                  "OT": rng.normal(10, 1, n).round(3), "X": rng.normal(0, 1, n).round(3)}).to_csv(
        num / f"{domain}.csv", index=False)
    for kind in ("report", "search"):
        pd.DataFrame({"start_date": dates[::6].strftime("%Y-%m-%d"),
                      "end_date": (dates[::6] + pd.offsets.MonthEnd(0)).strftime("%Y-%m-%d"),
                      "fact": [f"prices rose in month {i}" for i in range(0, n, 6)],
                      "preds": "NA"}).to_csv(txt / f"{domain}_{kind}.csv", index=False)
    return root


def make_tcga(root: Path) -> Path:
    write_tcga(root, cohorts=("BLCA", "LUAD"), n=20, n_folds=5)
    return root


def make_mimic(root: Path) -> Path:
    write_drug_tables(root)
    write_mimic3(root / MIMIC3, n_patients=8)
    return root


# --------------------------------------------------------------------------- damage


def empty(path: Path) -> None:
    path.write_bytes(b"")


def header_only(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").splitlines(keepends=True)[0], encoding="utf-8")


def cut_mid_row(path: Path, n: int = 3) -> None:
    """Drop the last n bytes and the final line break: the file now ends inside its last row."""
    data = path.read_bytes().rstrip(b"\r\n")
    path.write_bytes(data[:-n])


def not_utf8(path: Path) -> None:
    """One Latin-1 byte in the last data row (a file saved from a spreadsheet in the wrong encoding)."""
    data = path.read_bytes()
    at = data.rstrip(b"\n").rfind(b"\n") + 2
    path.write_bytes(data[:at] + b"\xe9" + data[at:])


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def bit_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


def edit_csv(path: Path, edit: Callable[[pd.DataFrame], Any], **read: Any) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, **read)
    edit(frame)
    frame.to_csv(path, index=False)


def last_row(path: Path) -> int:
    """The 1-based data row a cut file ends in: every complete line (the header's too) ends with a break."""
    return path.read_bytes().count(b"\n")


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Fault:
    """One damaged input: how to build it, which reader to call, what the error must name."""

    name: str
    make: Callable[[Path], Path]  # builds the valid data under tmp_path, returns the data dir
    damage: Callable[[Path], None]  # damages files under the data dir
    load: Callable[[Path], Any]  # the reader, as a recipe calls it
    file: str  # the file the message must name
    row: int | Callable[[Path], int] | None = None
    field: str | None = None
    match: str = ""  # a regex the message must contain
    error: type[Exception] = DataError


def _at(rel: str, hurt: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda root: hurt(root / rel)


def _append_line(rel: str, line: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        with open(root / rel, "a", encoding="utf-8") as fh:
            fh.write(line)
    return damage


def _top_rows(split: str, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> Callable[[Path], None]:
    return lambda root: _write_top_csv(root / TOP / f"phase_I_{split}.csv", rows, columns)


def _top(root: Path, **kwargs: Any) -> Any:
    return load_top(root, "I", **kwargs)


def _tcga(root: Path) -> Any:
    return load_cohorts(root, ["BLCA", "LUAD"], n_folds=5)


def _tmmd(root: Path) -> Any:
    return load_series(root, "Agriculture"), load_texts(root, "Agriculture")


TRAIN = f"{TOP}/phase_I_train.csv"
BLCA = f"{TCGA}/tcga_blca_all_clean.csv.gz"
SERIES = "Time-MMD/numerical/Agriculture/Agriculture.csv"
REPORT = "Time-MMD/textual/Agriculture/Agriculture_report.csv"

FAULTS = [
    # TOP: damaged files
    Fault("top empty file", make_top, _at(TRAIN, empty), _top, "phase_I_train.csv", match="empty file"),
    Fault("top header only", make_top, _at(TRAIN, header_only), _top, "phase_I_train.csv", match="no data rows"),
    Fault("top not utf-8", make_top, _at(TRAIN, not_utf8), _top, "phase_I_train.csv", match="not UTF-8"),
    Fault("top cut mid-row", make_top, _append_line(TRAIN, "NCT00000999,completed"), _top, "phase_I_train.csv",
          row=13, field="why_stop", match="2 of the header's 10 fields"),
    Fault("top cut inside quoted criteria", make_top, _at(TRAIN, lambda p: cut_mid_row(p, 20)), _top,
          "phase_I_train.csv", row=12, match="malformed CSV"),
    Fault("top icd table not utf-8", make_top, _at(f"{TOP}/icdcode/icd_10_direct_mapping.csv", not_utf8), _top,
          "icd_10_direct_mapping.csv", match="not UTF-8"),
    Fault("top icd table empty", make_top, _at(f"{TOP}/icdcode/icd_10_direct_mapping.csv", empty), _top,
          "icd_10_direct_mapping.csv", match="empty table"),
    Fault("top missing file", make_top, _at(TRAIN, Path.unlink), _top, "phase_I_train.csv", error=MissingDataError),
    # TOP: bad values already handled
    Fault("top missing column", make_top, _top_rows("valid", [_top_row(1, 1)], tuple(c for c in COLUMNS
                                                                                  if c != "smiless")),
          _top, "phase_I_valid.csv", field="smiless", match="lacks column"),
    Fault("top bad label", make_top, _top_rows("train", [_top_row(1, 1), _top_row(2, 2)]), _top,
          "phase_I_train.csv", row=2, field="label", match="label must be 0 or 1, got '2'"),
    Fault("top bad nct id", make_top, _top_rows("test", [_top_row(1, 1, nctid="NCT-17")]), _top,
          "phase_I_test.csv", row=1, field="nctid", match="not an NCT id"),
    Fault("top duplicate id", make_top, _top_rows("test", [_top_row(1, 1), _top_row(1, 0)]), _top,
          "phase_I_test.csv", row=2, field="nctid", match="repeats row 1"),
    Fault("top unparsable smiles (strict)", make_top, _top_rows("train", [_top_row(1, 1, smiless="['C1CC(']")]),
          lambda root: _top(root, strict=True), "phase_I_train.csv", row=1, field="smiless",
          match="unparsable SMILES"),
    Fault("top list literal", make_top, _top_rows("train", [_top_row(1, 1, diseases="['lung")]), _top,
          "phase_I_train.csv", row=1, field="diseases", match="not a python list literal"),
    Fault("top predict input empty", make_top, _at(TRAIN, empty),
          lambda root: read_top_csv(root / TRAIN, require_label=False), "phase_I_train.csv", match="empty file"),
    # TCGA
    Fault("tcga truncated gzip", make_tcga, _at(BLCA, truncate), _tcga, "tcga_blca_all_clean.csv.gz",
          match="compressed file ends early"),
    Fault("tcga bit-flipped gzip", make_tcga, _at(BLCA, bit_flip), _tcga, "tcga_blca_all_clean.csv.gz",
          match="damaged gzip file|compressed file ends early"),
    Fault("tcga empty cohort file", make_tcga, _at(BLCA, empty), _tcga, "tcga_blca_all_clean.csv.gz",
          match="empty file"),
    Fault("tcga header-only cohort file", make_tcga,
          _at(BLCA, lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()).split(b"\n")[0] + b"\n"))),
          _tcga, "tcga_blca_all_clean.csv.gz", match="no data rows"),
    Fault("tcga metadata not JSON", make_tcga, _at(f"{TCGA}/status_all_umpsnet.json",
                                                  lambda p: p.write_text('{"TCGA-BL-0000": {')),
          _tcga, "status_all_umpsnet.json", match="not valid JSON: .* line 1"),
    Fault("tcga bad censorship", make_tcga,
          _at(BLCA, lambda p: edit_csv(p, lambda f: f.__setitem__("censorship", f["censorship"].where(
              f.index != 4, "2")), index_col=0)), _tcga, "tcga_blca_all_clean.csv.gz", row=5, field="censorship",
          match="censorship must be 0 or 1"),
    Fault("tcga split file lacks val", make_tcga,
          _at(f"{TCGA}/splits_umpsnet/splits_3.csv", lambda p: edit_csv(p, lambda f: f.drop(columns="val",
                                                                                           inplace=True))),
          _tcga, "splits_3.csv", field="val", match="split column is missing"),
    # MIMIC-III (plain CSV) and MIMIC-IV (csv.gz)
    Fault("mimic empty file", make_mimic, _at(f"{MIMIC3}/ADMISSIONS.csv", empty), lambda r: read_mimic3(r / MIMIC3),
          "ADMISSIONS.csv", match="empty file"),
    Fault("mimic not utf-8", make_mimic, _at(f"{MIMIC3}/DIAGNOSES_ICD.csv", not_utf8),
          lambda r: read_mimic3(r / MIMIC3), "DIAGNOSES_ICD.csv", match="not UTF-8"),
    Fault("mimic cut mid-row", make_mimic, _at(f"{MIMIC3}/DIAGNOSES_ICD.csv", lambda p: cut_mid_row(p, 2)),
          lambda r: read_mimic3(r / MIMIC3), "DIAGNOSES_ICD.csv",
          row=lambda r: last_row(r / MIMIC3 / "DIAGNOSES_ICD.csv"), match="ends inside this row"),
    Fault("mimic header only", make_mimic, _at(f"{MIMIC3}/PRESCRIPTIONS.csv", header_only),
          lambda r: read_mimic3(r / MIMIC3), "PRESCRIPTIONS.csv", match="no data rows"),
    Fault("mimic bad date", make_mimic,
          _at(f"{MIMIC3}/ADMISSIONS.csv", lambda p: edit_csv(p, lambda f: f.__setitem__(
              "ADMITTIME", f["ADMITTIME"].where(f.index != 2, "2150-13-45 00:00:00")))),
          lambda r: read_mimic3(r / MIMIC3), "ADMISSIONS.csv", row=3, field="admittime", match="malformed date"),
    Fault("mimic missing column", make_mimic,
          _at(f"{MIMIC3}/PROCEDURES_ICD.csv", lambda p: edit_csv(p, lambda f: f.drop(columns="HADM_ID",
                                                                                    inplace=True))),
          lambda r: read_mimic3(r / MIMIC3), "PROCEDURES_ICD.csv", field="hadm_id", match="missing column"),
    Fault("mimic missing file", make_mimic, _at(f"{MIMIC3}/PRESCRIPTIONS.csv", Path.unlink),
          lambda r: read_mimic3(r / MIMIC3), "PRESCRIPTIONS.csv", error=MissingDataError),
    Fault("mimic-iv truncated gzip", lambda r: write_mimic4(r / "mimic-iv", n_patients=6).parent,
          _at("mimic-iv/hosp/admissions.csv.gz", truncate), lambda r: read_mimic4(r / "mimic-iv"),
          "admissions.csv.gz", match="compressed file ends early"),
    Fault("drug table is code, not a literal", make_mimic,
          _at("safedrug_drug_tables/ndc2RXCUI.txt", lambda p: p.write_text("__import__('os').system('true')")),
          load_drug_vocab, "ndc2RXCUI.txt", match="not a Python dict literal"),
    # Time-MMD
    Fault("time-mmd typo date far ahead", make_time_mmd, _append_line(SERIES, "2100-01-01,2100-01-31,10.5,0.1\n"),
          _tmmd, "Agriculture.csv", row=49, field="start_date",
          match=rf"1152 consecutive M periods .* \(limit max_fill={MAX_FILL_PERIODS}\)"),
    Fault("time-mmd long run of missing targets", make_time_mmd,
          _at(SERIES, lambda p: edit_csv(p, lambda f: f.__setitem__("OT", f["OT"].where(~f.index.isin(range(
              10, 30)), "")))), _tmmd, "Agriculture.csv", row=31, field="OT", match="20 consecutive M periods"),
    Fault("time-mmd date off the monthly grid", make_time_mmd, _append_line(SERIES, "2004-01-15,2004-01-31,10.5,0.1\n"),
          _tmmd, "Agriculture.csv", row=49, field="start_date", match="not on the first of the month"),
    Fault("time-mmd empty series", make_time_mmd, _at(SERIES, empty), _tmmd, "Agriculture.csv", match="empty file"),
    Fault("time-mmd series cut mid-row", make_time_mmd, _at(SERIES, cut_mid_row), _tmmd, "Agriculture.csv", row=48,
          match="ends inside this row"),
    Fault("time-mmd report not utf-8", make_time_mmd, _at(REPORT, not_utf8), _tmmd, "Agriculture_report.csv",
          match="not UTF-8"),
    Fault("time-mmd empty report", make_time_mmd, _at(REPORT, empty), _tmmd, "Agriculture_report.csv",
          match="empty file"),
    Fault("time-mmd bad text date", make_time_mmd,
          _at(REPORT, lambda p: edit_csv(p, lambda f: f.__setitem__("end_date", f["end_date"].where(
              f.index != 3, "2000-02-30x")))), _tmmd, "Agriculture_report.csv", row=4, field="end_date",
          match="unparsable date"),
    # Derm7pt+
    Fault("derm unknown concept value", lambda r: write_derm7pt(r, n=12).parent,
          _at("derm7pt_plus/meta/meta_resolved.csv", lambda p: edit_csv(p, lambda f: f.__setitem__(
              "streaks", f["streaks"].where(f.index != 6, "purple")))),
          lambda r: load_derm7pt(r, check_images=False), "meta_resolved.csv", row=7, field="streaks",
          match="purple"),
    Fault("derm meta cut mid-row", lambda r: write_derm7pt(r, n=12).parent,
          _at("derm7pt_plus/meta/meta_resolved.csv", lambda p: cut_mid_row(p, 2)),
          lambda r: load_derm7pt(r, check_images=False), "meta_resolved.csv", row=12, field="melanoma",
          match="11 of the header's 12 fields"),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_reader_fault_is_one_exact_line(fault: Fault, tmp_path: Path) -> None:
    root = fault.make(tmp_path / "data")
    fault.damage(root)
    before = _snapshot(tmp_path)
    with pytest.raises(fault.error) as caught:
        fault.load(root)
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message, message
    assert fault.file in message, message
    row = fault.row(root) if callable(fault.row) else fault.row
    if row is not None:
        assert f"row {row}" in message, message
        assert getattr(caught.value, "row", row) == row
    if fault.field is not None:
        assert f"field '{fault.field}'" in message, message
    if fault.match:
        assert re.search(fault.match, message), message
    assert _snapshot(tmp_path) == before  # a reader writes nothing, not even a cache file


def test_every_generated_dataset_loads_before_damage(tmp_path: Path) -> None:
    """The faults above are the damage, not the generators: each undamaged dataset loads."""
    top, tcga, tmmd = make_top(tmp_path / "top"), make_tcga(tmp_path / "tcga"), make_time_mmd(tmp_path / "tmmd")
    mimic = make_mimic(tmp_path / "mimic")
    assert _top(top).sizes() == {"train": 12, "valid": 12, "test": 12}
    assert len(_tcga(tcga).records) == 40
    series, texts = _tmmd(tmmd)
    assert len(series) == 48 and series.channels == ["OT", "X"] and len(texts) == 16
    assert len(read_mimic3(mimic / MIMIC3).admissions) > 8 and load_drug_vocab(mimic).ddi_pairs


def test_fill_bound_is_configurable_and_real_gaps_fit_the_default(tmp_path: Path) -> None:
    root = make_time_mmd(tmp_path)
    with open(root / SERIES, "a", encoding="utf-8") as fh:
        fh.write("2005-01-01,2005-01-31,10.5,0.1\n")  # 2003-12 is the last of 48 months: 12 periods to fill
    series = load_series(root, "Agriculture")  # 12 <= MAX_FILL_PERIODS: filled, and said so
    assert len(series) == 61 and any("12 missing periods inserted" in a for a in series.actions)
    with pytest.raises(DataError, match="12 consecutive M periods"):
        load_series(root, "Agriculture", max_fill=11)


def test_a_message_quoting_line_breaks_stays_one_line() -> None:
    err = DataError("malformed CSV: Error tokenizing data.\n  C error: EOF inside string", file="/x/a.csv", row=3)
    assert str(err) == "a.csv, row 3: malformed CSV: Error tokenizing data. C error: EOF inside string"


def test_cut_file_with_final_newline_missing_but_row_complete_says_how_to_fix(tmp_path: Path) -> None:
    root = make_time_mmd(tmp_path)
    path = root / SERIES
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with pytest.raises(DataError, match="end the file with a newline"):
        load_series(root, "Agriculture")


def test_disk_full_while_writing_the_cache_leaves_no_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC mid-shard: one StorageError naming the shard, no shard or temp file, and a later run succeeds."""

    class Encoder:
        cache_key, dim = "fake:enospc", 4

        def encode(self, items: list[str]) -> np.ndarray:
            return np.ones((len(items), 4), dtype=np.float32)

    def full_disk(fh: Any, **arrays: Any) -> None:
        fh.write(b"PK\x03\x04 half a zip")  # some bytes reach the disk first, as they do
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = EmbeddingCache(tmp_path / "cache")
    monkeypatch.setattr("polymodal.encoders.cache.np.savez", full_disk)
    with pytest.raises(StorageError) as caught:
        cache.encode(Encoder(), ["a", "b"])
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message and "shard-" in message
    directory = cache.encoder_dir(Encoder())
    assert sorted(p.name for p in directory.iterdir()) == ["meta.json"]  # no shard, no .tmp
    monkeypatch.undo()
    assert EmbeddingCache(tmp_path / "cache").encode(Encoder(), ["a", "b"]).shape == (2, 4)


# --------------------------------------------------------------------------- the command line


def _cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(SRC.parent), env.get("PYTHONPATH", "")])
    env["POLYMODAL_DATA"] = str(cwd / "no-default-data")  # never the real data
    env["POLYMODAL_CACHE"] = str(cwd / "cache")
    return subprocess.run([sys.executable, "-m", "polymodal", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _one_line(stderr: str) -> str:
    """stderr must be exactly one non-empty line (a trailing line break allowed)."""
    text = stderr[:-1] if stderr.endswith("\n") else stderr
    assert text.strip() and "\n" not in text, f"stderr is not one line: {stderr!r}"
    return text


def _no_run_output(out: Path) -> None:
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not [p for p in left if p.name in ("predictions.csv", "metrics.json", "report.md") or
                p.name.endswith(".tmp")], left


@dataclass(frozen=True)
class CliFault:
    name: str
    make: Callable[[Path], Path]
    damage: Callable[[Path], None]
    args: list[str]  # "{data}" and "{out}" are filled in
    names: tuple[str, ...]  # what the one line on stderr must contain


CLI_FAULTS = [
    CliFault("run mexa-ctp on a header-only train file", make_top, _at(TRAIN, header_only),
             ["run", "mexa-ctp", "--data-dir", "{data}", "--out", "{out}", "--quiet"],
             ("phase_I_train.csv", "no data rows")),
    CliFault("run mexa-ctp on a bad label", make_top, _top_rows("train", [_top_row(1, 1), _top_row(2, 7)]),
             ["run", "mexa-ctp", "--data-dir", "{data}", "--out", "{out}", "--quiet"],
             ("phase_I_train.csv", "row 2", "field 'label'")),
    CliFault("run umpsnet on a bit-flipped cohort file", make_tcga, _at(BLCA, bit_flip),
             ["run", "umpsnet", "--data-dir", "{data}", "--out", "{out}", "--quiet"],
             ("tcga_blca_all_clean.csv.gz",)),
    CliFault("run text-forecast on a typo date", make_time_mmd,
             _append_line(SERIES, "2100-01-01,2100-01-31,10.5,0.1\n"),
             ["run", "text-forecast", "--data-dir", "{data}", "--out", "{out}", "--quiet", "--domain", "Agriculture"],
             ("Agriculture.csv", "row 49", "field 'start_date'")),
    CliFault("run nla-mmr on a MIMIC table cut mid-row", make_mimic,
             _at(f"{MIMIC3}/PRESCRIPTIONS.csv", lambda p: cut_mid_row(p, 4)),
             ["run", "nla-mmr", "--data-dir", "{data}", "--out", "{out}", "--quiet"],
             ("PRESCRIPTIONS.csv", "row ", "ends inside this row")),
]


@pytest.mark.parametrize("fault", CLI_FAULTS, ids=[f.name for f in CLI_FAULTS])
def test_cli_reader_fault_exits_2_with_one_line(fault: CliFault, tmp_path: Path) -> None:
    data, out = fault.make(tmp_path / "data"), tmp_path / "run"
    fault.damage(data)
    result = _cli([a.format(data=data, out=out) for a in fault.args], tmp_path)
    line = _one_line(result.stderr)
    assert result.returncode == 2, (result.returncode, result.stderr)
    for part in fault.names:
        assert part in line, line
    _no_run_output(out)


def test_data_check_exits_nonzero_on_a_dataset_in_error(tmp_path: Path) -> None:
    """One check of a directory with two damaged datasets: both named in the table, and a non-zero exit."""
    data = make_tcga(make_top(tmp_path / "data"))
    empty(data / TRAIN)
    truncate(data / BLCA)
    result = _cli(["data", "check", "--data-dir", str(data), "--json"], tmp_path)
    datasets = json.loads(result.stdout)["datasets"]
    for name, parts in (("TOP phase I", ("phase_I_train.csv", "empty file")),
                        (TCGA, ("tcga_blca_all_clean.csv.gz", "ends early"))):
        assert datasets[name]["status"] == "error" and all(p in datasets[name]["details"] for p in parts), name
    assert result.returncode != 0
    assert result.stderr.count("\n") <= 1, result.stderr  # at most a one-line summary


def test_data_check_on_intact_data_exits_0_and_loads_each_dataset(tmp_path: Path) -> None:
    data = make_mimic(make_time_mmd(make_tcga(make_top(tmp_path / "data"))))
    write_derm7pt(data, n=12)
    result = _cli(["data", "check", "--data-dir", str(data), "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    datasets = json.loads(result.stdout)["datasets"]
    for name in ("TOP phase I", TCGA, MIMIC3, "drug_vocab_ethos", "derm7pt_plus"):
        assert datasets[name]["status"] == "ok", (name, datasets[name])
    # Only one Time-MMD domain was generated: the folder is partial, naming the first absent file.
    assert datasets["Time-MMD"]["status"] == "partial" and "Climate.csv" in datasets["Time-MMD"]["details"]


def test_usage_error_is_one_line_exit_2(tmp_path: Path) -> None:
    result = _cli(["data", "check", "--no-such-option"], tmp_path)
    assert result.returncode == 2
    assert "--no-such-option" in _one_line(result.stderr)


# typer turns a KeyboardInterrupt into Exit(130), which app(standalone_mode=False) returns: cli.main
# exits 130 without the one line (a Ctrl-C during training, seen by its SIGINT handler, does print it).
def test_ctrl_c_while_reading_is_one_line_exit_130(tmp_path: Path) -> None:
    """SIGINT while a reader is blocked on a file (a FIFO that only this test writes to): exit 130, one line."""
    data = make_tcga(tmp_path / "data")
    meta = data / TCGA / "status_all_umpsnet.json"
    meta.unlink()
    os.mkfifo(meta)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(SRC.parent), env.get("PYTHONPATH", "")])
    # A shell's background job starts with SIGINT ignored, and Python then never installs its handler.
    proc = subprocess.Popen([sys.executable, "-m", "polymodal", "data", "check", "--data-dir", str(data)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    writer = None
    try:
        deadline = time.monotonic() + 120
        while writer is None:  # opening the write end succeeds once the reader has opened the FIFO
            try:
                writer = os.open(meta, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as err:
                if err.errno != errno.ENXIO or time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        time.sleep(0.2)  # the reader is now blocked in read()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if writer is not None:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "interrupt" in _one_line(stderr).lower()


def test_gzip_helper_reads_what_pandas_writes(tmp_path: Path) -> None:
    """The shared reader decompresses itself; a valid .csv.gz reads exactly as pandas reads it."""
    from polymodal.data.tables import read_csv

    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "", "z"]})
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as fh:
        frame.to_csv(fh, index=False)
    assert read_csv(path).equals(pd.read_csv(path))
