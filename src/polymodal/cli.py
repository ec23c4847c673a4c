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

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multimodal recipes with an honest protocol.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect the data directory.")
app.add_typer(data_app, name="data")


def _mount_search() -> None:
    # product search: `polymodal index build`, `polymodal search`, `polymodal serve` (heavy imports stay lazy)
    from polymodal.search.cli import mount

    mount(app)


_mount_search()
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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "help_option_names": []})
def run(
    ctx: typer.Context,
    recipe: Annotated[str | None, typer.Argument(help="Recipe name (see `polymodal recipes`).")] = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/RECIPE).")] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", min=1, help="Training seeds.")] = None,
    devices: Annotated[int | None, typer.Option("--devices", min=1, help="Processes/GPUs for DDP.")] = None,
    num_nodes: Annotated[int | None, typer.Option("--num-nodes", min=1, help="Nodes for multi-node DDP.")] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", min=1, help="Most epochs per model.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Jobs trained at once, one process each.")
                       ] = None,
    accelerator: Annotated[str | None, typer.Option(
        "--accelerator", help="cpu, gpu or auto (a GPU when one is present; the default).")] = None,
    precision: Annotated[str | None, typer.Option(
        "--precision", help="32-true (default), bf16-mixed or 16-mixed.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="JSON file of recipe options.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run with other options in --out.")
                         ] = False,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved config and exit.")
                            ] = False,
    as_json: JsonFlag = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
    show_help: Annotated[bool, typer.Option("--help", "-h", help="Show this recipe's options and exit.")] = False,
) -> None:
    """Train and evaluate RECIPE. Recipe options go after it, e.g. `--phase I --emb-size 16`."""
    from polymodal.config import apply_overrides

    if recipe is None:
        if show_help:
            typer.echo(ctx.get_help())
            return
        raise UsageError("missing RECIPE: `polymodal run RECIPE [options]` (see `polymodal recipes`)")
    entry = _registry().get(recipe)
    if show_help:
        typer.echo(recipe_help(entry))
        return
    overrides: dict[str, Any] = _read_config_file(config) if config else {}
    overrides.update(_parse_extra(ctx.args))
    train_overrides = {k: v for k, v in {"devices": devices, "num_nodes": num_nodes, "max_epochs": max_epochs,
                                         "workers": workers, "accelerator": accelerator,
                                         "precision": precision}.items() if v is not None}
    progress = not (quiet or as_json)
    if not progress:
        train_overrides["progress"] = False
    cfg = apply_overrides(entry.config_cls, overrides, train=train_overrides,
                          protocol={"seeds": seeds} if seeds is not None else {})
    if print_config:
        typer.echo(json.dumps({"recipe": entry.name, "options": cfg.model_dump(mode="json")}, indent=2))
        return
    out_dir = out or Path("runs") / recipe
    _quiet_libraries()
    started = time.perf_counter()
    if entry.build is not None:
        from polymodal.runs import run_recipe

        metrics = run_recipe(entry, cfg, out_dir=out_dir, data_dir=data_dir, cache_dir=cache_dir,
                             overwrite=overwrite, progress=progress)
    else:  # a recipe not yet moved to the one runner
        metrics = entry.runner(cfg, data_dir=data_dir, out_dir=out_dir, cache_dir=cache_dir)
    if metrics is None:  # a non-zero DDP rank
        return
    _emit(metrics, out_dir, as_json, time.perf_counter() - started)


def recipe_help(entry: Any) -> str:
    """`polymodal run RECIPE --help`: the recipe's paper and every option with type, default and meaning."""
    lines = [f"Usage: polymodal run {entry.name} [OPTIONS] [RECIPE OPTIONS]", "",
             f"{entry.summary}", f"Paper: {entry.paper.title} (arXiv {entry.paper.arxiv_id})", "",
             "Run options:"]
    for flag, text in (("--data-dir DIR", "data directory (else $POLYMODAL_DATA)"),
                       ("--cache-dir DIR", "writable cache (else $POLYMODAL_CACHE)"),
                       ("--out DIR", f"run folder (default runs/{entry.name})"),
                       ("--seeds N", "training seeds (protocol.seeds)"), ("--max-epochs N", "train.max_epochs"),
                       ("--workers N", "jobs trained at once (train.workers)"), ("--devices N", "DDP processes"),
                       ("--accelerator A", "cpu, gpu or auto (train.accelerator)"),
                       ("--precision P", "32-true, bf16-mixed, 16-mixed (train.precision)"),
                       ("--config FILE", "JSON file of recipe options"),
                       ("--overwrite", "replace a run with other options in --out"),
                       ("--print-config", "print the resolved config and exit"),
                       ("--json", "print the metric rows as one JSON document on stdout"),
                       ("--quiet", "no progress output")):
        lines.append(f"  {flag:<22} {text}")
    lines += ["", "Recipe options (--name value; --no-name for false; nested ones as JSON, e.g. "
              "--train '{\"lr\": 0.01}'):"]
    lines += option_lines(entry.config_cls)
    return "\n".join(lines)


def option_lines(cls: Any, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    out = []
    defaults = cls()
    for name, field in cls.model_fields.items():
        default = getattr(defaults, name)
        if isinstance(default, BaseModel):
            out += option_lines(type(default), prefix=f"{prefix}{name}.")
            continue
        kind = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
        flag = f"--{(prefix + name).replace('_', '-')}" if not prefix else f"{prefix}{name}"
        text = field.description or ""
        out.append(f"  {flag:<30} {kind:<14} default {default!r}" + (f"  {text}" if text else ""))
    return out


def _read_config_file(path: Path) -> dict[str, Any]:
    from polymodal.errors import ConfigError

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config {path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of options, got {type(value).__name__}")
    return value


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `polymodal run`.")],
    as_json: JsonFlag = False,
    write: Annotated[bool, typer.Option("--write", help="Replace the run's metrics.json and report.md.")] = False,
    data_dir: DataDir = None,
    cohort: Annotated[str | None, typer.Option(
        "--cohort", help="Score this cohort of --data-dir with the run's models (zero-shot, where the recipe "
                         "offers it) instead of re-rendering the run.")] = None,
    cache_dir: CacheDir = None,
) -> None:
    """Recompute a finished run's metrics from its predictions.csv (identical to the run's own)."""
    config_path = run_dir / "config.json"
    recipe = json.loads(config_path.read_text()).get("recipe", "") if config_path.exists() else ""
    if cohort is not None:  # a recipe hook: Recipe.extra["zero_shot"](run_dir, cohort=, data_dir=, cache_dir=)
        hook = _registry().get(recipe).extra.get("zero_shot") if recipe else None
        if hook is None:
            raise UsageError(f"--cohort: the run in {run_dir} ({recipe or 'no config.json'}) cannot score a new cohort")
        _quiet_libraries()
        metrics, out = hook(run_dir, cohort=cohort, data_dir=data_dir, cache_dir=cache_dir)
        _emit(metrics, out, as_json, None)
        return
    if (run_dir / "manifest.json").exists():
        from polymodal.runs import evaluate_run

        metrics, differences = evaluate_run(run_dir, write=write)
        if differences:
            console.print(f"{len(differences)} value(s) differ from the run's metrics.json (e.g. {differences[0]})"
                          + ("; rewritten" if write else "; rerun with --write to replace it"))
        else:
            console.print("metrics.json reproduced exactly from predictions.csv")
        _emit(metrics, run_dir, as_json, None)
        return
    from polymodal.evaluation.rerun import reevaluate

    # a legacy run folder: a recipe whose run folder is not the binary one registers its own
    hook = _registry().get(recipe).extra.get("reevaluate") if recipe in _registry().names() else None
    metrics = hook(run_dir) if hook else reevaluate(run_dir)
    _emit(metrics, run_dir, as_json, None)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `polymodal run`.")],
    input: Annotated[Path | None, typer.Option("--input", help="CSV of new samples in the recipe's input format.")
                     ] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where to write the predictions CSV.")] = None,
    example_input: Annotated[Path | None, typer.Option(
        "--example-input", help="Write a few rows of this recipe's input format (from the run's test split, "
                                "labels removed) to this file and exit.")] = None,
    cache_dir: CacheDir = None,
) -> None:
    """Score new samples with a finished run's saved models and validation-chosen decisions."""
    config_path = run_dir / "config.json"
    if not config_path.exists():
        from polymodal.errors import MissingDataError

        raise MissingDataError(f"{config_path} not found: {run_dir} is not a run folder")
    recipe = json.loads(config_path.read_text()).get("recipe", "")
    entry = _registry().get(recipe)
    if example_input is not None:
        from polymodal.runs import write_example_input

        n = write_example_input(run_dir, example_input)
        console.print(f"wrote {n} example input rows to {example_input}")
        return
    if input is None or output is None:
        raise UsageError("predict needs --input FILE and --output FILE (or --example-input FILE)")
    if entry.build is not None:
        from polymodal.runs import predict_file as run_predict

        n = run_predict(run_dir, input, output, cache_dir=cache_dir)
    else:
        from polymodal.predict import predict_file

        n = predict_file(run_dir, input, output, cache_dir=cache_dir)
    console.print(f"wrote {n} predictions to {output}")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("runs/quickstart"),
    seeds: Annotated[int, typer.Option("--seeds", min=1)] = 3,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run with other options in --out.")
                         ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Gene expression + clinical variables -> survival, on a cohort shipped with scikit-survival
    (the `quickstart` recipe with its defaults: `polymodal run quickstart` takes every option)."""
    from polymodal.config import apply_overrides
    from polymodal.runs import run_recipe

    entry = _registry().get("quickstart")
    progress = not as_json
    cfg = apply_overrides(entry.config_cls, {}, train={} if progress else {"progress": False},
                          protocol={"seeds": seeds})
    _quiet_libraries()
    started = time.perf_counter()
    metrics = run_recipe(entry, cfg, out_dir=out, overwrite=overwrite, progress=progress)
    assert metrics is not None  # one process: always the main rank
    _emit(metrics, out, as_json, time.perf_counter() - started)


def _emit(metrics: dict[str, Any], out_dir: Path, as_json: bool, seconds: float | None) -> None:
    from polymodal.reports import metrics_to_rows
    from polymodal.tasks import flat_rows

    rows = flat_rows(metrics) if "task_spec" in metrics else metrics_to_rows(metrics)
    if as_json:
        typer.echo(json.dumps({"run": str(out_dir), "recipe": metrics.get("recipe"), "rows": rows}, indent=2))
        return
    primary = metrics.get("primary_metric", "roc_auc")
    table = Table("model", "kind", *[m for m in _shown_metrics(rows, primary)], title=f"{metrics.get('recipe')}: test")
    kinds = {name: m.get("kind", "") for name, m in metrics.get("models", {}).items()}
    by_model: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["split"] == "test" and not row.get("subset") and not row.get("condition") and not str(
                row["metric"]).endswith("_diff"):
            ci = f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if row.get("ci_low") is not None else ""
            cell = f"{row['mean']:.3f}{ci}"
            by_model.setdefault(row["model"], {})[row["metric"]] = cell
    for model, cells in by_model.items():
        table.add_row(model, kinds.get(model, ""), *[cells.get(m, "") for m in _shown_metrics(rows, primary)])
    Console(stderr=as_json).print(table)
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    Console().print(f"report: {out_dir / 'report.md'}{took}")


def _shown_metrics(rows: list[dict[str, Any]], primary: str) -> list[str]:
    names = list(dict.fromkeys(r["metric"] for r in rows if r["split"] == "test" and not r["metric"].endswith("_diff")))
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


class UsageError(Exception):
    """A command used wrongly (missing argument, unknown option): one line, exit 2."""


def main() -> None:
    """Console entry point: every error is one line on stderr.

    Exit codes: 0 success; 1 a check that found a problem (`data check`); 2 a usage error or our own
    error (bad data, bad options: the message names the file, row and field); 130 interrupted (Ctrl-C).
    """
    import os
    import signal

    from polymodal.errors import PolymodalError

    # typer ships its own copy of click: take its exception classes from typer, not from `click`
    click_exceptions = sys.modules[typer.BadParameter.__module__]
    interrupted = []

    def on_sigint(signum: int, frame: Any) -> None:
        # Lightning turns a KeyboardInterrupt during fit into sys.exit(1): remember that it was one
        interrupted.append(True)
        signal.default_int_handler(signum, frame)

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)
    code = 0
    try:
        result = app(standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == 130:  # typer turned a Ctrl-C into an exit code: say so
            _error("interrupted: rerun the same command to resume")
    except SystemExit as exc:
        if not interrupted:
            raise
        _error("interrupted: rerun the same command to resume")
        code = 130
        del exc
    except (PolymodalError, UsageError) as exc:
        _error(str(exc))
        code = 2
    except KeyError as exc:  # unknown recipe: the registry's message lists close matches
        _error(str(exc.args[0] if exc.args else exc))
        code = 2
    except (KeyboardInterrupt, typer.Abort):
        _error("interrupted: rerun the same command to resume")
        code = 130
    except typer.Exit as exc:
        code = exc.exit_code
        if code == 130:
            _error("interrupted: rerun the same command to resume")
    except click_exceptions.NoArgsIsHelpError as exc:  # `polymodal`, `polymodal data`: help is the answer
        print(exc.ctx.get_help() if exc.ctx else str(exc), file=sys.stderr)
        code = 2
    except click_exceptions.ClickException as exc:
        _error(" ".join(exc.format_message().split()))
        code = 2 if isinstance(exc, click_exceptions.UsageError) else exc.exit_code
    except BrokenPipeError:  # `polymodal ... | head`: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


def _error(text: str) -> None:
    first = text.strip().splitlines()[0] if text.strip() else "error"
    print(f"error: {first}", file=sys.stderr, flush=True)


if __name__ == "__main__":  # pragma: no cover
    main()
