"""Recipes: one file per published system, imported explicitly so every process sees the same set."""

from polymodal.recipes import (
    medgrad_eclip,
    meiju,
    metammf,
    mexa_ctp,
    nla_mmr,
    product_search,
    quickstart,
    taxonomy_classifier,
    text_forecast,
    umpsnet,
)
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe, load_entry_point_recipes


def get(name: str) -> Recipe:
    """The registered recipe ``name`` (config class, paper, deviations, published numbers); an unknown
    name raises a KeyError listing close matches."""
    load_entry_point_recipes()
    return REGISTRY.get(name)


def names() -> list[str]:
    """Every registered recipe name."""
    load_entry_point_recipes()
    return REGISTRY.names()


__all__ = [
    "REGISTRY",
    "Paper",
    "PublishedResult",
    "Recipe",
    "get",
    "load_entry_point_recipes",
    "medgrad_eclip",
    "meiju",
    "metammf",
    "mexa_ctp",
    "names",
    "nla_mmr",
    "product_search",
    "quickstart",
    "taxonomy_classifier",
    "text_forecast",
    "umpsnet",
]
