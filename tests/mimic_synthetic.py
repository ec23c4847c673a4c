"""Synthetic MIMIC-III / MIMIC-IV directories (PhysioNet layout) and drug tables with a planted signal.

Each patient has 2 or 3 admissions (every fourth patient has one). Diagnosis ``4011`` (hypertension)
always comes with ATC3 ``C09A`` and diagnosis ``2720`` (hyperlipidaemia) with ``C10A``; every
visit also gets ``N02B`` (paracetamol) and, at random, ``A02B``. ``C09A``-``C10A`` is a DDI pair
that the true sets contain whenever both diagnoses meet.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

# ATC3 -> (NDC, GSN, drug name, ATC5, SMILES)
DRUGS = {
    "N02B": ("00001000001", "000101", "Acetaminophen", "N02BE01", "CC(=O)NC1=CC=C(O)C=C1"),
    "C09A": (
        "00001000002",
        "000102",
        "Lisinopril",
        "C09AA03",
        "NCCCC[C@H](N[C@@H](CCC1=CC=CC=C1)C(O)=O)C(=O)N1CCC[C@H]1C(O)=O",
    ),
    "C10A": (
        "00001000003",
        "000103",
        "Simvastatin",
        "C10AA01",
        "CCC(C)(C)C(=O)O[C@H]1C[C@@H](C)C=C2C=C[C@H](C)[C@H](CC[C@@H]3C[C@@H](O)CC(=O)O3)[C@@H]12",
    ),
    "A02B": ("00001000004", "000104", "Omeprazole", "A02BC01", "COC1=CC2=C(C=C1)N=C(N2)S(=O)CC1=NC=C(C)C(OC)=C1C"),
}
DIAG = {
    "4011": "Benign essential hypertension",
    "2720": "Pure hypercholesterolemia",
    "25000": "Diabetes mellitus without mention of complication",
    "4280": "Congestive heart failure, unspecified",
}
PROC = {"3893": "Venous catheterization, not elsewhere classified", "9604": "Insertion of endotracheal tube"}


def write_drug_tables(root: Path) -> None:
    sd, eth = root / "safedrug_drug_tables", root / "drug_vocab_ethos"
    sd.mkdir(parents=True, exist_ok=True)
    eth.mkdir(parents=True, exist_ok=True)
    (sd / "atc3toSMILES.json").write_text(json.dumps({k: [v[4]] for k, v in DRUGS.items()}))
    (sd / "ddi_pairs_atc3_twosides.csv").write_text("atc3_a,atc3_b\nC09A,C10A\n")
    (sd / "ndc2RXCUI.txt").write_text(str({v[0]: "1000" for v in DRUGS.values()}))
    (sd / "med_voc_atc3.txt").write_text("\n".join(DRUGS) + "\n")
    # NDC table covers all but Omeprazole (mapped through its GSN instead)
    rows = [{"gsn": v[1], "atc": v[3], "ndc": v[0]} for k, v in DRUGS.items() if k != "A02B"]
    rows.append({"gsn": DRUGS["A02B"][1], "atc": DRUGS["A02B"][3], "ndc": "99999999999"})
    pd.DataFrame(rows).to_csv(eth / "gsn_atc_ndc_mapping.csv.gz", index=False)
    pd.DataFrame([{"drug": v[2], "atc_code": v[3]} for v in DRUGS.values()]).to_csv(
        eth / "mimic_drug_to_atc.csv.gz", index=False
    )
    names = [
        ("N", "nervous system"),
        ("N02", "analgesics"),
        ("N02B", "other analgesics and antipyretics"),
        ("N02BE01", "paracetamol"),
        ("C", "cardiovascular system"),
        ("C09", "agents acting on the renin-angiotensin system"),
        ("C09A", "ace inhibitors, plain"),
        ("C09AA03", "lisinopril"),
        ("C10", "lipid modifying agents"),
        ("C10A", "lipid modifying agents, plain"),
        ("C10AA01", "simvastatin"),
        ("A", "alimentary tract and metabolism"),
        ("A02", "drugs for acid related disorders"),
        ("A02B", "drugs for peptic ulcer and gord"),
        ("A02BC01", "omeprazole"),
    ]
    pd.DataFrame(names, columns=["atc_code", "atc_name"]).to_csv(eth / "atc_coding.csv.gz", index=False)


def _events(n_patients: int, seed: int) -> tuple[list, list, list, list]:
    rng = np.random.default_rng(seed)
    adm, diag, proc, rx = [], [], [], []
    hadm = 100000
    for p in range(n_patients):
        subject = 1000 + p
        for v in range(1 if p % 4 == 3 else int(rng.integers(2, 4))):
            hadm += 1
            t = pd.Timestamp("2150-01-01") + pd.Timedelta(days=int(200 * v + rng.integers(0, 50)))
            adm.append((subject, hadm, t))
            codes = [c for c in DIAG if rng.random() < 0.5] or ["25000"]
            diag += [(subject, hadm, i + 1, c) for i, c in enumerate(codes)]
            proc += [(subject, hadm, i + 1, c) for i, c in enumerate(PROC) if rng.random() < 0.7]
            meds = ["N02B"] + (["C09A"] if "4011" in codes else []) + (["C10A"] if "2720" in codes else [])
            meds += ["A02B"] if rng.random() < 0.4 else []
            rx += [(subject, hadm, t, DRUGS[m][2], DRUGS[m][0], DRUGS[m][1]) for m in meds]
    return adm, diag, proc, rx


def write_mimic3(directory: Path, n_patients: int = 30, seed: int = 0) -> Path:
    """MIMIC-III layout: uppercase file names and headers, ICD-9 only."""
    directory.mkdir(parents=True, exist_ok=True)
    adm, diag, proc, rx = _events(n_patients, seed)
    fmt = "%Y-%m-%d %H:%M:%S"
    pd.DataFrame(
        [(i, s, h, t.strftime(fmt)) for i, (s, h, t) in enumerate(adm)],
        columns=["ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME"],
    ).to_csv(directory / "ADMISSIONS.csv", index=False)
    pd.DataFrame(
        [(i, *r) for i, r in enumerate(diag)], columns=["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
    ).to_csv(directory / "DIAGNOSES_ICD.csv", index=False)
    pd.DataFrame(
        [(i, *r) for i, r in enumerate(proc)], columns=["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
    ).to_csv(directory / "PROCEDURES_ICD.csv", index=False)
    pd.DataFrame(
        [(i, s, h, "", t.strftime(fmt), d, n, g) for i, (s, h, t, d, n, g) in enumerate(rx)],
        columns=["ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "STARTDATE", "DRUG", "NDC", "GSN"],
    ).to_csv(directory / "PRESCRIPTIONS.csv", index=False)
    pd.DataFrame(
        [(i, c, t[:20], t) for i, (c, t) in enumerate(DIAG.items())],
        columns=["ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"],
    ).to_csv(directory / "D_ICD_DIAGNOSES.csv", index=False)
    pd.DataFrame(
        [(i, c, t[:20], t) for i, (c, t) in enumerate(PROC.items())],
        columns=["ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"],
    ).to_csv(directory / "D_ICD_PROCEDURES.csv", index=False)
    return directory


def write_mimic4(release: Path, n_patients: int = 30, seed: int = 0) -> Path:
    """MIMIC-IV layout: ``release/hosp/*.csv.gz``, lowercase, ``icd_code`` + ``icd_version``.

    Diagnosis 4011 is written as ICD-10 I10 for odd patients (both versions appear).
    """
    hosp = release / "hosp"
    hosp.mkdir(parents=True, exist_ok=True)
    adm, diag, proc, rx = _events(n_patients, seed)
    fmt = "%Y-%m-%d %H:%M:%S"

    def gz(frame: pd.DataFrame, name: str) -> None:
        with gzip.open(hosp / f"{name}.csv.gz", "wt") as fh:
            frame.to_csv(fh, index=False)

    gz(
        pd.DataFrame([(s, h, t.strftime(fmt)) for s, h, t in adm], columns=["subject_id", "hadm_id", "admittime"]),
        "admissions",
    )
    d4 = [(s, h, n, "I10", 10) if c == "4011" and s % 2 else (s, h, n, c, 9) for s, h, n, c in diag]
    gz(pd.DataFrame(d4, columns=["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"]), "diagnoses_icd")
    gz(
        pd.DataFrame(
            [(s, h, n, "2150-01-01", c, 9) for s, h, n, c in proc],
            columns=["subject_id", "hadm_id", "seq_num", "chartdate", "icd_code", "icd_version"],
        ),
        "procedures_icd",
    )
    gz(
        pd.DataFrame(
            [(s, h, 1, t.strftime(fmt), "MAIN", d, n, g) for s, h, t, d, n, g in rx],
            columns=["subject_id", "hadm_id", "pharmacy_id", "starttime", "drug_type", "drug", "ndc", "gsn"],
        ),
        "prescriptions",
    )
    titles = [(c, 9, t) for c, t in DIAG.items()] + [("I10", 10, "Essential (primary) hypertension")]
    gz(pd.DataFrame(titles, columns=["icd_code", "icd_version", "long_title"]), "d_icd_diagnoses")
    gz(
        pd.DataFrame([(c, 9, t) for c, t in PROC.items()], columns=["icd_code", "icd_version", "long_title"]),
        "d_icd_procedures",
    )
    return release
