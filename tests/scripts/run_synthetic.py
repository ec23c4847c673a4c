"""Run the toy recipe in a fresh process: `python run_synthetic.py OUT DEVICES MAX_EPOCHS [SEEDS]`.

Used by the DDP test (Lightning's launcher re-executes this script for rank 1) and the
kill-and-resume test.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch.distributed as dist
from tests.synthetic import TOY, ToyConfig

from polymodal.config import ProtocolConfig, TrainConfig
from polymodal.runs import run_recipe


def main() -> None:
    out, devices, max_epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    seeds = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    train = TrainConfig(max_epochs=max_epochs, patience=max_epochs, batch_size=32, lr=3e-3, devices=devices,
                        progress=False, threads=1)
    protocol = ProtocolConfig(seeds=seeds, selections=("valid",), n_boot=100, robustness=False, baselines=False)
    metrics = run_recipe(TOY, ToyConfig(train=train, protocol=protocol), out_dir=out, progress=False)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    print(f"rank={rank} world_size={world} wrote_metrics={metrics is not None}", flush=True)
    if metrics is not None:
        print(f"test_roc_auc={metrics['models']['toy-experts']['splits']['test']['roc_auc']['mean']:.3f}", flush=True)


if __name__ == "__main__":
    main()
