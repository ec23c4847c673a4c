"""polymodal: multimodal learning where natural language is the bridge between modalities."""

from polymodal.data.schema import Record, Tokens

__all__ = ["Record", "Tokens", "__version__"]
__version__ = "0.1.0"
