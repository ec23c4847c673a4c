"""Training on Lightning: the thin system module, the trainer factory, checkpoints and seeding."""

from polymodal.training.predict import predict_scores
from polymodal.training.system import MultimodalSystem
from polymodal.training.trainer import AtomicCheckpointIO, TrainConfig, make_trainer, seed_everything

__all__ = ["AtomicCheckpointIO", "MultimodalSystem", "TrainConfig", "make_trainer", "predict_scores", "seed_everything"]
