"""Recipes: one file per published system, imported explicitly so every process sees the same set."""

from polymodal.recipes import medgrad_eclip, mexa_ctp, nla_mmr, quickstart, text_forecast, umpsnet
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe, load_entry_point_recipes

__all__ = [
    "REGISTRY",
    "Paper",
    "PublishedResult",
    "Recipe",
    "load_entry_point_recipes",
    "medgrad_eclip",
    "mexa_ctp",
    "nla_mmr",
    "quickstart",
    "text_forecast",
    "umpsnet",
]
