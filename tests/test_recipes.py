"""Tests generated from the registry: every recipe builds, runs forward and backward with and
without each modality, round-trips its config, and documents its paper and deviations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from polymodal.config import apply_overrides
from polymodal.data.collate import Collator
from polymodal.errors import ConfigError
from polymodal.recipes import REGISTRY, Paper, Recipe
from polymodal.recipes.registry import RecipeRegistry

DOCS = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
RECIPES = REGISTRY.names()


def test_registry_is_strict() -> None:
    registry = RecipeRegistry()
    recipe = Recipe("demo-recipe", Paper("t", "0000.00000"), "s", config_cls=dict, runner=None)  # type: ignore[arg-type]
    registry.register(recipe)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(recipe)
    with pytest.raises(KeyError, match="did you mean demo-recipe"):
        registry.get("demo-recipes")


@pytest.mark.parametrize("name", RECIPES)
def test_config_round_trips_and_rejects_unknown_keys(name: str) -> None:
    cls = REGISTRY.get(name).config_cls
    cfg = cls()
    assert cls.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ConfigError, match="unknown option"):
        apply_overrides(cls, {"no_such_option": 1})


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_is_documented(name: str) -> None:
    recipe = REGISTRY.get(name)
    assert re.fullmatch(r"\d{4}\.\d{5}", recipe.paper.arxiv_id)
    assert (recipe.published or recipe.published_note) and recipe.deviations
    docs = DOCS.read_text()
    assert f"`{name}`" in docs and recipe.paper.arxiv_id in docs
    for published in recipe.published:
        assert f"{published.value:.3f}" in docs, f"{name}: published {published.metric} {published.value} not in docs"


class _TrialFeaturizerStub:
    """Dimensions of a fitted TrialFeaturizer, without data."""

    modalities: ClassVar[list[str]] = ["criteria", "diseases", "drugs"]
    max_len: ClassVar[dict[str, int]] = {"criteria": 13, "diseases": 5, "drugs": 5}
    criteria_dim, drug_dim, code_vocab_size, max_ancestors = 17, 32, 20, 5
    disease_text = False


def _trial_batch(n: int = 6) -> tuple[dict, torch.Tensor]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        samples.append(({
            "criteria": rng.normal(size=(1 + i % 4, 17)).astype(np.float32),
            "drugs": rng.random((i % 3, 32)).astype(np.float32),  # sample 0 has no drugs
            "diseases": rng.integers(0, 20, size=(1 + i % 2, 5)).astype(np.int64),
        }, np.float32(i % 2)))
    return Collator(_TrialFeaturizerStub.modalities, _TrialFeaturizerStub.max_len)(samples)


@pytest.mark.parametrize("missing", [None, "criteria", "diseases", "drugs"])
def test_mexa_ctp_forward_backward_with_and_without_each_modality(missing: str | None) -> None:
    from polymodal.recipes.mexa_ctp import MexaCtpConfig, build_model, build_objective

    cfg = MexaCtpConfig()
    model = build_model(cfg, _TrialFeaturizerStub())  # type: ignore[arg-type]
    objective = build_objective(cfg, np.array([0.0, 1.0, 1.0]))
    tokens, y = _trial_batch()
    if missing:
        tokens[missing] = tokens[missing].drop()
    out = model(tokens)
    assert out.logits.shape == (6,) and torch.isfinite(out.logits).all()
    parts = objective(out.logits, y, out.aux)
    assert {"bce", "cauchy", "contrastive", "loss"} <= set(parts)
    parts["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
