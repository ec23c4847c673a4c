"""polymodal: multimodal learning where natural language is the bridge between modalities.

    >>> import polymodal
    >>> recipe = polymodal.recipes.get("mexa-ctp")      # config class, paper, deviations, published numbers
    >>> run = polymodal.load_run("runs/mexa-ctp")       # a finished run folder: config, metrics, predict()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polymodal.data.schema import Record, Tokens

if TYPE_CHECKING:
    from polymodal.runs.api import Run

__all__ = ["Record", "Tokens", "__version__", "load_run", "recipes"]
__version__ = "0.1.0"


def load_run(path: Any) -> Run:
    """Open a finished run folder (see :func:`polymodal.runs.load_run`); nothing in it is executed."""
    from polymodal.runs.api import load_run as _load_run

    return _load_run(path)


def __getattr__(name: str) -> Any:
    # `polymodal.recipes` imports every recipe (and torch): only when asked for
    if name == "recipes":
        import importlib

        return importlib.import_module("polymodal.recipes")
    raise AttributeError(f"module 'polymodal' has no attribute {name!r}")
