"""The breast-cancer cohort that ships inside scikit-survival, as survival Records.

``sksurv.datasets.load_breast_cancer()``: 198 lymph-node-negative patients without adjuvant therapy
(GEO GSE7390; Desmedt et al., Clin Cancer Res 2007), 76 gene-expression probes (the columns whose
names start with ``X``) and the clinical variables ``age``, ``er``, ``grade`` and ``size``. The outcome
is time to distant metastasis (``t.tdm``, days) with its event flag (``e.tdm``). No network or data
directory is needed, which is why the quickstart uses it.

Records: ``inputs = {"genes": (76,) float32 array, "clinical": {"age", "er", "grade", "size"}}``,
``target = (time, event)``. The split is seeded, stratified by event, written to ``split.json`` and
read back on every later run so it is never recomputed differently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from polymodal.data.schema import Record
from polymodal.data.splits import DatasetSplits
from polymodal.errors import DataError
from polymodal.io import write_json

__all__ = [
    "CLINICAL_CATEGORICAL",
    "CLINICAL_NUMERIC",
    "SOURCE",
    "dataset_version",
    "load_records",
    "load_splits",
    "split_records",
]

SOURCE = "sksurv.datasets.load_breast_cancer"
CLINICAL_NUMERIC = ("age", "size")
CLINICAL_CATEGORICAL = ("er", "grade")
EVENT_FIELD, TIME_FIELD = "e.tdm", "t.tdm"
FRACTIONS = (0.6, 0.2, 0.2)


def dataset_version() -> str:
    """The dataset's version is the scikit-survival release that ships it."""
    import sksurv

    return f"scikit-survival {sksurv.__version__} breast_cancer (GSE7390)"


def load_records() -> list[Record]:
    """All 198 patients as Records, in the dataset's row order (ids ``bc000`` ... ``bc197``).

    Raises:
        DataError: on a missing column or a missing/non-finite value, naming the row and field.
    """
    from sksurv.datasets import load_breast_cancer

    X, y = load_breast_cancer()
    genes = [c for c in X.columns if str(c).startswith("X")]
    if not genes:
        raise DataError("no gene-expression columns (names starting with 'X')", file=SOURCE)
    for col in (*CLINICAL_NUMERIC, *CLINICAL_CATEGORICAL):
        if col not in X.columns:
            raise DataError(f"missing clinical column (have {list(X.columns)[:8]} ...)", file=SOURCE, field=col)
    for name in (EVENT_FIELD, TIME_FIELD):
        if name not in (y.dtype.names or ()):
            raise DataError(f"missing outcome field (have {y.dtype.names})", file=SOURCE, field=name)
    expression = X[genes].to_numpy(dtype=np.float32)  # (N, 76)
    records = []
    for i in range(len(X)):
        bad = np.flatnonzero(~np.isfinite(expression[i]))
        if bad.size:
            raise DataError("non-finite expression value", file=SOURCE, row=i + 1, field=genes[bad[0]])
        clinical: dict[str, Any] = {}
        for col in CLINICAL_NUMERIC:
            value = float(X[col].iloc[i])
            if not np.isfinite(value):
                raise DataError("missing or non-finite value", file=SOURCE, row=i + 1, field=col)
            clinical[col] = value
        for col in CLINICAL_CATEGORICAL:
            value = X[col].iloc[i]
            if value is None or (isinstance(value, float) and np.isnan(value)):
                raise DataError("missing category", file=SOURCE, row=i + 1, field=col)
            clinical[col] = str(value)
        time, event = float(y[TIME_FIELD][i]), bool(y[EVENT_FIELD][i])
        if not np.isfinite(time) or time < 0:
            raise DataError(f"invalid time {time}", file=SOURCE, row=i + 1, field=TIME_FIELD)
        records.append(
            Record(
                id=f"bc{i:03d}",
                inputs={"genes": expression[i], "clinical": clinical},
                target=(time, event),
                meta={"row": i + 1},
            )
        )
    return records


def split_records(records: list[Record], seed: int = 0) -> dict[str, list[str]]:
    """A 60/20/20 train/valid/test split of record ids, stratified by event status.

    Args:
        records: survival Records with ``target = (time, event)``.
        seed: seed of the shuffles.

    Returns:
        ``{"train": ids, "valid": ids, "test": ids}``.
    """
    ids = [r.id for r in records]
    events = [bool(r.target[1]) for r in records]
    train_frac, valid_frac, test_frac = FRACTIONS
    rest_ids, test_ids, rest_events, _ = train_test_split(
        ids, events, test_size=test_frac, random_state=seed, stratify=events
    )
    train_ids, valid_ids = train_test_split(
        rest_ids, test_size=valid_frac / (train_frac + valid_frac), random_state=seed, stratify=rest_events
    )
    return {"train": sorted(train_ids), "valid": sorted(valid_ids), "test": sorted(test_ids)}


def load_splits(split_path: Path | None = None, *, seed: int = 0) -> DatasetSplits:
    """The cohort split into train/valid/test, reusing ``split_path`` when it exists.

    Args:
        split_path: where the split lives (``<run>/split.json``). An existing file is read and
            checked against the cohort; otherwise the split is made with ``seed`` and written there.
        seed: seed of a new split.

    Raises:
        DataError: if a saved split names unknown ids or does not cover the cohort exactly once.
    """
    records = load_records()
    by_id = {r.id: r for r in records}
    if split_path is not None and Path(split_path).exists():
        saved = json.loads(Path(split_path).read_text(encoding="utf-8"))
        ids = {name: list(saved.get(name, [])) for name in ("train", "valid", "test")}
        listed = [i for part in ids.values() for i in part]
        if sorted(listed) != sorted(by_id):
            raise DataError(
                "saved split does not list every patient exactly once; delete it to re-split", file=split_path
            )
    else:
        ids = split_records(records, seed)
        if split_path is not None:
            write_json(
                split_path,
                {
                    "source": SOURCE,
                    "version": dataset_version(),
                    "seed": seed,
                    "fractions": list(FRACTIONS),
                    "stratify": "event",
                    **ids,
                },
            )
    return DatasetSplits(
        train=[by_id[i] for i in ids["train"]],
        valid=[by_id[i] for i in ids["valid"]],
        test=[by_id[i] for i in ids["test"]],
        files={name: SOURCE for name in ("train", "valid", "test")},
        description=(
            "Breast cancer (GSE7390, Desmedt et al. 2007) as shipped in scikit-survival: 198 node-negative "
            "patients, 76 gene-expression probes + clinical age, ER status, grade, tumour size; outcome is "
            "time to distant metastasis. Split 60/20/20 stratified by event."
        ),
    )
