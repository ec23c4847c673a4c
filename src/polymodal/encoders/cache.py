"""Content-addressed on-disk cache of frozen-encoder outputs, so no run encodes the same item twice.

Layout under ``root``::

    <slug>-<sha256(cache_key)[:20]>/     one directory per encoder identity
        meta.json                        human-readable: cache_key, dim, format
        shard-<time>-<host>-<pid>-<rand>.npz   immutable; arrays ``keys`` (M,) S64, ``vectors`` (M, dim) f4

An item's key is ``sha256(cache_key + "\\0" + item)`` (hex). Shards are only ever created, never
modified, and each appears in one atomic rename, so

* a run killed halfway keeps every shard it finished (one is written every ``flush_every`` new
  items) and leaves at most a hidden ``.shard-*.tmp`` file, removed on a later open;
* two processes can fill the same directory at once: shard names are unique, and the worst case is
  an item encoded twice (both copies are valid);
* a damaged shard (truncated, bad CRC, wrong shape) is reported with a warning naming the file,
  renamed to ``*.corrupt`` so it is reported once, and its items are encoded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from polymodal.data.paths import resolve_cache_dir
from polymodal.encoders.frozen import FrozenEncoder
from polymodal.io import atomic_write, pid_alive, write_json

_SHARD_GLOB = "shard-*.npz"
_TEMP_GLOB = ".shard-*.tmp"
# Temp names come from polymodal.io.atomic_path: ".<final name>.<random>.tmp".
_TEMP_RE = re.compile(r"^\.shard-\d{8}T\d{6}-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{8}\.npz\..+\.tmp$")
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"


class EmbeddingCacheWarning(UserWarning):
    """A problem the cache recovered from (a corrupt shard, an unreadable meta.json)."""


@dataclass
class CacheStats:
    """Counters over the life of one :class:`EmbeddingCache` object.

    Attributes:
        hits: distinct items served from disk.
        misses: distinct items encoded (and written).
        encode_seconds: wall time inside ``encoder.encode`` (the cold embedding cost).
        read_seconds: wall time reading shards (index and hit vectors).
        shards_written: shard files created.
        corrupt_shards: damaged shards found and set aside.
    """

    hits: int = 0
    misses: int = 0
    encode_seconds: float = 0.0
    read_seconds: float = 0.0
    shards_written: int = 0
    corrupt_shards: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _EncoderIndex:
    """What one process knows about one encoder directory: item key -> (shard, row)."""

    directory: Path
    dim: int
    shards: list[Path] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # shard file names already indexed or rejected
    where: dict[bytes, tuple[int, int]] = field(default_factory=dict)


def item_key(cache_key: str, item: str) -> bytes:
    """The content address of one item: ASCII hex of ``sha256(cache_key + "\\0" + item)``."""
    return hashlib.sha256(f"{cache_key}\0{item}".encode()).hexdigest().encode("ascii")


class EmbeddingCache:
    """Content-addressed on-disk cache in front of any :class:`FrozenEncoder`.

    Example::

        cache = EmbeddingCache.default()
        vectors = cache.encode(SentenceTextEncoder(), texts)   # (N, 384); the second run reads them
        print(cache.stats.misses, cache.stats.encode_seconds)

    Args:
        root: directory holding one sub-directory per encoder identity.
        flush_every: new items encoded between two shard writes; bounds the work lost to a kill
            and the size of one shard.
        stale_temp_seconds: a leftover temp file whose writer cannot be checked (another host)
            is deleted once it is older than this.

    One object is safe to share between threads (calls are serialised); separate processes may
    share ``root`` freely.
    """

    def __init__(self, root: str | Path, *, flush_every: int = 4096, stale_temp_seconds: float = 3600.0) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self.root = Path(root).expanduser()
        self.flush_every = flush_every
        self.stale_temp_seconds = stale_temp_seconds
        self.stats = CacheStats()
        self._indexes: dict[Path, _EncoderIndex] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls, **kwargs: Any) -> EmbeddingCache:
        """The cache under ``resolve_cache_dir() / "embeddings"`` (``$POLYMODAL_CACHE``)."""
        return cls(resolve_cache_dir() / "embeddings", **kwargs)

    def __repr__(self) -> str:
        return f"EmbeddingCache(root={str(self.root)!r}, flush_every={self.flush_every})"

    def encoder_dir(self, encoder: FrozenEncoder) -> Path:
        """The directory holding ``encoder``'s shards: a readable slug plus a hash of its cache_key."""
        digest = hashlib.sha256(encoder.cache_key.encode()).hexdigest()[:20]
        slug = re.sub(r"[^A-Za-z0-9._=]+", "-", encoder.cache_key).strip("-.")[:48]
        return self.root / f"{slug}-{digest}"

    # -- public -------------------------------------------------------------------------------
    def encode(self, encoder: FrozenEncoder, items: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Vectors for ``items``, reading cached ones and encoding (then storing) the rest.

        Identical items are encoded once. Misses go to ``encoder.encode`` in chunks of
        ``flush_every``; each chunk is written as a shard before the next starts.

        Args:
            encoder: any FrozenEncoder; its ``cache_key`` selects the directory.
            items: N strings.
            progress: show a progress bar over the items to encode.

        Returns:
            (N, encoder.dim) float32; row i belongs to ``items[i]``.
        """
        items = list(items)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise TypeError(f"item {i}: the embedding cache takes strings, got {type(item).__name__} {item!r}")
        dim = int(encoder.dim)
        if not items:
            return np.zeros((0, dim), dtype=np.float32)

        with self._lock:
            index = self._open(encoder, dim)
            keys = [item_key(encoder.cache_key, item) for item in items]
            unique: dict[bytes, str] = dict(zip(keys, items, strict=True))  # keeps first-seen order
            found = self._read_hits(index, [k for k in unique if k in index.where])
            self.stats.hits += len(found)
            missing = [k for k in unique if k not in found]
            if missing:
                found.update(self._encode_missing(encoder, index, missing, unique, progress))

        out = np.empty((len(items), dim), dtype=np.float32)  # (N, D)
        for row, key in enumerate(keys):
            out[row] = found[key]
        return out

    # -- opening and reading ------------------------------------------------------------------
    def _open(self, encoder: FrozenEncoder, dim: int) -> _EncoderIndex:
        directory = self.encoder_dir(encoder)
        index = self._indexes.get(directory)
        if index is None:
            directory.mkdir(parents=True, exist_ok=True)
            self._write_meta(directory, encoder, dim)
            self._remove_stale_temps(directory)
            index = self._indexes[directory] = _EncoderIndex(directory, dim)
        # Every call picks up shards other processes wrote since the last one.
        self._refresh(index)
        return index

    def _write_meta(self, directory: Path, encoder: FrozenEncoder, dim: int) -> None:
        meta_path = directory / "meta.json"
        if meta_path.exists():
            return
        write_json(meta_path, {
            "cache_key": encoder.cache_key,
            "dim": dim,
            "encoder": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "item_key": 'sha256(cache_key + "\\0" + item), hex',
            "format": "shard-*.npz, each with keys (M,) S64 and vectors (M, dim) float32; immutable",
        })

    def _remove_stale_temps(self, directory: Path) -> None:
        # A temp file is debris only when its writer is gone; one from a live process (here or a
        # sibling job on this host) is a shard being written right now and must be left alone.
        now = time.time()
        for tmp in directory.glob(_TEMP_GLOB):
            match = _TEMP_RE.match(tmp.name)
            try:
                age = now - tmp.stat().st_mtime
            except FileNotFoundError:
                continue  # its writer just renamed it
            dead_writer = bool(match and match["host"] == _HOST and not pid_alive(int(match["pid"])))
            if dead_writer or age > self.stale_temp_seconds:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    def _refresh(self, index: _EncoderIndex) -> None:
        start = time.perf_counter()
        for path in sorted(index.directory.glob(_SHARD_GLOB)):
            if path.name in index.seen:
                continue
            index.seen.add(path.name)
            try:
                keys = self._read_shard_keys(path, index.dim)
            except Exception as err:  # any damage: truncation, bad CRC, wrong arrays
                self._set_aside(path, err)
                continue
            shard_no = len(index.shards)
            index.shards.append(path)
            for row, key in enumerate(keys):
                index.where.setdefault(key, (shard_no, row))
        self.stats.read_seconds += time.perf_counter() - start

    @staticmethod
    def _read_shard_keys(path: Path, dim: int) -> list[bytes]:
        """Keys of one shard, after checking the vectors' header (not their data) fits them."""
        with zipfile.ZipFile(path) as zf:
            with zf.open("keys.npy") as fh:
                keys = np.lib.format.read_array(fh, allow_pickle=False)
            with zf.open("vectors.npy") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:  # rare; read it all rather than depend on private helpers
                    shape, dtype = (arr := np.lib.format.read_array(fh)).shape, arr.dtype
        if keys.ndim != 1 or keys.dtype.kind != "S":
            raise ValueError(f"keys array has shape {keys.shape} dtype {keys.dtype}, expected (M,) bytes")
        if tuple(shape) != (len(keys), dim) or np.dtype(dtype) != np.float32:
            raise ValueError(f"vectors {tuple(shape)} {dtype} do not match {len(keys)} keys of dim {dim} float32")
        return keys.tolist()

    def _read_hits(self, index: _EncoderIndex, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """Vectors for ``keys`` (all in the index), one read per shard touched.

        Keys whose shard turns out damaged are left out; the caller encodes them as misses.
        """
        start = time.perf_counter()
        by_shard: dict[int, list[bytes]] = {}
        for key in keys:
            by_shard.setdefault(index.where[key][0], []).append(key)
        found: dict[bytes, np.ndarray] = {}
        for shard_no, shard_keys in by_shard.items():
            path = index.shards[shard_no]
            try:
                with np.load(path, allow_pickle=False) as npz:
                    vectors = npz["vectors"]  # (M, D); reading it all checks the zip CRC
            except Exception as err:
                self._set_aside(path, err)
                index.where = {k: v for k, v in index.where.items() if v[0] != shard_no}
                continue
            for key in shard_keys:
                found[key] = vectors[index.where[key][1]]
        self.stats.read_seconds += time.perf_counter() - start
        return found

    def _set_aside(self, path: Path, err: BaseException) -> None:
        self.stats.corrupt_shards += 1
        warnings.warn(
            f"embedding cache: ignoring corrupt shard {path} ({type(err).__name__}: {err}); "
            f"its items will be encoded again",
            EmbeddingCacheWarning,
            stacklevel=4,
        )
        # Renamed, not deleted, so it can be inspected, and not reported again on every open.
        with contextlib.suppress(OSError):
            os.replace(path, path.with_name(path.name + ".corrupt"))

    # -- encoding and writing -----------------------------------------------------------------
    def _encode_missing(
        self,
        encoder: FrozenEncoder,
        index: _EncoderIndex,
        missing: list[bytes],
        unique: dict[bytes, str],
        progress: bool,
    ) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        bar: Any = None
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task(f"encoding ({encoder.cache_key})", total=len(missing))
        try:
            for start in range(0, len(missing), self.flush_every):
                chunk = missing[start : start + self.flush_every]
                texts = [unique[k] for k in chunk]
                t0 = time.perf_counter()
                vectors = np.asarray(encoder.encode(texts), dtype=np.float32)  # (C, D)
                self.stats.encode_seconds += time.perf_counter() - t0
                self._check_output(encoder, texts, vectors, index.dim)
                self._write_shard(index, chunk, vectors)
                self.stats.misses += len(chunk)
                found.update(zip(chunk, vectors, strict=True))
                if bar is not None:
                    bar.advance(task, len(chunk))
        finally:
            if bar is not None:
                bar.stop()
        return found

    @staticmethod
    def _check_output(encoder: FrozenEncoder, texts: list[str], vectors: np.ndarray, dim: int) -> None:
        # Whatever is written is served forever after, so a bad output is refused here.
        if vectors.shape != (len(texts), dim):
            raise ValueError(
                f"encoder {encoder.cache_key!r} returned shape {vectors.shape} for {len(texts)} items, "
                f"expected ({len(texts)}, {dim})"
            )
        bad_rows = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        if bad_rows.size:
            raise ValueError(
                f"encoder {encoder.cache_key!r} returned non-finite values for {bad_rows.size} item(s), "
                f"first {texts[bad_rows[0]]!r}"
            )

    def _write_shard(self, index: _EncoderIndex, keys: list[bytes], vectors: np.ndarray) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        name = f"shard-{stamp}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        path = index.directory / name
        keys_array = np.array(keys, dtype="S64")  # (C,)

        def write(fh: IO[Any]) -> None:
            # Uncompressed: float embeddings barely compress and zlib would dominate write time.
            np.savez(fh, keys=keys_array, vectors=vectors)

        atomic_write(path, write, binary=True)
        self.stats.shards_written += 1
        index.seen.add(name)
        shard_no = len(index.shards)
        index.shards.append(path)
        for row, key in enumerate(keys):
            index.where.setdefault(key, (shard_no, row))
