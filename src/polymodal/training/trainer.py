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
    ]
    if cfg.progress:
        callbacks.append(_progress_bar())
    distributed = cfg.devices > 1 or cfg.num_nodes > 1
    strategy: Any = "auto"
    if distributed:
        backend = "gloo" if cfg.accelerator == "cpu" else "nccl"
        strategy = DDPStrategy(process_group_backend=backend)
    return L.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
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
    resumed_from = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) if last.exists() else -1
    trainer.fit(system, train_loader, val_loader, ckpt_path=str(last) if last.exists() else None)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best and trainer.is_global_zero:
        system.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    return resumed_from
