"""The same run scales out with DDP (two CPU processes, gloo), and a killed run resumes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "run_synthetic.py"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


@pytest.mark.ddp
def test_ddp_two_cpu_processes_on_gloo(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "2", "8"], capture_output=True, text=True,
                          timeout=300, env=ENV)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "rank=0 world_size=2 wrote_metrics=True" in out
    assert "rank=1 world_size=2 wrote_metrics=False" in out
    auc = float(re.search(r"test_roc_auc=([\d.]+)", out).group(1))
    assert auc > 0.8  # the planted signal is learned under DDP too
    assert (tmp_path / "metrics.json").exists()


def test_killed_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path), "1", "400"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last = tmp_path / "valid" / "seed_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a few more epochs, so the kill lands mid-training
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert last.exists(), "no checkpoint was written before the kill"
    assert not (tmp_path / "metrics.json").exists()
    assert not list(tmp_path.rglob("*.tmp")) or all(p.stat().st_size >= 0 for p in tmp_path.rglob("*.tmp"))
    import torch

    epoch_at_kill = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    # Resume with a small epoch budget: training continues from the checkpoint's epoch, not from 0.
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "1", str(epoch_at_kill + 3)],
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "wrote_metrics=True" in done.stdout
    # It continued from the checkpoint rather than starting over.
    import numpy as np

    with np.load(tmp_path / "valid" / "seed_0" / "scores.npz") as scores:
        assert int(scores["resumed_from_epoch"]) == epoch_at_kill
