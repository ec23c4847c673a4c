"""Small synthetic TCGA folders in the MCAT / UMPSNet format, with a planted survival signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

FAMILIES = {
    "Tumor Suppressor Genes": ["TS1", "TS2", "TS3"],
    "Oncogenes": ["ON1", "ON2", "TS1"],  # TS1 in two families, as real genes are
    "Protein Kinases": ["PK1", "PK2"],
    "Cell Differentiation Markers": ["CD1", "CD2"],
    "Transcription Factors": ["TF1", "TF2"],
    "Cytokines and Growth Factors": ["CY1", "CY2"],
}
GENES = sorted({g for genes in FAMILIES.values() for g in genes})
STAGES = ["Stage I", "Stage II", "Stage III", "Stage IV"]


def write_tcga(root: Path, cohorts: tuple[str, ...] = ("AAA", "BBB"), n: int = 80, n_folds: int = 2,
               seed: int = 0, duplicate_slides: int = 3) -> Path:
    """Write ``root/tcga_survival_mcat_umpsnet`` and return it.

    Survival time falls with ``ON1_rnaseq`` (the planted genomic signal) and with stage; about a
    third of the patients are censored. ``ON1_rnaseq`` has one huge outlier, as real RNA-seq does.
    """
    rng = np.random.default_rng(seed)
    folder = root / "tcga_survival_mcat_umpsnet"
    (folder / "splits_umpsnet").mkdir(parents=True, exist_ok=True)
    width = max(len(g) for g in FAMILIES.values())
    pd.DataFrame({f: g + [None] * (width - len(g)) for f, g in FAMILIES.items()}).to_csv(
        folder / "signatures.csv", index=False)
    status: dict[str, dict] = {}
    all_ids = []
    for c_index, cohort in enumerate(cohorts):
        ids = [f"TCGA-{cohort[:2]}-{i:04d}" for i in range(n)]
        all_ids += ids
        genes = rng.normal(size=(n, len(GENES)))
        stage = rng.integers(0, 4, size=n)
        signal = genes[:, GENES.index("ON1")] + 0.5 * stage
        months = 30.0 * np.exp(-1.0 * signal + 0.3 * rng.normal(size=n)) + 0.5  # a strong, nearly monotone signal
        censor = (rng.random(n) < 0.35).astype(int)
        frame = pd.DataFrame({"case_id": ids, "slide_id": [f"{i}.svs" for i in ids], "site": "XX",
                              "is_female": rng.integers(0, 2, n), "oncotree_code": cohort,
                              "age": rng.integers(40, 85, n).astype(float), "survival_months": months.round(2),
                              "censorship": censor})
        if c_index == 1:
            frame.loc[0, "age"] = np.nan  # the JSON has it
        for g_i, gene in enumerate(GENES):
            frame[f"{gene}_rnaseq"] = genes[:, g_i].round(4)
        for gene in GENES[:4]:
            frame[f"{gene}_cnv"] = rng.integers(-2, 3, n)
        frame.loc[1, "ON1_rnaseq"] = 9000.0  # an extreme z-score, as in TCGA
        if c_index == 0:
            frame["train"] = 1.0  # BLCA-style extra column; LUAD-style files lack it
        dupes = frame.iloc[:duplicate_slides].assign(slide_id=lambda d: d["slide_id"] + "-2")
        frame = pd.concat([frame, dupes], ignore_index=True)
        frame.to_csv(folder / f"tcga_{cohort.lower()}_all_clean.csv.gz", compression="gzip")
        for i, case in enumerate(ids):
            status[case] = {
                "demographic": {"race": "white", "gender": "female" if i % 2 else "male",
                                "ethnicity": "not reported", "age": 60},
                "diagnosis": {"primary_diagnosis": "Carcinoma", "ajcc_pathologic_stage": STAGES[stage[i]],
                              "ajcc_pathologic_t": f"T{1 + stage[i] % 4}", "ajcc_pathologic_n": "N0",
                              "ajcc_pathologic_m": "MX"},
                "treatments": {"Pharmaceutical Therapy": "no", "Radiation Therapy": "not reported"},
                "dataset": cohort,
            }
    (folder / "status_all_umpsnet.json").write_text(json.dumps(status))
    order = rng.permutation(all_ids)
    chunks = np.array_split(order, n_folds)
    for k in range(n_folds):
        test = list(chunks[k])
        train = [c for c in order if c not in set(test)] + ["TCGA-ZZ-9999"]  # a case of another cohort
        width = max(len(train), len(test))
        pd.DataFrame({"train": train + [None] * (width - len(train)),
                      "val": test + [None] * (width - len(test))}).to_csv(folder / "splits_umpsnet" / f"splits_{k}.csv")
    return folder
