"""NLA-MMR: Natural Language-Assisted Multi-modal Medication Recommendation.

Paper: "Natural Language-Assisted Multi-modal Medication Recommendation", CIKM 2024, arXiv 2501.07166.
Data: MIMIC-III (full: credentialed PhysioNet access; the demo here: ODbL) or MIMIC-IV hosp.

Recommend the set of medications (ATC level 3) of a visit by aligning two modalities: the patient
view (a pretrained language model over the text of the visit's diagnoses and procedures, across
the patient's visits) and the medication view (each drug's chemical structure and its text).

Faithful to the paper:
  * patient view from the *text* of the codes (long titles) through a frozen pretrained language
    model, so codes unseen in training still have a meaning; visits encoded, then the history;
  * medication view from structure (molecules of the ATC3 class) and text (its description),
    fused per medication; a score per medication = similarity of patient and medication representations;
  * cross-modal alignment of patient and medication representations (a contrastive term) plus the
    accuracy losses (BCE + multi-label margin) and a DDI penalty (SafeDrug's controllable loss);
  * SafeDrug's preprocessing (ATC3 labels, top 300 medications, >= 2 visits) for the main cohort.

Deviations (each also in docs/recipes.md, section `nla-mmr`):
  1. the language model is all-MiniLM-L6-v2 (offline package) instead of the paper's biomedical PLMs;
  2. no symptom text (MIMIC-III demo NOTEEVENTS is empty; the paper extracts symptoms from notes);
  3. molecules are mean Morgan fingerprints of the ATC3 class's SMILES (SafeDrug's table, <= 3 per
     class) through an MLP, not a pretrained molecular encoder;
  4. the medication text is the ATC class path and example substance names from the WHO ATC names
     (ETHOS table), not DrugBank descriptions;
  5. visits are pooled by a learned-query attention block plus a masked sum over code tokens and
     the history by a GRU; alignment is a multi-positive InfoNCE between the patient and its medications;
  6. NDC -> ATC via ETHOS's NDC/GSN/name tables (SafeDrug's RXCUI -> ATC4 table is not available);
     prescriptions without an NDC are dropped and counted (SafeDrug forward-fills them);
  7. evaluation: repeated patient-level cross-validation (the demo has 100 patients), the threshold
     chosen on validation visits (papers use 0.5), patient-bootstrap CIs and paired comparisons;
     vocabularies and SafeDrug's top-300 ATC3 / top-2000 diagnosis filters fitted on each training
     fold (SafeDrug fits them on every patient), unseen codes mapped to an "unknown" code;
  8. early stopping on validation PR-AUC (the shared Lightning trainer) instead of a fixed epoch count;
  9. the DDI controller's target is the DDI rate of the training visits' true sets (SafeDrug: 0.06).

Published (NLA-MMR, full MIMIC-III): average Jaccard gain of 4.72% over the baselines; SafeDrug
(IJCAI 2021, full MIMIC-III): Jaccard 0.521, F1 0.677, PR-AUC 0.765, DDI rate 0.059.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from polymodal.recipes.nla_mmr_model import DROPPABLE, NlaMmrConfig, NlaMmrModel
from polymodal.recipes.nla_mmr_predict import VisitPredictor, example_rows, save_member
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe
from polymodal.runs.problem import Problem

__all__ = ["DROPPABLE", "RECIPE", "NlaMmrConfig", "NlaMmrModel", "build"]

COHORT_LABEL = {
    "safedrug": "SafeDrug cohort: patients with >= 2 admissions, history used",
    "all-admissions": "all admissions: the current visit alone (LEAP's setting)",
}

DEVIATIONS = (
    "the language model is all-MiniLM-L6-v2 (offline package) instead of the paper's biomedical pretrained models",
    "no symptom text: the MIMIC-III demo's NOTEEVENTS is empty (the paper extracts symptoms from notes)",
    "molecules are mean Morgan fingerprints (radius 2, 1024 bits) of the ATC3 class's SMILES through an MLP, "
    "not a pretrained molecular encoder",
    "medication text is the WHO ATC class path with example substance names (ETHOS table), not DrugBank descriptions",
    "visits are pooled by learned-query attention plus a masked sum over code tokens and the history by a GRU; "
    "alignment is a multi-positive InfoNCE between the patient and its medications",
    "NDC -> ATC through ETHOS's NDC, GSN and drug-name tables (SafeDrug's RXCUI -> ATC4 table is not available); "
    "prescriptions without an NDC are dropped and counted (SafeDrug forward-fills them)",
    "repeated patient-level cross-validation with the threshold chosen on validation visits (papers: one random "
    "split, threshold 0.5), patient-bootstrap CIs and paired comparisons",
    "code and label vocabularies and the top-300 ATC3 / top-2000 diagnosis filters are fitted on each training fold "
    "(SafeDrug fits them on every patient); codes unseen in training map to an 'unknown' code, and a test "
    "medication outside the fold's labels counts as missed",
    "early stopping on validation PR-AUC (visit-averaged) with the shared Lightning trainer, not a fixed epoch count",
    "the DDI controller's target is the DDI rate of the training visits' true sets (SafeDrug fixes 0.06)",
)

_FULL = "MIMIC-III v1.4 full, SafeDrug preprocessing; a different cohort from ours"
PUBLISHED = (
    PublishedResult("safedrug", "jaccard", 0.521, "SafeDrug paper (IJCAI 2021)", _FULL),
    PublishedResult("safedrug", "f1", 0.677, "SafeDrug paper (IJCAI 2021)", _FULL),
    PublishedResult("safedrug", "pr_auc", 0.765, "SafeDrug paper (IJCAI 2021)", _FULL),
    PublishedResult("safedrug", "ddi_rate", 0.059, "SafeDrug paper (IJCAI 2021)", _FULL),
    PublishedResult("nla-mmr", "jaccard_relative_gain", 0.0472, "NLA-MMR abstract: average Jaccard gain 4.72%",
                    "MIMIC-III and MIMIC-IV full; relative to the baselines"),
)


def _model(cfg: NlaMmrConfig, fold: Any, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    from polymodal.objectives.ddi import MedicationObjective
    from polymodal.runs.medication_jobs import true_ddi_rate

    torch.manual_seed(seed)
    target = cfg.target_ddi if cfg.target_ddi is not None else true_ddi_rate(fold.problem, fold.train)
    return (NlaMmrModel(fold.code_text, fold.views, cfg.dim, cfg.heads, cfg.dropout, cfg.temperature),
            MedicationObjective(torch.as_tensor(fold.problem.ddi), align_weight=cfg.align_weight, target=target,
                                kp=cfg.kp))


def _drug_root(cfg: NlaMmrConfig, data_root: Path) -> Path:
    from polymodal.data.paths import resolve_data_dir
    from polymodal.data.sources.drug_vocab import ETHOS_DIR, SAFEDRUG_DIR
    from polymodal.errors import MissingDataError

    if cfg.drug_dir:
        return Path(cfg.drug_dir)
    if (data_root / SAFEDRUG_DIR).is_dir():
        return data_root
    fallback = resolve_data_dir(None)
    if (fallback / SAFEDRUG_DIR).is_dir():
        return fallback
    raise MissingDataError(f"no {SAFEDRUG_DIR}/ in {data_root} or {fallback}; pass --drug-dir DIR (the folder "
                           f"holding {SAFEDRUG_DIR}/ and {ETHOS_DIR}/)")


def _tables(cfg: NlaMmrConfig, data_root: Path) -> tuple[Any, str]:
    from polymodal.data.sources.mimic import read_mimic3, read_mimic4

    if cfg.source == "mimic3":
        directory = Path(cfg.mimic_dir) if cfg.mimic_dir else data_root / "mimic_iii_demo_1.4"
        demo = "demo" in directory.name
        version = "MIMIC-III Clinical Database Demo v1.4" if demo else f"MIMIC-III ({directory.name})"
        return read_mimic3(directory), version
    directory = Path(cfg.mimic_dir) if cfg.mimic_dir else data_root
    return read_mimic4(directory), f"MIMIC-IV hosp ({directory.name})"


def build(cfg: NlaMmrConfig, *, data_dir: str | Path | None, cache_dir: str | Path | None = None) -> Problem:
    """ETL of both cohorts (no frequency filter: those are fitted per training fold), then one job per
    (cohort, repeat, fold, neural model, seed) and one per (cohort, repeat, fold) for the simple baselines."""
    import pandas as pd

    from polymodal.data.paths import resolve_cache_dir, resolve_data_dir
    from polymodal.data.sources.drug_vocab import load_drug_vocab
    from polymodal.data.sources.mimic import build_cohort
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.encoders.molecule import MorganEncoder
    from polymodal.encoders.text import HashingTextEncoder, SentenceTextEncoder
    from polymodal.runs.medication_jobs import MedicationCohort, MedicationSpec, medication_jobs
    from polymodal.tasks.multilabel import MultilabelTask

    data_root = resolve_data_dir(data_dir)
    cache = EmbeddingCache(resolve_cache_dir(cache_dir) / "embeddings")
    vocab = load_drug_vocab(_drug_root(cfg, data_root))
    tables, version = _tables(cfg, data_root)
    # "hashing" is the model-free text featuriser (tests, machines without the MiniLM package)
    text = HashingTextEncoder(dim=256) if cfg.text_model == "hashing" else SentenceTextEncoder(cfg.text_model)
    morgan = MorganEncoder(radius=2, n_bits=1024)
    seeds = cfg.protocol.seeds
    save_seeds = {"first-seed": (0,), "all": tuple(range(seeds)), "none": ()}[cfg.save_models]
    spec = MedicationSpec(
        "nla-mmr", partial(_model, cfg), partial(cache.encode, text), partial(cache.encode, morgan),
        save_model=lambda model, fold, thr, directory: save_member(model, fold, thr, directory, cfg.max_visits),
        save_seeds=save_seeds, droppable=DROPPABLE, seeds=seeds, folds=cfg.folds, repeats=cfg.repeats,
        max_visits=cfg.max_visits, top_meds=cfg.top_meds, top_diagnoses=cfg.top_diagnoses,
        baselines=cfg.protocol.baselines, robustness=cfg.protocol.robustness, dim=cfg.dim,
        target_ddi=cfg.target_ddi, kp=cfg.kp)
    cohorts, etl, sizes, skips, ddi, manifest, vocabularies = [], {}, {}, {}, {}, [], {}
    for name in cfg.cohorts:
        cohort = build_cohort(tables, vocab, name, top_meds=None, top_diagnoses=None, drug_fallbacks=cfg.drug_fallbacks)
        c = MedicationCohort(name, cohort, vocab, history=name == "safedrug", spec=spec)
        cohorts.append(c)
        universe = sorted({m for vs in cohort.patients.values() for v in vs for m in v.medications})
        matrix = vocab.ddi_matrix(universe)
        ddi[name] = [f"{a}|{b}" for i, a in enumerate(universe) for j, b in enumerate(universe)
                     if i < j and matrix[i, j]]
        n_visits = sum(len(vs) for vs in cohort.patients.values())
        codes = {x for vs in cohort.patients.values() for v in vs for x in (*v.diagnoses, *v.procedures)}
        sizes.update({f"{name}: patients": len(cohort.patients), f"{name}: visits": n_visits,
                      f"{name}: ATC3 medications": len(universe), f"{name}: codes": len(codes)})
        etl[name] = cohort.report.to_dict()
        skips.update({f"[{name}] {k}": v for k, v in cohort.report.skips.items()})
        groups = [s for s in sorted(cohort.patients) for _ in cohort.patients[s]]
        hadm = [v.hadm_id for s in sorted(cohort.patients) for v in cohort.patients[s]]
        for repeat in range(cfg.repeats):
            for k, (_, _, test) in enumerate(c.splits(repeat)):
                manifest += [{"subset": name, "repeat": repeat, "id": hadm[i], "patient": groups[i], "split": "test",
                              "fold": k} for i in test]
        vocabularies[name] = c.vocabulary_facts()
    first = cohorts[0]
    test_patients = sorted({[s for s in sorted(first.cohort.patients) for _ in first.cohort.patients[s]][i]
                            for i in first.splits(0)[0][2]})
    task = MultilabelTask(headline="nla-mmr", selections=("valid",), n_boot=cfg.protocol.n_boot, ddi=ddi)
    published = [{**p.__dict__, **({"our_model": "safedrug"} if p.model == "safedrug" else {})} for p in PUBLISHED]
    return Problem(
        task=task,
        jobs=medication_jobs(cohorts, spec),
        dataset={"description": "Cohorts: " + "; ".join(f"**{c}** ({COHORT_LABEL[c]})" for c in cfg.cohorts),
                 "version": version, "sizes": sizes, "files": tables.files},
        split_manifest=pd.DataFrame(manifest).sort_values(["subset", "repeat", "fold", "id"], kind="stable"),
        published=published,
        notes=[
            "The headline table is the first cohort's; every cohort's table, paired comparisons and missing-modality "
            "table follow in its own section (`subsets` in metrics.json).",
            "Repeated patient-level K-fold: the fold after the test fold is the validation fold (early stopping on "
            "visit-averaged PR-AUC, set threshold maximising validation Jaccard). Vocabularies and the top-ATC3 / "
            "top-diagnosis filters are fitted on the training fold; a test medication outside the fold's labels "
            "counts as missed (`vocabularies` in metrics.json counts such visits).",
            "Published numbers are on full MIMIC-III with SafeDrug's split: a different, ~100x larger cohort.",
            "ddi_rate: lower is safer; avg_meds: the mean predicted set size.",
            "Robustness rows remove one modality at test time only (the model was trained with all of them); the "
            "threshold stays the validation one.",
        ],
        skips=skips,
        extra={"etl": etl, "vocabularies": vocabularies,
               "selection_descriptions": {"valid": "the fold after the test fold (patient-level)"}},
        artifacts={"example_input": {"rows": example_rows(first.cohort, test_patients)}},
    )


RECIPE = REGISTRY.register(
    Recipe(
        name="nla-mmr",
        paper=Paper("Natural Language-Assisted Multi-modal Medication Recommendation", "2501.07166", "CIKM 2024"),
        summary="Medication sets (ATC3) from code texts aligned with drug structure + text, with a DDI penalty (MIMIC)",
        config_cls=NlaMmrConfig,
        build=build,
        data_licence="MIMIC-III Clinical Database Demo v1.4: ODbL v1.0 (full MIMIC-III/IV: PhysioNet credentialed)",
        published=PUBLISHED,
        deviations=DEVIATIONS,
        predictor=VisitPredictor,
    )
)
