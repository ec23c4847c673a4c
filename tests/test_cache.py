"""EmbeddingCache: hits are never re-encoded, interrupted runs resume, damage is survived."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from polymodal.encoders import EmbeddingCache, EmbeddingCacheWarning, FrozenEncoder, HashingTextEncoder
from polymodal.encoders.cache import _HOST


class CountingEncoder:
    """A fake frozen encoder that records what it was asked to encode and can fail on demand."""

    def __init__(self, dim: int = 8, fail_on_call: int | None = None, cache_key: str = "fake:v1") -> None:
        self.cache_key = cache_key
        self.dim = dim
        self.fail_on_call = fail_on_call  # 0-based index of the encode call that raises
        self.calls = 0
        self.encoded: list[str] = []

    def encode(self, items: Sequence[str]) -> np.ndarray:
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise RuntimeError("simulated kill")
        self.calls += 1
        self.encoded.extend(items)
        rows = []
        for item in items:
            seed = int.from_bytes(hashlib.sha256(item.encode()).digest()[:4], "little")
            rows.append(np.random.default_rng(seed).standard_normal(self.dim))
        return np.asarray(rows, dtype=np.float32).reshape(len(items), self.dim)


ITEMS = [f"item {i}" for i in range(10)]


def _shards(cache: EmbeddingCache, encoder: FrozenEncoder) -> list[Path]:
    return sorted(cache.encoder_dir(encoder).glob("shard-*.npz"))


def test_fake_encoder_satisfies_protocol() -> None:
    assert isinstance(CountingEncoder(), FrozenEncoder)


def test_second_call_encodes_nothing(tmp_path: Path) -> None:
    first = CountingEncoder()
    cache = EmbeddingCache(tmp_path)
    cold = cache.encode(first, ITEMS)
    assert cold.shape == (10, 8) and cold.dtype == np.float32
    assert first.encoded == ITEMS
    assert cache.stats.misses == 10 and cache.stats.hits == 0 and cache.stats.encode_seconds > 0

    # Same object, then a fresh object on the same root (a new run): nothing reaches the encoder.
    again = CountingEncoder()
    assert np.array_equal(cache.encode(again, ITEMS), cold)
    warm_cache = EmbeddingCache(tmp_path)
    warm = warm_cache.encode(again, list(reversed(ITEMS)))
    assert again.encoded == []
    assert warm_cache.stats.misses == 0 and warm_cache.stats.hits == 10
    assert warm_cache.stats.encode_seconds == 0.0
    assert np.array_equal(warm, cold[::-1])


def test_duplicates_are_encoded_once_and_partial_overlap(tmp_path: Path) -> None:
    enc = CountingEncoder()
    cache = EmbeddingCache(tmp_path)
    out = cache.encode(enc, ["a", "b", "a", "a", "b"])
    assert enc.encoded == ["a", "b"]
    assert np.array_equal(out[0], out[2]) and np.array_equal(out[1], out[4])
    cache.encode(enc, ["b", "c", "a", "d"])
    assert enc.encoded == ["a", "b", "c", "d"]


def test_empty_input_and_non_string_item(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    assert cache.encode(CountingEncoder(dim=5), []).shape == (0, 5)
    with pytest.raises(TypeError, match="item 1"):
        cache.encode(CountingEncoder(), ["ok", 3])  # type: ignore[list-item]


def test_encoders_with_different_keys_do_not_share_entries(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    a, b = CountingEncoder(cache_key="fake:a"), CountingEncoder(cache_key="fake:b")
    cache.encode(a, ITEMS)
    cache.encode(b, ITEMS)
    assert b.encoded == ITEMS
    assert cache.encoder_dir(a) != cache.encoder_dir(b)
    assert (cache.encoder_dir(a) / "meta.json").read_text().count("fake:a") == 1


def test_interrupted_run_keeps_flushed_work(tmp_path: Path) -> None:
    clean = EmbeddingCache(tmp_path / "clean").encode(CountingEncoder(), ITEMS)

    dying = CountingEncoder(fail_on_call=1)  # the first chunk of 4 is written, then it "dies"
    with pytest.raises(RuntimeError, match="simulated kill"):
        EmbeddingCache(tmp_path / "run", flush_every=4).encode(dying, ITEMS)
    assert dying.encoded == ITEMS[:4]

    resumed = CountingEncoder()
    cache = EmbeddingCache(tmp_path / "run", flush_every=4)
    out = cache.encode(resumed, ITEMS)
    assert resumed.encoded == ITEMS[4:]
    assert cache.stats.hits == 4 and cache.stats.misses == 6
    assert np.array_equal(out, clean)


def test_leftover_temp_files(tmp_path: Path) -> None:
    enc = CountingEncoder()
    directory = EmbeddingCache(tmp_path).encoder_dir(enc)
    directory.mkdir(parents=True)
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now names a writer that is gone
    dead = directory / f".shard-20260101T000000-{_HOST}-{finished.pid}-0123abcd.npz.x1y2.tmp"
    live = directory / f".shard-20260101T000000-{_HOST}-{os.getpid()}-0123abcd.npz.x1y2.tmp"
    old = directory / ".shard-from-elsewhere.npz.zz.tmp"
    for path in (dead, live, old):
        path.write_bytes(b"PK\x03\x04 half a zip")
    os.utime(old, (time.time() - 7200, time.time() - 7200))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # temp files are not shards: no warning at all
        out = EmbeddingCache(tmp_path).encode(enc, ITEMS)
    assert enc.encoded == ITEMS
    assert np.array_equal(out, EmbeddingCache(tmp_path / "clean").encode(CountingEncoder(), ITEMS))
    assert not dead.exists() and not old.exists()
    assert live.exists()  # a live writer's temp file is a shard in progress: left alone


def test_truncated_shard_is_reported_and_reencoded(tmp_path: Path) -> None:
    clean = EmbeddingCache(tmp_path / "clean").encode(CountingEncoder(), ITEMS)
    first = CountingEncoder()
    cache = EmbeddingCache(tmp_path / "run", flush_every=4)
    cache.encode(first, ITEMS)
    shards = _shards(cache, first)
    assert len(shards) == 3
    victim = shards[1]
    with np.load(victim) as npz:
        lost = {k.decode() for k in npz["keys"]}
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])

    again = CountingEncoder()
    reopened = EmbeddingCache(tmp_path / "run", flush_every=4)
    with pytest.warns(EmbeddingCacheWarning, match=victim.name):
        out = reopened.encode(again, ITEMS)
    assert np.array_equal(out, clean)
    assert len(again.encoded) == len(lost)  # only the items of the damaged shard
    assert reopened.stats.corrupt_shards == 1
    assert victim.with_name(victim.name + ".corrupt").exists()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # set aside once, not reported on every open
        third = CountingEncoder()
        assert np.array_equal(EmbeddingCache(tmp_path / "run").encode(third, ITEMS), clean)
        assert third.encoded == []


def test_corrupt_vector_bytes_detected_on_read(tmp_path: Path) -> None:
    # Damage inside the vector data leaves the zip directory and the keys readable; the CRC check
    # when the vectors are read must catch it.
    clean = CountingEncoder()
    cache = EmbeddingCache(tmp_path)
    reference = cache.encode(clean, ITEMS)
    (shard,) = _shards(cache, clean)
    data = bytearray(shard.read_bytes())
    pos = data.index(b"vectors.npy") + 200  # inside the vectors member's payload
    data[pos : pos + 16] = bytes(16)
    shard.write_bytes(bytes(data))

    again = CountingEncoder()
    with pytest.warns(EmbeddingCacheWarning, match=shard.name):
        out = EmbeddingCache(tmp_path).encode(again, ITEMS)
    assert again.encoded == ITEMS
    assert np.array_equal(out, reference)


def test_bad_encoder_output_is_not_cached(tmp_path: Path) -> None:
    class WrongWidth(CountingEncoder):
        def encode(self, items: Sequence[str]) -> np.ndarray:
            return np.zeros((len(items), self.dim + 1), dtype=np.float32)

    class NaNs(CountingEncoder):
        def encode(self, items: Sequence[str]) -> np.ndarray:
            return np.full((len(items), self.dim), np.nan, dtype=np.float32)

    cache = EmbeddingCache(tmp_path)
    with pytest.raises(ValueError, match="shape"):
        cache.encode(WrongWidth(), ITEMS)
    with pytest.raises(ValueError, match="non-finite"):
        cache.encode(NaNs(cache_key="fake:nan"), ITEMS)
    assert list(tmp_path.rglob("shard-*.npz")) == []


def _fill(root: str, items: list[str]) -> None:
    EmbeddingCache(root, flush_every=16).encode(CountingEncoder(), items)


def test_concurrent_writers_share_a_directory(tmp_path: Path) -> None:
    items = [f"t{i}" for i in range(300)]
    # Two processes and two threads (separate cache objects) fill overlapping ranges at once.
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_fill, args=(str(tmp_path), items[i * 60 : i * 60 + 150])) for i in range(2)]
    threads = [threading.Thread(target=_fill, args=(str(tmp_path), items[150 + i * 50 :])) for i in range(2)]
    for worker in (*procs, *threads):
        worker.start()
    for worker in (*procs, *threads):
        worker.join()
    assert all(p.exitcode == 0 for p in procs)

    reader = CountingEncoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = EmbeddingCache(tmp_path).encode(reader, items)
    assert reader.encoded == []
    assert np.array_equal(out, CountingEncoder().encode(items))


def test_real_encoder_and_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path))
    cache = EmbeddingCache.default()
    assert cache.root == tmp_path.resolve() / "embeddings"
    enc = HashingTextEncoder(dim=64)
    out = cache.encode(enc, ["heart failure", "kidney failure"], progress=True)
    assert np.allclose(out, enc.encode(["heart failure", "kidney failure"]))
    assert cache.encoder_dir(enc).parent == cache.root
