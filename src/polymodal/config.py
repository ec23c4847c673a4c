"""Typed, frozen configs: apply command-line overrides, rejecting unknown keys with suggestions."""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from polymodal.errors import ConfigError

C = TypeVar("C", bound=BaseModel)


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
