"""Drug vocabularies for medication recommendation: NDC/GSN/name -> ATC, ATC3 SMILES, texts, DDI pairs.

Reads two folders of the data directory (both read-only):

* ``safedrug_drug_tables/`` (SafeDrug @ 88ce5c37): ``ndc2RXCUI.txt`` (a Python dict literal NDC ->
  RXCUI), ``atc3toSMILES.json`` (ATC3 -> up to 3 SMILES), ``ddi_pairs_atc3_twosides.csv`` (337
  undirected TWOSIDES pairs over ATC3) and ``med_voc_atc3.txt``.
* ``drug_vocab_ethos/`` (ETHOS, MIT): ``gsn_atc_ndc_mapping.csv.gz`` (GSN, ATC, NDC),
  ``mimic_drug_to_atc.csv.gz`` (drug name -> ATC) and ``atc_coding.csv.gz`` (ATC code -> name, every level).

SafeDrug maps NDC -> RXCUI -> ATC4 with GAMENet's ``ndc2atc_level4.csv``; that RXCUI -> ATC table is
not in the data directory, so NDC -> ATC comes from ETHOS's NDC table (then GSN, then drug name)
and is truncated to ATC level 3 (first four characters) exactly as SafeDrug truncates its ATC4 column.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.tables import read_csv, read_json
from polymodal.errors import DataError, MissingDataError

SAFEDRUG_DIR = "safedrug_drug_tables"
ETHOS_DIR = "drug_vocab_ethos"


def _need(path: Path) -> Path:
    if not path.is_file():
        raise MissingDataError(f"{path} not found; see SOURCES.md in the data directory for where it comes from")
    return path


def normalise_ndc(value: object) -> str | None:
    """An NDC as MIMIC stores it: 11 digits, zero-padded; ``None`` for missing, empty or ``0``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    if text.endswith(".0"):  # a float-typed column
        text = text[:-2]
    if not text or text.lower() == "nan" or text.strip("0") == "":
        return None
    return text.zfill(11) if text.isdigit() else text


@dataclass
class DrugVocab:
    """Everything about medications that is not patient data.

    Attributes:
        ndc_to_atc: NDC (11 digits) -> ATC codes (any level; usually ATC5).
        gsn_to_atc: GSN (6 digits) -> ATC codes.
        name_to_atc: lower-cased drug name -> ATC codes.
        ndc_to_rxcui: SafeDrug's NDC -> RXCUI (reported, not needed for the ATC map here).
        atc_names: ATC code (every level) -> English name.
        atc3_smiles: ATC3 -> SMILES strings (SafeDrug's table, up to 3 per code).
        ddi_pairs: undirected ATC3 pairs with a TWOSIDES interaction.
    """

    ndc_to_atc: dict[str, list[str]]
    gsn_to_atc: dict[str, list[str]]
    name_to_atc: dict[str, list[str]]
    ndc_to_rxcui: dict[str, str]
    atc_names: dict[str, str]
    atc3_smiles: dict[str, list[str]]
    ddi_pairs: set[frozenset[str]] = field(default_factory=set)

    def atc3_text(self, atc3: str, max_drugs: int = 8) -> str:
        """The medication's textual description: its ATC class names and example substances.

        E.g. ``"N02B other analgesics and antipyretics; analgesics; nervous system. Substances:
        acetylsalicylic acid, ..."``. The class path comes from the ATC names (levels 3, 2, 1).
        """
        names = [self.atc_names.get(code) for code in (atc3, atc3[:3], atc3[:1])]
        head = "; ".join(n for n in names if n) or "unknown class"
        drugs = sorted({n for c, n in self.atc_names.items()
                        if len(c) == 7 and c.startswith(atc3) and "combination" not in n})[:max_drugs]
        tail = f". Substances: {', '.join(drugs)}" if drugs else ""
        return f"{atc3} {head}{tail}"

    def ddi_matrix(self, vocab: Sequence[str]) -> np.ndarray:
        """(L, L) symmetric 0/1 adjacency of the DDI pairs over ``vocab`` (ATC3 codes in label order)."""
        index = {code: i for i, code in enumerate(vocab)}
        adj = np.zeros((len(vocab), len(vocab)), dtype=np.float32)
        for pair in self.ddi_pairs:
            a, b = sorted(pair)
            if a in index and b in index:
                adj[index[a], index[b]] = adj[index[b], index[a]] = 1.0
        return adj


def _group(frame: pd.DataFrame, key: str, value: str) -> dict[str, list[str]]:
    frame = frame.dropna(subset=[key, value]).drop_duplicates([key, value])
    return {str(k): sorted(map(str, g)) for k, g in frame.groupby(key)[value]}


def read_ndc2rxcui(path: Path) -> dict[str, str]:
    """SafeDrug's ``ndc2RXCUI.txt``: a Python dict literal, read with ``ast.literal_eval`` (never eval)."""
    try:
        table = ast.literal_eval(_need(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text ({err.reason} at byte {err.start})", file=path) from None
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        raise DataError(f"not a Python dict literal ({' '.join(str(err).split())})", file=path) from None
    if not isinstance(table, dict):
        raise DataError(f"expected a dict literal, got {type(table).__name__}", file=path)
    return {str(k): str(v) for k, v in table.items()}


def read_ddi_pairs(path: Path) -> set[frozenset[str]]:
    frame = read_csv(_need(path), dtype=str)
    for col in ("atc3_a", "atc3_b"):
        if col not in frame.columns:
            raise DataError(f"missing column (columns: {list(frame.columns)})", file=path, field=col)
    pairs = set()
    for i, (a, b) in enumerate(zip(frame["atc3_a"], frame["atc3_b"], strict=True), start=1):
        if not isinstance(a, str) or not isinstance(b, str) or len(a) != 4 or len(b) != 4:
            raise DataError(f"not an ATC3 pair: {a!r}, {b!r}", file=path, row=i, field="atc3_a")
        pairs.add(frozenset((a, b)))
    return pairs


def load_drug_vocab(data_dir: str | Path) -> DrugVocab:
    """Read the drug tables under ``data_dir`` (see the module docstring)."""
    root = Path(data_dir)
    safedrug, ethos = root / SAFEDRUG_DIR, root / ETHOS_DIR
    ndc = _table(ethos / "gsn_atc_ndc_mapping.csv.gz", ("ndc", "gsn", "atc"))
    ndc["ndc"] = ndc["ndc"].map(normalise_ndc)
    names = _table(ethos / "mimic_drug_to_atc.csv.gz", ("drug", "atc_code"))
    names["drug"] = names["drug"].str.strip().str.lower()
    coding = _table(ethos / "atc_coding.csv.gz", ("atc_code", "atc_name")).dropna()
    smiles_path = _need(safedrug / "atc3toSMILES.json")
    smiles = read_json(smiles_path)
    if not isinstance(smiles, dict) or not all(isinstance(v, list) for v in smiles.values()):
        raise DataError("expected an object ATC3 -> list of SMILES", file=smiles_path)
    return DrugVocab(
        ndc_to_atc=_group(ndc, "ndc", "atc"),
        gsn_to_atc=_group(ndc, "gsn", "atc"),
        name_to_atc=_group(names, "drug", "atc_code"),
        ndc_to_rxcui=read_ndc2rxcui(safedrug / "ndc2RXCUI.txt"),
        atc_names=dict(zip(coding["atc_code"], coding["atc_name"], strict=True)),
        atc3_smiles={str(k): [str(s) for s in v] for k, v in smiles.items()},
        ddi_pairs=read_ddi_pairs(safedrug / "ddi_pairs_atc3_twosides.csv"),
    )


def _table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A drug table as text, with ``columns`` present (else a DataError naming the file and column)."""
    frame = read_csv(_need(path), dtype=str)
    for col in columns:
        if col not in frame.columns:
            raise DataError(f"missing column (columns: {list(frame.columns)})", file=path, field=col)
    return frame


def atc3_codes(codes: Iterable[str]) -> list[str]:
    """ATC codes (any level >= 3) -> their distinct ATC3 prefixes, sorted."""
    return sorted({c[:4] for c in codes if isinstance(c, str) and len(c) >= 4})
