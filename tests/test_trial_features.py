"""The trial featuriser: shapes, flags, training-only vocabulary, and the text variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polymodal.data.icd import IcdHierarchy
from polymodal.data.schema import Record
from polymodal.encoders import HashingTextEncoder, MorganEncoder
from polymodal.encoders.cache import EmbeddingCache
from polymodal.recipes.trial_features import TrialFeaturizer

ICD = IcdHierarchy({"C34": "Malignant neoplasm of bronchus and lung", "C34.1": "Upper lobe, bronchus or lung",
                    "E11": "Type 2 diabetes mellitus"})


def trial(nct: str, codes: list[str], inc: list[str], exc: list[str], smiles: list[str], names: list[str]) -> Record:
    return Record(nct, {"icd_codes": codes, "inclusion": inc, "exclusion": exc, "drugs": smiles,
                        "drug_names": names, "diseases": ["lung cancer"] if codes else []}, 1.0)


TRAIN = [trial("NCT1", ["C34.1"], ["age >= 18", "ECOG 0-1"], ["pregnant"], ["CCO"], ["ethanol", "placebo"])]
NEW = [trial("NCT2", ["E11"], ["HbA1c > 7"], [], [], ["metformin"])]  # E11 never seen in training


def featurizer(tmp_path: Path, **kwargs: bool) -> TrialFeaturizer:
    return TrialFeaturizer(HashingTextEncoder(dim=16), MorganEncoder(n_bits=64), ICD, EmbeddingCache(tmp_path),
                           max_inclusion=8, max_exclusion=5, max_drugs=5, max_codes=5, **kwargs).fit(TRAIN)


def test_default_tokens_and_training_only_vocabulary(tmp_path: Path) -> None:
    f = featurizer(tmp_path)
    [seen], [unseen] = f.transform(TRAIN), f.transform(NEW)
    assert seen["criteria"].shape == (3, 17)
    assert seen["criteria"][:, -1].tolist() == [0.0, 0.0, 1.0]  # the exclusion statement is flagged
    assert seen["drugs"].shape == (1, 64)
    assert seen["diseases"].shape == (1, 5) and (seen["diseases"][0] > 0).sum() == 3  # C34.1, C34, C
    # Neither E11 nor its chapter E was in training, so the code has no token (and there are no drugs).
    assert unseen["diseases"].shape[0] == 0 and unseen["drugs"].shape == (0, 64)
    assert f.pooled([seen, unseen]).shape == (2, 2 * 16 + 64 + f.code_vocab_size)


def test_text_variants_add_name_tokens(tmp_path: Path) -> None:
    f = featurizer(tmp_path, disease_text=True, drug_text=True)
    [seen] = f.transform(TRAIN)
    assert seen["diseases"].shape == (2, 17) and seen["diseases"][:, -1].tolist() == [0.0, 1.0]
    assert seen["drugs"].shape == (3, 64 + 17) and seen["drugs"][:, -1].tolist() == [0.0, 1.0, 1.0]
    np.testing.assert_array_equal(seen["drugs"][1:, :64], 0.0)  # name tokens carry no fingerprint
    [unseen] = f.transform(NEW)
    assert unseen["diseases"].shape == (2, 17)  # text needs no training vocabulary


def test_transform_before_fit_is_an_error(tmp_path: Path) -> None:
    f = TrialFeaturizer(HashingTextEncoder(dim=16), MorganEncoder(n_bits=64), ICD, EmbeddingCache(tmp_path),
                        max_inclusion=8, max_exclusion=5, max_drugs=5, max_codes=5)
    with pytest.raises(RuntimeError, match="before fit"):
        f.transform(TRAIN)
