"""The ``polymodal`` command.

    polymodal recipes                      list recipes with their papers
    polymodal data check [--data-dir DIR]  which datasets are present, and whether they load
    polymodal run RECIPE [options]         train and evaluate a recipe; writes a run folder
    polymodal eval RUN                     re-render a run's report and metrics
    polymodal predict RUN --input F --output F
    polymodal quickstart                   a real multimodal survival task that ships with a dependency
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multimodal recipes with an honest protocol.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect the data directory.")
app.add_typer(data_app, name="data")
console = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (else $POLYMODAL_DATA).")]
CacheDir = Annotated[Path | None, typer.Option("--cache-dir", help="Writable cache (else $POLYMODAL_CACHE).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print metrics as JSON on stdout.")]


def _registry():  # type: ignore[no-untyped-def]
    from polymodal.recipes import REGISTRY, load_entry_point_recipes

    load_entry_point_recipes()
    return REGISTRY


@app.command()
def recipes(as_json: JsonFlag = False) -> None:
    """List the registered recipes."""
    rows = [{"name": r.name, "paper": r.paper.title, "arxiv": r.paper.arxiv_id, "summary": r.summary}
            for r in _registry()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("recipe", "arXiv", "paper", "what it predicts")
    for row in rows:
        table.add_row(row["name"], row["arxiv"], row["paper"], row["summary"])
    Console().print(table)


@data_app.command("check")
def data_check(data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """Say which datasets are present and whether each recipe's loader reads them."""
    from polymodal.data.check import check_data_dir

    report = check_data_dir(data_dir)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        table = Table("dataset", "status", "details")
        for name, entry in report["datasets"].items():
            table.add_row(name, entry["status"], entry.get("details", ""))
        Console().print(f"data directory: {report['data_dir']}")
        Console().print(table)
    if any(e["status"] == "error" for e in report["datasets"].values()):
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    recipe: Annotated[str, typer.Argument(help="Recipe name (see `polymodal recipes`).")],
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/RECIPE).")] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Training seeds.")] = None,
    devices: Annotated[int | None, typer.Option("--devices", help="Processes/GPUs for DDP.")] = None,
    num_nodes: Annotated[int | None, typer.Option("--num-nodes", help="Nodes for multi-node DDP.")] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Seeds trained at once, one process each.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="JSON file of recipe options.")] = None,
    as_json: JsonFlag = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train and evaluate RECIPE. Recipe options go after it, e.g. `--phase I --emb-size 16`."""
    from polymodal.config import apply_overrides

    entry = _registry().get(recipe)
    overrides: dict[str, Any] = json.loads(config.read_text()) if config else {}
    overrides.update(_parse_extra(ctx.args))
    train_overrides = {k: v for k, v in {"devices": devices, "num_nodes": num_nodes, "max_epochs": max_epochs,
                                                  "workers": workers}.items()
                       if v is not None}
    if quiet or as_json:
        train_overrides["progress"] = False
    cfg = apply_overrides(entry.config_cls, overrides, train=train_overrides,
                          protocol={"seeds": seeds} if seeds is not None else {})
    out_dir = out or Path("runs") / recipe
    _quiet_libraries()
    started = time.perf_counter()
    metrics = entry.runner(cfg, data_dir=data_dir, out_dir=out_dir, cache_dir=cache_dir)
    if metrics is None:  # a non-zero DDP rank
        return
    _emit(metrics, out_dir, as_json, time.perf_counter() - started)


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `polymodal run`.")],
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
    cohort: Annotated[str | None, typer.Option(
        "--cohort", help="Score this cohort of --data-dir with the run's models (zero-shot, where the recipe "
                         "offers it) instead of re-rendering the run.")] = None,
    cache_dir: CacheDir = None,
) -> None:
    """Re-render a finished run's report from its metrics.json and predictions.csv."""
    if cohort is not None:  # a recipe hook: Recipe.extra["zero_shot"](run_dir, cohort=, data_dir=, cache_dir=)
        recipe = json.loads((run_dir / "config.json").read_text()).get("recipe", "") if (
            run_dir / "config.json").exists() else ""
        hook = _registry().get(recipe).extra.get("zero_shot") if recipe else None
        if hook is None:
            raise typer.BadParameter(f"the run in {run_dir} ({recipe or 'no config.json'}) cannot score a new cohort",
                                     param_hint="--cohort")
        _quiet_libraries()
        metrics, out = hook(run_dir, cohort=cohort, data_dir=data_dir, cache_dir=cache_dir)
        _emit(metrics, out, as_json, None)
        return
    from polymodal.evaluation.rerun import reevaluate

    # a recipe whose run folder is not the binary one registers its own: Recipe.extra["reevaluate"](run_dir)
    config = run_dir / "config.json"
    name = json.loads(config.read_text()).get("recipe") if config.exists() else None
    hook = _registry().get(name).extra.get("reevaluate") if name in _registry().names() else None
    metrics = hook(run_dir) if hook else reevaluate(run_dir)
    _emit(metrics, run_dir, as_json, None)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `polymodal run`.")],
    input: Annotated[Path, typer.Option("--input", help="CSV of new samples in the recipe's input format.")],
    output: Annotated[Path, typer.Option("--output", help="Where to write id,score,decision.")],
    cache_dir: CacheDir = None,
) -> None:
    """Score new samples with the seed ensemble of a finished run."""
    from polymodal.predict import predict_file

    n = predict_file(run_dir, input, output, cache_dir=cache_dir)
    console.print(f"wrote {n} predictions to {output}")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("runs/quickstart"),
    seeds: Annotated[int, typer.Option("--seeds")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """Gene expression + clinical variables -> survival, on a cohort shipped with scikit-survival."""
    from polymodal.quickstart import run_quickstart

    _quiet_libraries()
    started = time.perf_counter()
    metrics = run_quickstart(out, seeds=seeds, progress=not as_json)
    _emit(metrics, out, as_json, time.perf_counter() - started)


def _emit(metrics: dict[str, Any], out_dir: Path, as_json: bool, seconds: float | None) -> None:
    from polymodal.reports import metrics_to_rows

    rows = metrics_to_rows(metrics)
    if as_json:
        typer.echo(json.dumps({"run": str(out_dir), "recipe": metrics.get("recipe"), "rows": rows}, indent=2))
        return
    primary = metrics.get("primary_metric", "roc_auc")
    table = Table("model", "kind", *[m for m in _shown_metrics(rows, primary)], title=f"{metrics.get('recipe')}: test")
    kinds = {name: m.get("kind", "") for name, m in metrics.get("models", {}).items()}
    by_model: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["split"] == "test":
            ci = f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if row.get("ci_low") is not None else ""
            cell = f"{row['mean']:.3f}{ci}"
            by_model.setdefault(row["model"], {})[row["metric"]] = cell
    for model, cells in by_model.items():
        table.add_row(model, kinds.get(model, ""), *[cells.get(m, "") for m in _shown_metrics(rows, primary)])
    Console().print(table)
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    Console().print(f"report: {out_dir / 'report.md'}{took}")


def _shown_metrics(rows: list[dict[str, Any]], primary: str) -> list[str]:
    names = list(dict.fromkeys(r["metric"] for r in rows if r["split"] == "test"))
    preferred = dict.fromkeys([primary, "pr_auc", "f1", "c_index", "brier"])  # ordered, no duplicates
    return [m for m in preferred if m in names] or names[:4]


def _parse_extra(args: list[str]) -> dict[str, Any]:
    """`--emb-size 16 --fusion concat --no-weighted-bce` -> {"emb_size": 16, ...} (values parsed as JSON)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise typer.BadParameter(f"unexpected argument {arg!r}; recipe options look like --name value")
        key = arg[2:].replace("-", "_")
        if "=" in key:
            key, value = key.split("=", 1)
            out[key] = _value(value)
            i += 1
        elif key.startswith("no_") and (i + 1 == len(args) or args[i + 1].startswith("--")):
            out[key[3:]] = False
            i += 1
        elif i + 1 == len(args) or args[i + 1].startswith("--"):
            out[key] = True
            i += 1
        else:
            out[key] = _value(args[i + 1])
            i += 2
    return out


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _quiet_libraries() -> None:
    import warnings

    logging.getLogger("lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def main() -> None:
    """Console entry point: our own errors print as one clear line (file, row, field) and exit 2."""
    from polymodal.errors import PolymodalError

    try:
        app(standalone_mode=False)
    except PolymodalError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except KeyError as exc:  # unknown recipe: the registry's message lists close matches
        console.print(f"[red]error:[/red] {exc.args[0] if exc.args else exc}", highlight=False)
        sys.exit(2)
    except click.exceptions.Abort:
        console.print("interrupted: rerun the same command to resume")
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted: rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
