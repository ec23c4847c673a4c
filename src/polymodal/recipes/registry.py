"""The recipe registry: strict (a duplicate name raises, an unknown one lists close matches)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class Paper:
    """Provenance of a recipe: which published system it follows."""

    title: str
    arxiv_id: str
    venue: str = ""
    code_url: str = ""


@dataclass(frozen=True)
class PublishedResult:
    """One number the paper (or its repository) reports, with where it came from.

    ``dataset_version`` says which data the number was measured on, so that the report can say
    when our data differ and the comparison is not exact.
    """

    model: str
    metric: str
    value: float
    source: str
    dataset_version: str
    split: str = "test"


@dataclass(frozen=True)
class Recipe:
    """A published system as a short assembly of shared parts.

    Attributes:
        name: registry name, used on the command line (``polymodal run NAME``).
        paper: the paper it follows.
        summary: one line for ``polymodal recipes``.
        config_cls: a frozen pydantic model whose defaults are the paper's.
        build: ``build(cfg, data_dir=, cache_dir=) -> runs.Problem``: the task, the jobs, the data; the
            one runner (``runs.run_recipe``) does the rest.
        runner: legacy, for a recipe not yet moved to ``build``: ``runner(cfg, data_dir, out_dir, ...)``.
        data_licence: the terms of the data it runs on.
        published: the paper's numbers, read by the reports.
        deviations: every way the recipe departs from the paper.
        predictor: ``predictor(run_dir) -> runs.Predictor`` (read_input, predict, example_input) for a
            recipe with ``build``; legacy recipes: ``predictor(run_dir, input_path, cache_dir) -> DataFrame``.
        evaluate_tables: optional ``(predictions, tables) -> dict`` of recipe-specific results computed
            from saved per-sample tables (merged into metrics.json; ``polymodal eval`` calls it too).
    """

    name: str
    paper: Paper
    summary: str
    config_cls: type[BaseModel]
    runner: Any = None
    data_licence: str = ""
    published: tuple[PublishedResult, ...] = ()
    deviations: tuple[str, ...] = ()
    predictor: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    build: Any = None
    evaluate_tables: Any = None
    #: why ``published`` is empty, when the paper's numbers cannot be compared (private data, say)
    published_note: str = ""


class RecipeRegistry:
    def __init__(self) -> None:
        self._recipes: dict[str, Recipe] = {}

    def register(self, recipe: Recipe) -> Recipe:
        if recipe.name in self._recipes:
            raise ValueError(f"a recipe named {recipe.name!r} is already registered")
        self._recipes[recipe.name] = recipe
        return recipe

    def get(self, name: str) -> Recipe:
        if name not in self._recipes:
            close = difflib.get_close_matches(name, list(self._recipes), n=3, cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            known = ", ".join(sorted(self._recipes)) or "none"
            raise KeyError(f"unknown recipe {name!r}{hint} (known: {known})")
        return self._recipes[name]

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._recipes)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._recipes[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._recipes)


REGISTRY = RecipeRegistry()


def load_entry_point_recipes(registry: RecipeRegistry = REGISTRY) -> None:
    """Let other packages add recipes through the ``polymodal.recipes`` entry-point group."""
    for ep in entry_points(group="polymodal.recipes"):
        obj = ep.load()
        if isinstance(obj, Recipe) and obj.name not in registry.names():
            registry.register(obj)
