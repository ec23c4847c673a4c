"""CLI of product search: ``polymodal index build|export-zero-shot``, ``polymodal search``, ``polymodal serve``.

Mounted by the main CLI (polymodal.cli)::

    from polymodal.search.cli import index_app, search_command, serve_command
    app.add_typer(index_app, name="index"); app.command("search")(search_command); app.command("serve")(serve_command)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from polymodal.errors import PolymodalError

index_app = typer.Typer(no_args_is_help=True, help="Build product-search indexes.")


def _fail(err: Exception) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(2)


@index_app.command("build")
def build_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with a search/ export (product-search recipe).")],
    out: Annotated[Path, typer.Option("--out", help="Index folder (a new version is published atomically).")],
    tower: Annotated[str | None, typer.Option("--tower", help="Which tower's vectors (default: selected).")] = None,
    ann: Annotated[str, typer.Option("--ann", help="ivf_pq, ivf_hnsw_sq or none (exact).")] = "ivf_pq",
    nprobes: Annotated[int, typer.Option("--nprobes")] = 20,
) -> None:
    """Build (or rebuild) INDEX from a run's product vectors; prints the manifest."""
    from polymodal.search.export import read_export
    from polymodal.search.index import build_index, read_manifest
    from polymodal.search.store import AnnConfig

    try:
        folder, meta, catalog, vectors = read_export(run_dir, tower)
        import shutil

        def copy_query(dest: Path) -> dict:
            shutil.copytree(folder / "query", dest)
            return json.loads((dest / "encoder.json").read_text(encoding="utf-8"))

        version = build_index(out, catalog, vectors, filter_fields=meta.get("filter_fields") or [],
                              ann=AnnConfig(kind=ann, nprobes=nprobes), write_query=copy_query,
                              info={"run": str(Path(run_dir).resolve()), "tower": meta["tower"],
                                    "image_root": meta.get("image_root")})
    except (PolymodalError, OSError, ValueError) as err:
        raise _fail(err) from None
    typer.echo(json.dumps(read_manifest(version), indent=2))


@index_app.command("export-zero-shot")
def export_zero_shot_command(
    out: Annotated[Path, typer.Option("--out", help="Run folder to write search/<tower>/ into.")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory (else $POLYMODAL_DATA).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N products (by id).")] = None,
) -> None:
    """Export the untrained baseline (frozen MiniLM of product names) so an index can be built without training."""
    from polymodal.data.paths import resolve_data_dir
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.search.export import zero_shot_export

    try:
        folder = zero_shot_export(resolve_data_dir(data_dir), out, EmbeddingCache.default(), limit=limit)
    except (PolymodalError, OSError, ValueError) as err:
        raise _fail(err) from None
    typer.echo(str(folder))


def search_command(
    index: Annotated[Path, typer.Argument(help="An index folder built by `polymodal index build`.")],
    query: Annotated[str, typer.Argument(help="Query text, e.g. \"navy blue men casual shirt\".")],
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Number of results.")] = 10,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="FIELD=VALUE, repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of {id, score, name}.")] = False,
) -> None:
    """Search an index with a text query."""
    from polymodal.search.encoders import load_query_encoder
    from polymodal.search.index import open_index

    if not query.strip():
        raise _fail(ValueError("empty query"))
    try:
        parsed = dict(_split_filter(f) for f in filters or [])
        idx = open_index(index)
        vector = load_query_encoder(idx.query_dir).encode_text(query.strip())
        hits = idx.store.search(vector, k, parsed)
    except (PolymodalError, OSError, ValueError) as err:
        raise _fail(err) from None
    rows = [{"id": pid, "score": round(score, 6), "name": str(idx.catalog.loc[pid, "name"])}
            for pid, score in zip(hits.ids, hits.scores, strict=True)]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for rank, row in enumerate(rows, start=1):
        typer.echo(f"{rank:>3}  {row['score']:.4f}  {row['id']:>8}  {row['name']}")


def _split_filter(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep or not field or not value:
        raise ValueError(f"--filter wants FIELD=VALUE, got {text!r}")
    return field.strip(), value.strip()


def serve_command(
    index: Annotated[Path, typer.Argument(help="An index folder built by `polymodal index build`.")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option("--host", help="Bind address (loopback by default).")] = "127.0.0.1",
    images: Annotated[Path | None, typer.Option("--images", help="Photo folder (default: recorded at build).")] = None,
) -> None:
    """Serve the search page and API over INDEX (refuses to start on an incomplete index)."""
    try:
        from polymodal.search.service import serve
    except ImportError as err:
        raise _fail(ImportError(f"{err}; install the search extra: pip install 'polymodal[search]'")) from None
    try:
        serve(index, host=host, port=port, image_root=images)
    except PolymodalError as err:
        raise _fail(err) from None


def mount(app: typer.Typer) -> None:
    """Add ``index``, ``search`` and ``serve`` to a Typer app."""
    app.add_typer(index_app, name="index")
    app.command("search")(search_command)
    app.command("serve")(serve_command)
