"""End to end on the real TOP phase I files (marked slow; .ci/run runs it when the data are there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(os.environ.get("POLYMODAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DATA / "TOP_clinical_trial_outcome" / "phase_I_train.csv").exists(),
                       reason="TOP data not present"),
]


def test_mexa_ctp_phase_one_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "polymodal", "run", "mexa-ctp", "--data-dir", str(DATA), "--seeds", "2",
           "--max-epochs", "6", "--out", str(out), "--json", "--phase", "I"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    rows = {(r["model"], r["metric"]): r for r in payload["rows"] if r["split"] == "test"}
    # Facts of these files that do not depend on any model: predicting success for every test
    # trial gives F1 0.713 (347 of 627 test trials succeed), and a constant score gives ROC-AUC 0.5.
    assert rows[("all-positive", "f1")]["mean"] == pytest.approx(2 * 347 / (2 * 347 + 280), abs=0.002)
    assert rows[("prior", "roc_auc")]["mean"] == pytest.approx(0.5)
    assert rows[("mexa-ctp", "roc_auc")]["mean"] > 0.52
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"]["sizes"] == {"train": 1044, "valid": 117, "test": 627}
    assert set(metrics["robustness"]) == {"none", "drop:criteria", "drop:diseases", "drop:drugs"}
    assert (out / "report.md").read_text().count("mexa-ctp") >= 2
