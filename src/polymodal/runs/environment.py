"""The machine a number was measured on; every run folder and results file carries it."""

from __future__ import annotations

import os
import platform
from typing import Any


def environment() -> dict[str, Any]:
    import lightning
    import sklearn
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "sklearn": sklearn.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
    }
    if torch.cuda.is_available():
        env["device"] = f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
        env["cuda"] = torch.version.cuda
    return env
