"""Atomic writes: all or nothing, ordinary permissions, strict JSON."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from polymodal.io import atomic_write, write_json, write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_debris(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    write_text(target, "old")

    def explode(fh) -> None:  # type: ignore[no-untyped-def]
        fh.write("half a rep")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_written_files_get_umask_permissions_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_json_is_strict_nan_becomes_null(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"auc": float("nan"), "ok": 0.5, "nested": [float("inf")]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"auc": None, "ok": 0.5, "nested": [None]}
