"""Zero-shot scoring of a cancer cohort a finished UMPSNet run never saw (the paper's external cohort).

``polymodal eval RUN --data-dir DIR --cohort NAME`` reads ``tcga_<name>_all_clean.csv[.gz]`` (any
file in the MCAT format) and the metadata file of DIR, scores every patient with each fold's saved
headline model (the fold's fitted genomic scaler, its weights; the cancer-type sentence of the new
cohort reaches the guided gate through the text encoder, which is what lets a pan-cancer model
route an unseen cancer), averages the risks over folds and seeds, and writes
``RUN/zero_shot_<name>/`` with metrics.json, predictions.csv and report.md, labelled zero-shot.
No outcome of the new cohort is used for anything but the metrics; the Kaplan-Meier groups split at
the cohort's median predicted risk (no outcome involved).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.data.collate import Collator, FeatureDataset
from polymodal.data.paths import resolve_data_dir
from polymodal.data.sources.tcga import (
    METADATA,
    _folder,
    check_genomic_columns,
    cohort_file,
    read_cohort,
    read_metadata,
)
from polymodal.data.splits import SkipReport
from polymodal.errors import MissingDataError
from polymodal.io import write_json
from polymodal.tasks.survival import bootstrap_survival_ci, survival_metrics

__all__ = ["zero_shot"]


def zero_shot(run_dir: str | Path, *, cohort: str, data_dir: str | Path | None = None,
              cache_dir: str | Path | None = None) -> tuple[dict[str, Any], Path]:
    """Score ``cohort`` with a finished run's models; returns (metrics, output folder)."""
    from polymodal.experiment import atomic_csv, environment
    from polymodal.recipes.umpsnet import NAME, UMPSNetConfig, build_umpsnet, embed_templates
    from polymodal.reports import write_report
    from polymodal.survival_experiment import _risk, _risk_groups, _slug

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise MissingDataError(f"{config_path} is missing: is {run_dir} a finished `polymodal run umpsnet` folder?")
    cfg = UMPSNetConfig.model_validate({k: v for k, v in json.loads(config_path.read_text()).items() if k != "recipe"})
    folder = _folder(resolve_data_dir(data_dir))
    path = cohort_file(folder, cohort)
    skips = SkipReport()
    records, table = read_cohort(path, read_metadata(folder / METADATA), skips)
    if not records:
        raise MissingDataError(f"{path.name}: no patient left to score (skips: {skips.to_dict()})")
    text = embed_templates(cfg, records, Path(cache_dir) if cache_dir else None)
    mods = ("cancer", "genomics", "metadata")
    y = np.array([[float(r.target[0]), float(r.target[1])] for r in records])
    risks, used = [], []
    for k in range(cfg.n_folds):
        feat_path = run_dir / f"fold_{k}" / "featurizer.pkl"
        if not feat_path.exists():
            raise MissingDataError(f"{feat_path} is missing: the run did not finish fold {k}")
        with open(feat_path, "rb") as fh:
            feat = pickle.load(fh)
        check_genomic_columns(table, feat.columns, path)
        feat.with_data(table, text)
        data = FeatureDataset([{m: f[m] for m in mods} for f in feat.transform(records)], y)
        for weights in sorted((run_dir / f"fold_{k}" / _slug(NAME) / "all").glob("seed_*/model.pt")):
            n_groups = len(cfg.cohorts)
            model = build_umpsnet(cfg, feat, mods, n_groups)
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            risks.append(_risk(model, data, Collator(mods)))
            used.append(str(weights.relative_to(run_dir)))
    if not risks:
        raise MissingDataError(f"no saved {NAME} model under {run_dir}/fold_*/{_slug(NAME)}/all/seed_*/model.pt")
    risk = np.mean(risks, axis=0)
    t, e = y[:, 0], y[:, 1].astype(bool)
    c = survival_metrics(t, e, risk)["c_index"]
    lo, hi = bootstrap_survival_ci(t, e, [risk], n_boot=cfg.n_boot, seed=0)
    seen = cohort.upper() in {x.upper() for x in cfg.cohorts}
    label = "seen in training: NOT zero-shot" if seen else "zero-shot: this cancer type was never seen in training"
    groups = _risk_groups(pd.DataFrame({"time": t, "event": e.astype(int), "centred_risk": risk - np.median(risk)}))
    name = f"{NAME} (zero-shot)" if not seen else NAME
    metrics: dict[str, Any] = {
        "recipe": NAME, "task": "survival", "primary_metric": "c_index", "zero_shot": not seen,
        "dataset": {"description": f"{path.name}: {len(records)} patients, {int(e.sum())} events ({label}); the "
                                   f"model was trained on {', '.join(cfg.cohorts)}", "files": {"test": str(path)},
                    "sizes": {"test": len(records)}},
        "models": {
            name: {"kind": "recipe", "splits": {"test": {"c_index": {"mean": c, "ci_low": lo, "ci_high": hi}}},
                   "n": {"test": len(records)}, "seeds": len(risks), "risk_groups": groups},
            "kaplan-meier": {"kind": "trivial", "splits": {"test": {"c_index": {"mean": 0.5}}},
                             "n": {"test": len(records)}},
        },
        "skips": skips.to_dict(), "environment": environment(),
        "notes": [label, f"risk = mean over {len(risks)} saved models (every fold and seed): {', '.join(used)}",
                  "Kaplan-Meier groups split at the cohort's median predicted risk (no outcome used)."],
    }
    out = run_dir / f"zero_shot_{cohort.lower()}"
    write_json(out / "metrics.json", metrics)
    frame = pd.DataFrame({"id": [r.id for r in records], "split": "test", "model": name, "seed": 0,
                          "time": t, "event": e.astype(int), "risk": risk})
    atomic_csv(frame, out / "predictions.csv")
    write_report(out, metrics, frame)
    return metrics, out
