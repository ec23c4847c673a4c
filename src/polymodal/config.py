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

    max_epochs: int = Field(100, ge=1, description="most training epochs per model")
    patience: int = Field(10, ge=1, description="epochs without a better selection score before stopping")
    batch_size: int = Field(64, ge=1, description="training batch size")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    devices: int = Field(1, ge=1, description="processes/GPUs for DDP (Lightning)")
    num_nodes: int = Field(1, ge=1, description="nodes for multi-node DDP")
    accelerator: Literal["cpu", "gpu", "cuda", "mps", "auto"] = Field("cpu", description="Lightning accelerator")
    progress: bool = Field(True, description="show progress (on stderr)")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads; unset keeps torch's default")
    workers: int = Field(1, ge=1, description="jobs (seeds) trained at once in separate processes")


class ProtocolConfig(BaseModel):
    """The evaluation protocol's knobs; the same for every binary recipe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeds: int = Field(5, ge=1, description="training seeds per model")
    selections: tuple[Selection, ...] = Field(("temporal", "valid"), min_length=1,
                                              description="selection splits; the first is the headline")
    temporal_fraction: float = Field(0.15, gt=0, lt=1,
                                     description="latest share of train+valid held out for temporal selection")
    order_key: str = Field("nct_number", description="record field that orders samples in time")
    n_boot: int = Field(1000, ge=10, description="bootstrap resamples for CIs and paired differences")
    threshold_rule: Literal["max_f1", "youden"] = Field("max_f1", description="threshold rule, on validation only")
    robustness: bool = Field(True, description="also score the test split with each modality dropped")
    baselines: bool = Field(True, description="fit trivial and learned baselines on the same splits")


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
