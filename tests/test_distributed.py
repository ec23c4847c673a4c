"""The same run scales out with DDP (two CPU processes, gloo), and a killed run resumes."""

from __future__ import annotations

import json
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


def test_killed_run_resumes_and_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """SIGKILL mid-fit, rerun the same command: the metrics equal those of a run never interrupted
    (same shuffles, same dropout masks: the sampler order depends on (seed, epoch) and the random
    state travels in the checkpoint)."""
    epochs = "40"
    whole = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "whole"), "1", epochs, "1"],
                           capture_output=True, text=True, timeout=300, env=ENV)
    assert whole.returncode == 0, (whole.stdout + whole.stderr)[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(out), "1", epochs, "1"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last = out / "jobs" / "valid" / "seed_0" / "toy-experts" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more epochs, so the kill lands mid-training
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert last.exists(), "no checkpoint was written before the kill"
    assert not (out / "metrics.json").exists(), "the run finished before the kill: raise the epoch count"
    import torch

    epoch_at_kill = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    done = subprocess.run([sys.executable, str(SCRIPT), str(out), "1", epochs, "1"],
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    resumed = json.loads((out / "metrics.json").read_text())
    uninterrupted = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert resumed["models"] == uninterrupted["models"]
    info = json.loads((out / "jobs" / "valid" / "seed_0" / "toy-experts" / "result.json").read_text())["info"]
    assert info["resumed_from_epoch"] == epoch_at_kill >= 0
