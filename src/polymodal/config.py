"""Typed, frozen configs: apply command-line overrides, rejecting unknown keys with suggestions."""

from __future__ import annotations

import difflib
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polymodal.errors import ConfigError

C = TypeVar("C", bound=BaseModel)
Selection = Literal["valid", "temporal"]


class TrainConfig(BaseModel):
    """How one model is trained; every recipe config embeds one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_epochs: int = 100
    patience: int = 10  # epochs without a better selection score before stopping
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    devices: int = 1
    num_nodes: int = 1
    accelerator: str = "cpu"
    progress: bool = True
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    workers: int = Field(1, ge=1)  # seeds trained at once in separate processes (with devices == 1)


class ProtocolConfig(BaseModel):
    """The evaluation protocol's knobs; the same for every binary recipe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeds: int = Field(5, ge=1)
    selections: tuple[Selection, ...] = ("temporal", "valid")  # the first is the headline
    temporal_fraction: float = Field(0.15, gt=0, lt=1)  # latest share of train+valid used for selection
    order_key: str = "nct_number"
    n_boot: int = 1000
    threshold_rule: Literal["max_f1", "youden"] = "max_f1"
    robustness: bool = True
    baselines: bool = True


def apply_overrides(cls: type[C], overrides: dict[str, Any], *, train: dict[str, Any] | None = None,
                    protocol: dict[str, Any] | None = None) -> C:
    """Build ``cls`` from its defaults plus overrides; nested train/protocol keys merge, not replace."""
    base = cls()
    known = set(cls.model_fields)
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown option {key!r} for {cls.__name__}{hint}; known: {', '.join(sorted(known))}")
    data = base.model_dump()
    data.update({k: v for k, v in overrides.items() if k not in {"train", "protocol"}})
    for section, extra in (("train", train), ("protocol", protocol)):
        if section in known:
            merged = dict(data[section])
            merged.update(overrides.get(section, {}) or {})
            merged.update(extra or {})
            data[section] = merged
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid options for {cls.__name__}: {exc}") from exc
