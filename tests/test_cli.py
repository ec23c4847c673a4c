"""The command line as a user meets it: listing, clear errors, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def polymodal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "polymodal", *args], capture_output=True, text=True, timeout=120)


def test_recipes_json_lists_mexa_ctp_with_its_paper() -> None:
    proc = polymodal("recipes", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    mexa = next(r for r in rows if r["name"] == "mexa-ctp")
    assert mexa["arxiv"] == "2501.06823" and "MEXA-CTP" in mexa["paper"]


def test_unknown_recipe_suggests_close_match_and_exits_2() -> None:
    proc = polymodal("run", "mexa")
    assert proc.returncode == 2
    assert "did you mean mexa-ctp" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_recipe_option_is_rejected_before_any_work(tmp_path: Path) -> None:
    proc = polymodal("run", "mexa-ctp", "--emb-sise", "16", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "unknown option 'emb_sise'" in proc.stderr and "emb_size" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_missing_top_files_are_named(tmp_path: Path) -> None:
    proc = polymodal("run", "mexa-ctp", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"), "--phase", "II")
    assert proc.returncode == 2
    assert "phase_II_train.csv" in proc.stderr


def test_data_check_json_on_an_empty_directory(tmp_path: Path) -> None:
    proc = polymodal("data", "check", "--data-dir", str(tmp_path), "--json")
    report = json.loads(proc.stdout)
    assert report["datasets"] and all(d["status"] == "missing" for d in report["datasets"].values())
