"""Where data are read from and where caches and runs are written."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``--data-dir``, else ``$POLYMODAL_DATA``, else ``~/.cache/polymodal/data``.

    The data directory may be read-only; nothing is ever written into it.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get("POLYMODAL_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return Path("~/.cache/polymodal/data").expanduser()


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``--cache-dir``, else ``$POLYMODAL_CACHE``, else ``~/.cache/polymodal``; created if needed."""
    if cache_dir is not None:
        path = Path(cache_dir)
    elif os.environ.get("POLYMODAL_CACHE"):
        path = Path(os.environ["POLYMODAL_CACHE"])
    else:
        path = Path("~/.cache/polymodal")
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
