"""`polymodal index build`, `polymodal search` and `polymodal serve` through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lancedb", reason="the `search` extra (lancedb) is not installed")

import typer
from typer.testing import CliRunner

from polymodal.encoders.text import HashingTextEncoder
from polymodal.search.cli import mount
from polymodal.search.export import write_export
from tests.search_fixtures import DIM, make_catalog

app = typer.Typer()
mount(app)
runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    cat = make_catalog(root / "data")
    vecs = HashingTextEncoder(dim=DIM).encode(cat["name"].tolist())
    write_export(root / "run", "text", cat, vecs, {"text": {"kind": "hashing", "dim": DIM}},
                 image_root=root / "data", filter_fields=["gender", "baseColour"])
    return root / "run"


def test_build_then_search_json(run_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["index", "build", str(run_dir), "--out", str(tmp_path / "idx"), "--ann", "none"])
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    assert manifest["complete"] is True and manifest["count"] == 12 and manifest["info"]["tower"] == "text"

    res = runner.invoke(app, ["search", str(tmp_path / "idx"), "navy blue men casual shirt", "--k", "3", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [set(r) for r in rows] == [{"id", "score", "name"}] * 3
    assert rows[0]["name"] == "Lee Men Navy Blue Casual Shirt"

    res = runner.invoke(app, ["search", str(tmp_path / "idx"), "jeans", "--filter", "gender=Women", "--json"])
    assert json.loads(res.stdout)[0]["name"] == "Wrangler Women Navy Blue Jeans"
    plain = runner.invoke(app, ["search", str(tmp_path / "idx"), "gold watch", "--k", "1"])
    assert plain.exit_code == 0 and "Fossil Women Gold Watch" in plain.stdout


def test_errors_exit_2_with_a_message(run_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["search", str(tmp_path / "missing"), "shirt"])
    assert res.exit_code == 2 and "no complete index version" in res.output
    runner.invoke(app, ["index", "build", str(run_dir), "--out", str(tmp_path / "idx"), "--ann", "none"])
    for args, message in [(["   "], "empty query"), (["shirt", "--filter", "gender"], "FIELD=VALUE"),
                          (["shirt", "--filter", "size=M"], "unknown filter field")]:
        res = runner.invoke(app, ["search", str(tmp_path / "idx"), *args])
        assert res.exit_code == 2 and message in res.output, res.output
    res = runner.invoke(app, ["index", "build", str(tmp_path), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no search/ export" in res.output


def test_serve_refuses_an_incomplete_index(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    (tmp_path / "idx" / "versions" / "v-1").mkdir(parents=True)  # a version without its manifest
    res = runner.invoke(app, ["serve", str(tmp_path / "idx"), "--port", "1"])
    assert res.exit_code == 2 and "manifest.json missing" in res.output
