"""Trainer factory: early stopping and checkpoints on the selection split, atomic checkpoints, DDP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import DDPStrategy

from polymodal.config import TrainConfig
from polymodal.io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it, so a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class RandomStateCheckpoint(L.Callback):
    """Saves the random state of Python, NumPy and torch in every checkpoint and restores it on resume.

    With :class:`EpochShuffleSampler` for the training order this makes a resumed fit continue exactly
    as the uninterrupted one would have (dropout masks included): kill-and-resume gives the same model.
    Everything is stored as tensors and plain numbers, so checkpoints load with ``weights_only=True``.
    """

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        import random

        import numpy as np

        _, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss = random.getstate()
        checkpoint["polymodal_random_state"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        import random

        import numpy as np

        state = checkpoint.get("polymodal_random_state")
        if not state:
            return
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        n = state["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
        p = state["python"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """A shuffle whose order depends only on (seed, epoch), so a resumed fit sees the same batches.

    A DataLoader generator seeded once restarts from its seed after a resume and replays epoch 0's
    order; Lightning calls :meth:`set_epoch` before every epoch, which fixes that.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):  # type: ignore[no-untyped-def]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


def resolve_accelerator(accelerator: str) -> str:
    """``"auto"`` -> ``"gpu"`` when CUDA is present, else ``"cpu"`` (so DDP picks nccl or gloo correctly)."""
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if accelerator == "cuda" else accelerator


def quiet_lightning() -> None:
    """Silence Lightning's per-fit banners ("GPU available: False" ...) in worker processes."""
    import logging

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (and dataloader workers) for a reproducible run."""
    L.seed_everything(seed, workers=True, verbose=False)


def make_trainer(
    run_dir: str | Path, cfg: TrainConfig, *, monitor: str = "val_roc_auc", mode: str = "max"
) -> L.Trainer:
    """A Trainer that stops early and keeps the best checkpoint by ``monitor`` on the selection split.

    ``checkpoints/last.ckpt`` is rewritten every epoch, so an interrupted fit resumes with
    ``trainer.fit(..., ckpt_path=last)``. With ``devices > 1`` (or several nodes) the same code runs
    under DDP; on CPU the gloo backend is used.
    """
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    callbacks: list[L.Callback] = [
        EarlyStopping(monitor=monitor, mode=mode, patience=cfg.patience),
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_last=True,
                        enable_version_counter=False),
        RandomStateCheckpoint(),
    ]
    if cfg.progress:
        callbacks.append(_progress_bar())
    distributed = cfg.devices > 1 or cfg.num_nodes > 1
    accelerator = resolve_accelerator(cfg.accelerator)
    strategy: Any = "auto"
    if distributed:
        backend = "gloo" if accelerator == "cpu" else "nccl"
        strategy = DDPStrategy(process_group_backend=backend)
    return L.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.max_epochs,
        accelerator=accelerator,
        precision=cfg.precision,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=strategy,
        callbacks=callbacks,
        logger=CSVLogger(run_dir, name="logs", version=""),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        deterministic=True,
        log_every_n_steps=1,
    )


def _progress_bar() -> L.Callback:
    try:
        import rich  # noqa: F401
    except ImportError:  # pragma: no cover - rich is a dependency, this only guards odd installs
        return TQDMProgressBar()
    return RichProgressBar(leave=False)


def fit_resumable(trainer: L.Trainer, system: L.LightningModule, train_loader: Any, val_loader: Any,
                  run_dir: str | Path) -> int:
    """Fit, resuming from ``run_dir/checkpoints/last.ckpt`` if an interrupted fit left one, then load
    the best checkpoint's weights (by the trainer's monitor) into ``system``.

    Returns:
        The epoch the fit resumed from, or -1 for a fresh start (runners record it).
    """
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    # weights_only: a checkpoint in a run folder is data; a crafted one must not run code on resume
    resumed_from = int(_load_checkpoint(last)["epoch"]) if last.exists() else -1
    trainer.fit(system, train_loader, val_loader, ckpt_path=str(last) if last.exists() else None, weights_only=True)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best and trainer.is_global_zero:
        system.load_state_dict(_load_checkpoint(Path(best))["state_dict"])
    return resumed_from


def _load_checkpoint(path: Path) -> dict[str, Any]:
    from polymodal.io import load_torch_file

    return load_torch_file(path)
