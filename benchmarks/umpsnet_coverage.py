"""Benchmark: zero-shot C-index of umpsnet (trained on BLCA) on LUAD as genomic coverage is lowered.

    flock /tmp/pm-cpu.lock python benchmarks/umpsnet_coverage.py [--data-dir DIR] [--out runs/bench_umpsnet_coverage]

1. Train: the recipe's zero-shot configuration of benchmarks/umpsnet.py (headline network only,
   trained on BLCA with the genomic columns LUAD also has; 5 UMPSNet folds x 3 seeds), through
   ``polymodal.recipes.umpsnet.run``. Each fold's training statistics (inner-training BLCA patients,
   raw values, per-feature mean and median in the model's order) are stored as
   ``fold_k/training_stats.json``.
2. Score LUAD zero-shot (mean risk of the 15 saved models, as ``eval --cohort`` does) with the
   genomic features removed at random down to 100, 75, 50 and 25% coverage (5 random draws per
   level below 100%), the removed ones imputed with each fold's BLCA training median
   (``polymodal.data.training_stats.impute``); also with the genomic modality masked as a whole
   (the missing-modality path, coverage 0), and through the whole external path on a derived
   "foreign release" of LUAD (bare expression names, half the expression genes, a tenth of the
   copy-number genes, some genes under an older symbol, shuffled columns):
   ``polymodal.data.external.prepare_cohort``.
3. LUAD's own baselines: Kaplan-Meier (C-index 0.5) and a clinical Cox (age, sex, stage, T, N, M)
   fitted on LUAD by internal 5-fold cross-validation (3 repeats; L2 penalty chosen on an inner
   validation split of each training part; out-of-fold risks standardised on that inner split).

C-index: Harrell's (sksurv) on all LUAD patients, mean over the draws of a level; 95% CI: percentile
bootstrap of patients (stratified by event, 1000 resamples, the same resamples for every row, so
differences are paired); p: two-sided bootstrap p of the difference, Holm-adjusted within each family.
Nothing here was chosen by looking at LUAD outcomes.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from polymodal.data.collate import Collator, FeatureDataset  # noqa: E402
from polymodal.data.coverage import modality_coverage, norm_share  # noqa: E402
from polymodal.data.external import prepare_cohort  # noqa: E402
from polymodal.data.foreign_release import foreign_release  # noqa: E402
from polymodal.data.harmonise import TCGA, load_alias_table  # noqa: E402
from polymodal.data.paths import resolve_data_dir  # noqa: E402
from polymodal.data.sources.tcga import (  # noqa: E402
    METADATA,
    _folder,
    cohort_file,
    load_cohorts,
    read_cohort,
    read_metadata,
)
from polymodal.data.training_stats import TrainingStats, impute  # noqa: E402
from polymodal.encoders.input_norms import group_snn_input_norms  # noqa: E402
from polymodal.evaluation.bootstrap import stratified_indices  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json, write_text  # noqa: E402
from polymodal.recipes.umpsnet import (  # noqa: E402
    UMPSNetConfig,
    UMPSNetFeaturizer,
    build_umpsnet,
    embed_templates,
    run,
)
from polymodal.runs.survival_cv import _outputs, _slug  # noqa: E402
from polymodal.tasks.survival import _c_index  # noqa: E402

MODS = ("cancer", "genomics", "metadata")
LEVELS = (1.0, 0.75, 0.5, 0.25)
DRAWS = 5
N_BOOT = 1000


def train(cfg: UMPSNetConfig, data_dir: Path | None, out: Path) -> float:
    """The BLCA-only zero-shot training of benchmarks/umpsnet.py (resumes a finished run)."""
    t0 = time.perf_counter()
    if not (out / "metrics.json").exists():
        run(cfg, data_dir=data_dir, out_dir=out)
    return time.perf_counter() - t0


def load_models(cfg: UMPSNetConfig, run_dir: Path, blca_genomics: pd.DataFrame) -> list[dict[str, Any]]:
    """Per fold: the fitted featuriser, its seeds' models, and its training statistics (written as JSON)."""
    folds = []
    for k in range(cfg.n_folds):
        fold = run_dir / f"fold_{k}"
        with open(fold / "featurizer.pkl", "rb") as fh:
            feat = pickle.load(fh)
        train_ids = json.loads((fold / "split.json").read_text())["train"]
        stats_path = TrainingStats.fit({"genomics": blca_genomics.loc[train_ids, feat.columns]}).save(
            fold / "training_stats.json")
        stats = TrainingStats.load(stats_path)  # what a later eval reads: the stored data, not the fit in memory
        models = []
        for weights in sorted((fold / _slug("umpsnet") / "all").glob("seed_*/model.pt")):
            model = build_umpsnet(cfg, feat, MODS, 1)
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            model.eval()
            models.append(model)
        folds.append({"feat": feat, "models": models, "stats": stats.modalities["genomics"]})
    return folds


def score(folds: list[dict[str, Any]], tables: list[pd.DataFrame], records: list, text: dict, y: np.ndarray,
          mask_genomics: bool = False) -> np.ndarray:
    """(N,) mean risk over every fold's seeds; ``tables[k]``: fold k's (N, F) raw genomic table (imputed)."""
    risks = []
    for fold, table in zip(folds, tables, strict=True):
        feat = fold["feat"].with_data(table, text)
        data = FeatureDataset([{m: f[m] for m in MODS} for f in feat.transform(records)], y)
        for model in fold["models"]:
            risks.append(_outputs(model, data, Collator(MODS), drop="genomics" if mask_genomics else None)[0])
    return np.mean(risks, axis=0)


def cox_luad(records: list, table: pd.DataFrame, groups: dict, text: dict, penalizers: tuple[float, ...],
             repeats: int = 3, n_folds: int = 5) -> list[np.ndarray]:
    """Out-of-fold clinical Cox risks on LUAD, one (N,) array per CV repeat (standardised per fold)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from polymodal.baselines.survival import CoxBaseline

    y = np.array([[float(r.target[0]), float(r.target[1])] for r in records])
    e = y[:, 1].astype(int)
    out = []
    for rep in range(repeats):
        oof = np.zeros(len(records))
        for tr, te in StratifiedKFold(n_folds, shuffle=True, random_state=rep).split(y, e):
            itr, iva = train_test_split(tr, test_size=0.2, random_state=rep, stratify=e[tr])
            feat = UMPSNetFeaturizer(table, groups, text).fit([records[i] for i in itr])
            x = {p: feat.clinical([records[i] for i in ix]) for p, ix in (("tr", itr), ("va", iva), ("te", te))}
            keep = [c for c in x["tr"].columns if x["tr"][c].std() > 0]
            cox = CoxBaseline(penalizer=penalizers).fit(x["tr"][keep], y[itr], x["va"][keep], y[iva])
            va, risk = (np.log(cox.predict(x[p][keep])) for p in ("va", "te"))
            scale = va.std() if va.std() > 0 else 1.0
            oof[te] = (risk - np.median(va)) / scale
        out.append(oof)
    return out


def boot_c_index(t: np.ndarray, e: np.ndarray, risk: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B,) Harrell's C on B bootstrap resamples given as (B, N) multiplicities, in two matrix products.

    The same pairs and ties as sksurv's ``concordance_index_censored`` (i comparable with j when i has
    an event and t_j > t_i, or t_j == t_i and j is censored; tied risks count 1/2), weighted by how
    often each patient was drawn; :func:`main` checks it against sksurv on the resamples it uses.
    """
    comparable = e[:, None] & ((t[None, :] > t[:, None]) | ((t[None, :] == t[:, None]) & ~e[None, :]))  # (N, N)
    score = (risk[:, None] > risk[None, :]) + 0.5 * (risk[:, None] == risk[None, :])
    num = ((counts @ (comparable * score)) * counts).sum(1)
    den = ((counts @ comparable.astype(float)) * counts).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def alias_renames(genes: list[str], n: int, seed: int) -> dict[str, str]:
    """Up to ``n`` training genes -> an unambiguous older symbol of theirs (offline alias table)."""
    table = load_alias_table()
    if table is None:
        return {}
    have = set(genes)
    options: dict[str, list[str]] = {}
    for alias, symbols in table.aliases.items():
        (s,) = symbols if len(symbols) == 1 else (None,)
        if s in have and alias not in table.symbols and alias not in have and alias.isalnum():
            options.setdefault(s, []).append(alias)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(sorted(options), size=min(n, len(options)), replace=False)
    return {g: sorted(options[g])[0] for g in chosen}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_umpsnet_coverage"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="where the json/md go")
    parser.add_argument("--smoke", action="store_true", help="model-free text, 2 epochs, 50 resamples (a quick check "
                        "of the script on generated data; never for the committed results)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the committed .json")
    args = parser.parse_args()
    if args.render_only:
        payload = json.loads((Path(args.results) / "umpsnet_coverage.json").read_text())
        write_text(Path(args.results) / "umpsnet_coverage.md", render(payload))
        return
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    data_dir = resolve_data_dir(args.data_dir)
    cfg = UMPSNetConfig(cohorts=("BLCA",), with_treatment=False, per_cancer=False, genomic_only=False,
                        genomic_columns_also_in=("LUAD",))
    n_boot = N_BOOT
    if args.smoke:
        cfg = cfg.model_copy(update={"text_model": "hashing", "train": cfg.train.model_copy(update={"max_epochs": 2})})
        n_boot = 50
    run_dir = Path(args.out) / "blca_only_luad_columns"
    train_wall = train(cfg, data_dir, run_dir)
    blca = load_cohorts(data_dir, ("BLCA",), n_folds=cfg.n_folds, columns_also_in=("LUAD",))
    folds = load_models(cfg, run_dir, blca.genomics)
    features = list(folds[0]["feat"].columns)
    n_feat = len(features)

    folder = _folder(data_dir)
    luad_path = cohort_file(folder, "LUAD")
    records, luad = read_cohort(luad_path, read_metadata(folder / METADATA))
    text = embed_templates(cfg, records, None)
    y = np.array([[float(r.target[0]), float(r.target[1])] for r in records])
    t, e = y[:, 0], y[:, 1].astype(bool)
    ids = [r.id for r in records]
    norms = [group_snn_input_norms(m.encoders["genomics"], n_feat) for f in folds for m in f["models"]]

    def impute_all(table: pd.DataFrame) -> list[pd.DataFrame]:
        return [impute(table, f["stats"])[0] for f in folds]

    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for level in LEVELS:
        draws = 1 if level == 1.0 else DRAWS
        risks, shares, wshares = [], [], []
        for _ in range(draws):
            keep = sorted(rng.choice(n_feat, size=round(level * n_feat), replace=False))
            present = np.zeros(n_feat, dtype=bool)
            present[keep] = True
            cols = [features[i] for i in keep]
            risks.append(score(folds, impute_all(luad[cols]), records, text, y))
            shares.append(present.mean())
            wshares.append(float(np.mean([norm_share(n, present) for n in norms])))
        rows.append({"name": f"zero-shot, {level:.0%} of genomic features", "kind": "recipe", "coverage": level,
                     "risks": risks, "feature_share": float(np.mean(shares)), "weight_share": float(np.mean(wshares)),
                     "draws": draws})
    rows.append({"name": "zero-shot, genomics masked (missing-modality path)", "kind": "ablation", "coverage": 0.0,
                 "risks": [score(folds, impute_all(luad.iloc[:, :0]), records, text, y, mask_genomics=True)],
                 "feature_share": 0.0, "weight_share": 0.0, "draws": 1})

    # The whole external path on a derived foreign release of the LUAD file.
    raw = pd.read_csv(luad_path, low_memory=False)
    raw = raw.loc[:, [c for c in raw.columns if not str(c).startswith("Unnamed")]]
    renames = alias_renames([c.removesuffix("_rnaseq") for c in features if c.endswith("_rnaseq")], 25, seed=0)
    release = foreign_release(raw, expression_share=0.5, cnv_share=0.1, seed=0, rename=renames)
    stats0 = TrainingStats.load(run_dir / "fold_0" / "training_stats.json")
    mean_norms = np.mean(norms, axis=0)
    prepared = prepare_cohort(release.frame, stats0, TCGA, min_coverage=0.25, norms={"genomics": mean_norms},
                              file="tcga_luad_foreign_release.csv.gz")
    present_cols = [c for c in features if c not in set(prepared.harmonise.missing)]
    frame = pd.concat([prepared.passthrough[["case_id"]], prepared.tables["genomics"][present_cols]], axis=1)
    ext = frame.drop_duplicates("case_id").set_index("case_id").loc[ids]  # one row per patient (slides repeat)
    cov = prepared.coverage[0]
    by_assay = {s: modality_coverage("genomics" + s, [c for c in features if c.endswith(s)], present_cols).to_dict()
                for s in ("_rnaseq", "_cnv")}
    rows.append({"name": "zero-shot, foreign release (harmonised + imputed)", "kind": "recipe",
                 "coverage": cov.feature_share, "risks": [score(folds, impute_all(ext), records, text, y)],
                 "feature_share": cov.feature_share, "weight_share": cov.weight_share, "draws": 1})
    cox = cox_luad(records, luad, blca.groups, text, cfg.cox_penalizers)
    rows.append({"name": "cox-clinical (fitted on LUAD, internal 5-fold CV x 3)", "kind": "baseline",
                 "coverage": None, "risks": cox, "draws": len(cox)})
    rows.append({"name": "kaplan-meier", "kind": "trivial", "coverage": None, "risks": [np.zeros(len(records))],
                 "draws": 1})

    # Paired bootstrap: the same patient resamples for every row.
    draws_idx = stratified_indices(np.random.default_rng(1), e.astype(np.int64), n_boot)
    counts = np.stack([np.bincount(d, minlength=len(t)) for d in draws_idx]).astype(float)  # (B, N)
    for r in rows:
        r["c_index"] = float(np.mean([_c_index(t, e, x) for x in r["risks"]]))
        r["per_draw"] = [float(_c_index(t, e, x)) for x in r["risks"]]
        r["boot"] = np.mean([boot_c_index(t, e, x, counts) for x in r["risks"]], axis=0)
        # The matrix form must equal sksurv: on the full cohort and on the first resamples.
        x = r["risks"][0]
        assert np.isclose(boot_c_index(t, e, x, np.ones((1, len(t))))[0], r["per_draw"][0])
        for b in range(3):
            d = draws_idx[b]
            assert np.isclose(boot_c_index(t, e, x, counts[b : b + 1])[0], _c_index(t[d], e[d], x[d]))
        lo, hi = np.nanquantile(r["boot"], [0.025, 0.975])
        r["ci_low"], r["ci_high"] = float(lo), float(hi)
    full = rows[0]
    cox_row = next(r for r in rows if r["kind"] == "baseline")
    comparisons = []
    from statsmodels.stats.multitest import multipletests

    for family, ref in (("vs 100% coverage", full), ("vs cox-clinical on LUAD", cox_row)):
        fam = []
        for r in rows:
            if r is ref or r["kind"] in ("baseline", "trivial"):
                continue
            d = r["boot"] - ref["boot"]
            d = d[np.isfinite(d)]
            lo, hi = np.quantile(d, [0.025, 0.975])
            p = float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean())))
            fam.append({"family": family, "model": r["name"], "reference": ref["name"],
                        "diff": r["c_index"] - ref["c_index"], "ci_low": float(lo), "ci_high": float(hi), "p": p})
        adj = multipletests([c["p"] for c in fam], method="holm")[1]
        for c, a in zip(fam, adj, strict=True):
            c["p_holm"] = float(a)
            c["verdict"] = ("better" if c["ci_low"] > 0 else "worse" if c["ci_high"] < 0 else "no difference shown")
        comparisons += fam

    payload: dict[str, Any] = {
        "benchmark": "umpsnet_coverage", "command": "flock /tmp/pm-cpu.lock python benchmarks/umpsnet_coverage.py",
        "trained_on": "BLCA (5 UMPSNet folds x 3 seeds, headline network, genomic columns LUAD also has)",
        "scored": f"LUAD: {len(records)} patients, {int(e.sum())} events", "n_features": n_feat,
        "feature_kinds": {s: sum(c.endswith(s) for c in features) for s in ("_rnaseq", "_cnv")},
        "models_averaged": sum(len(f["models"]) for f in folds), "draws_per_level": DRAWS, "n_boot": n_boot,
        "imputation": "each fold's BLCA inner-training median (raw values), from fold_k/training_stats.json",
        "rows": [{k: v for k, v in r.items() if k not in ("risks", "boot")} for r in rows],
        "comparisons": comparisons,
        "foreign_release": {"derived": release.summary(), "alias_renames": len(renames),
                            "harmonise": prepared.harmonise.counts(), "coverage": cov.to_dict(), "by_assay": by_assay,
                            "report_lines": prepared.lines()},
        "train_wall_seconds": round(train_wall, 1), "total_wall_seconds": round(time.perf_counter() - t_start, 1),
        "environment": environment(),
        "load_note": "run under the shared CPU lock (flock /tmp/pm-cpu.lock) on a 2-core machine, torch threads 1",
    }
    res = Path(args.results)
    write_json(res / "umpsnet_coverage.json", payload)
    write_text(res / "umpsnet_coverage.md", render(payload))
    print(render(payload))


def render(p: dict[str, Any]) -> str:
    env = p["environment"]
    lines = [
        "# umpsnet zero-shot (BLCA -> LUAD) as genomic coverage is lowered", "",
        f"Command: `{p['command']}`. Model: {p['trained_on']}; risk = mean of {p['models_averaged']} saved models. "
        f"Scored: {p['scored']}. Genomic features: {p['n_features']} ({p['feature_kinds']['_rnaseq']} expression, "
        f"{p['feature_kinds']['_cnv']} copy number). Removed features at random ({p['draws_per_level']} draws "
        f"per level below 100%), imputed with {p['imputation']}. Wall time {p['total_wall_seconds']:.0f} s (training "
        f"{p['train_wall_seconds']:.0f} s, 0 when resumed) on {env['cpu_count']} cores, {p['load_note']}.", "",
        f"C-index: Harrell's on all LUAD patients, mean over draws [95% CI: bootstrap of patients, stratified by "
        f"event, {p['n_boot']} resamples shared by every row]; per draw: min-max over the draws; weight share: the "
        "share of the genomic SNN's first-layer input weight (column L2 norms, mean over models) on present features.",
        "", "| scored with | kind | feature share | weight share | C-index [95% CI] | per draw (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    for r in p["rows"]:
        fs = f"{r['feature_share']:.0%}" if r.get("feature_share") is not None else "-"
        ws = f"{r['weight_share']:.0%}" if r.get("weight_share") is not None else "-"
        cell = f"{r['c_index']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        pd_ = r["per_draw"]
        span = f"{min(pd_):.3f}-{max(pd_):.3f} ({len(pd_)})" if len(pd_) > 1 else "-"
        lines.append(f"| {r['name']} | {r['kind']} | {fs} | {ws} | {cell} | {span} |")
    lines += ["", "## Paired differences (bootstrap of patients; Holm within each family)", "",
              "| family | model | difference [95% CI] | p | p (Holm) | verdict |", "|---|---|---|---|---|---|"]
    for c in p["comparisons"]:
        pv, ph = (f"< {1 / p['n_boot']:.2g}" if x == 0 else f"{x:.3g}" for x in (c["p"], c["p_holm"]))
        lines.append(f"| {c['family']} | {c['model']} | {c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | "
                     f"{pv} | {ph} | {c['verdict']} |")
    f = p["foreign_release"]
    lines += ["", "## The foreign release, through harmonise + coverage + impute", "",
              f"Derived from the LUAD file: {f['derived']}; {f['alias_renames']} kept expression genes renamed to an "
              "older symbol (offline alias table). What `prepare_cohort` reported:", ""]
    lines += [f"- {x}" for x in f["report_lines"]]
    lines += ["- by assay: " + "; ".join(f"{v['modality']}: {v['n_present']} of {v['n_features']} "
                                          f"({v['feature_share']:.0%})" for v in f["by_assay"].values())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
