"""A small synthetic two-modality binary problem with a planted signal, for runner tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from polymodal.data.schema import Record
from polymodal.data.splits import DatasetSplits
from polymodal.encoders.trainable import ProjectionEncoder, ResidualProjection
from polymodal.experiment import BinaryProblem
from polymodal.fusion.mode_experts import ModeExpertsFusion
from polymodal.model import MultimodalModel
from polymodal.objectives import BinaryCrossEntropy, CauchyGateLoss, WeightedSum

DIM = 6


def make_records(n: int, seed: int, offset: int = 0) -> list[Record]:
    """The label is carried by the mean of the "signal" tokens' first feature; "noise" is noise."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        y = float(rng.random() < 0.5)
        t = int(rng.integers(1, 5))
        signal = rng.normal(size=(t, DIM)).astype(np.float32)
        signal[:, 0] += 1.5 if y else -1.5
        noise = rng.normal(size=(int(rng.integers(0, 4)), DIM)).astype(np.float32)
        records.append(Record(id=f"S{offset + i:05d}", inputs={"signal": signal, "noise": noise}, target=y,
                              meta={"nct_number": offset + i}))
    return records


class ArrayFeaturizer:
    modalities: ClassVar[list[str]] = ["noise", "signal"]
    max_len: ClassVar[dict[str, int]] = {"noise": 4, "signal": 4}

    def fit(self, records: Sequence[Record]) -> ArrayFeaturizer:
        return self

    def transform(self, records: Sequence[Record]) -> list[dict[str, np.ndarray]]:
        return [{m: np.asarray(r.inputs[m], dtype=np.float32).reshape(-1, DIM) for m in self.modalities}
                for r in records]

    def pooled(self, features: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
        return np.stack([np.concatenate([f[m].mean(0) if len(f[m]) else np.zeros(DIM) for m in self.modalities])
                         for f in features])


def build_toy_model(featurizer: ArrayFeaturizer) -> MultimodalModel:
    encoders = {m: ProjectionEncoder(DIM, 8) for m in featurizer.modalities}
    return MultimodalModel(encoders, ModeExpertsFusion(list(encoders), 8, layers=1), ResidualProjection(8, 1))


def build_toy_objective(y: np.ndarray) -> WeightedSum:
    return WeightedSum({"bce": (BinaryCrossEntropy(), 1.0), "cauchy": (CauchyGateLoss(), 0.01)})


def make_problem(n_train: int = 240, seed: int = 0) -> BinaryProblem:
    splits = DatasetSplits(
        train=make_records(n_train, seed), valid=make_records(80, seed + 1, 10_000),
        test=make_records(120, seed + 2, 20_000), description="synthetic planted signal",
    )

    return BinaryProblem(
        name="toy-experts", splits=splits, make_featurizer=ArrayFeaturizer, build_model=build_toy_model,
        build_objective=build_toy_objective,
        document=lambda r: " ".join("hi" if v > 0 else "lo" for v in np.asarray(r.inputs["signal"])[:, 0]),
    )


# ---------------------------------------------------------------------------------------------
# A toy recipe on the one runner (not registered: tests pass it to run_recipe directly).

from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from polymodal.config import ProtocolConfig, TrainConfig  # noqa: E402
from polymodal.recipes.registry import Paper, Recipe  # noqa: E402
from polymodal.runs.problem import Problem  # noqa: E402
from polymodal.runs.record_binary import (  # noqa: E402
    RecordBinarySpec,
    make_fold,
    record_binary_jobs,
    selection_manifest,
)
from polymodal.tasks import BinaryTask  # noqa: E402


class ToyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(8, description="unused; changes the config hash in a test")
    train: TrainConfig = TrainConfig(max_epochs=12, patience=4, batch_size=32, lr=3e-3, progress=False, threads=1)
    protocol: ProtocolConfig = ProtocolConfig(seeds=2, n_boot=200)


def toy_document(record) -> str:  # type: ignore[no-untyped-def]
    return " ".join("hi" if v > 0 else "lo" for v in np.asarray(record.inputs["signal"])[:, 0])


def build_toy(cfg: ToyConfig, *, data_dir=None, cache_dir=None) -> Problem:  # type: ignore[no-untyped-def]
    splits = make_problem().splits
    folds = [make_fold(splits, s, cfg.protocol, ArrayFeaturizer) for s in cfg.protocol.selections]
    spec = RecordBinarySpec("toy-experts", build_toy_model, build_toy_objective, toy_document,
                            robustness=cfg.protocol.robustness, baselines=cfg.protocol.baselines)
    return Problem(task=BinaryTask(headline="toy-experts", selections=cfg.protocol.selections,
                                   n_boot=cfg.protocol.n_boot, unit="record"),
                   jobs=record_binary_jobs(spec, folds, cfg.protocol.seeds), dataset={"description": "planted"},
                   split_manifest=selection_manifest(folds))


TOY = Recipe(name="toy", paper=Paper("toy", "0000.00000"), summary="planted signal", config_cls=ToyConfig,
             build=build_toy)


