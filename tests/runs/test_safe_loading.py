"""Opening a run folder never executes code from it: a planted pickle payload is refused, not run."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from polymodal.errors import DataError
from polymodal.io import load_torch_file


class _Payload:
    """Unpickling this object would create the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"epoch": 3, "state_dict": _Payload(marker)}))


def test_a_crafted_weights_file_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _plant(tmp_path / "model.pt", marker)
    with pytest.raises(DataError, match=r"model\.pt: not a loadable weights file"):
        load_torch_file(tmp_path / "model.pt")
    assert not marker.exists()


def test_resume_from_a_crafted_checkpoint_stops_with_one_line(tmp_path: Path) -> None:
    from polymodal.config import ProtocolConfig, TrainConfig
    from polymodal.runs import run_recipe
    from tests.synthetic import TOY, ToyConfig

    cfg = ToyConfig(train=TrainConfig(max_epochs=2, patience=2, batch_size=32, progress=False, threads=1),
                    protocol=ProtocolConfig(seeds=1, selections=("valid",), n_boot=20, baselines=False,
                                            robustness=False))
    out = tmp_path / "run"
    run_recipe(TOY, cfg, out_dir=out, progress=False)
    job = out / "jobs" / "valid" / "seed_0" / "toy-experts"
    (job / "result.json").unlink()  # as if killed before the job finished: the rerun resumes its checkpoint
    shutil.rmtree(job / "checkpoints")
    marker = tmp_path / "pwned"
    _plant(job / "checkpoints" / "last.ckpt", marker)
    with pytest.raises(DataError, match=r"last\.ckpt: not a loadable weights file"):
        run_recipe(TOY, cfg, out_dir=out, progress=False)
    assert not marker.exists()
