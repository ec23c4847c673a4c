"""UMPSNet: one survival model for several cancers, with metadata as text and optimal-transport fusion.

Paper: "From Single-Cancer to Pan-cancer Prognosis: A Multi-modal Deep Learning Framework for
Survival Analysis with Robust Generalization Capability" (UMPSNet), arXiv 2501.07016.
Code: github.com/binging512/UMPSNet (only compiled .pyc files of the model are public; the config
gives 4 time bins, 10 experts, NLL + cross-entropy "data" loss, lr 2e-4, weight decay 1e-5,
20 epochs, effective batch 32). Data: TCGA (NIH GDC open access) through MCAT (GPL-3.0) and
UMPSNet's metadata and splits (no licence stated).

Faithful: genomic profiles encoded per functional family by self-normalising networks (MCAT); four
kinds of metadata (demographics, cancer type, treatments, diagnosis) rendered as text templates and
embedded by a frozen text encoder; optimal-transport attention between genomic family tokens and
the other modality's tokens (MOTCat, with POT); a guided soft mixture of experts (10 experts) whose
gate reads the cancer-type embedding and whose gate logits predict the cancer type (cross-entropy);
a discrete-time survival NLL over 4 quantile bins of event times; one model trained on every
cohort at once; the UMPSNet 5-fold splits.

Deviations (each also in docs/recipes/umpsnet.md):
  * no whole-slide images (patch features are not available here): the OT attention's context is
    the metadata sentences instead of slide patches; a pathology encoder of precomputed patch
    features can be plugged in as another context modality;
  * all-MiniLM-L6-v2 (offline package) instead of CLIP's text encoder;
  * treatments are left out of the headline (recorded after diagnosis: possibly leaky); the
    with-treatment model runs beside it and is labelled possibly leaky;
  * balanced entropic Sinkhorn by default (batched in POT) instead of MOTCat's unbalanced solver
    (``--ot-method unbalanced`` runs it, one problem per sample);
  * the GMoE's internals are our reading of the paper (the source is not public);
  * early stopping and checkpoint choice on an inner validation split of each training fold
    (upstream trains a fixed 20 epochs and reports the test fold);
  * learning rate 1e-3 instead of 2e-4, chosen on those inner validation splits; each fold's model is
    the ensemble of its seeds;
  * RNA-seq z-scores are transformed with arcsinh + a scaler fitted on training patients.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from polymodal.config import ProtocolConfig, TrainConfig
from polymodal.data.schema import Record
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe

NAME = "umpsnet"
TEXT_MODALITIES = ("cancer", "metadata", "treatment")


class UMPSNetConfig(BaseModel):
    """UMPSNet defaults (official config where it says); unknown keys are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cohorts: tuple[str, ...] = ("BLCA", "LUAD")
    # Cohorts to be scored zero-shot later: keep only genomic columns their files also have (the
    # CNV columns differ between cohort files); their patients are never read.
    genomic_columns_also_in: tuple[str, ...] = ()
    text_model: str = "sentence-transformers/all-MiniLM-L6-v2"  # "hashing" = model-free (tests)
    dim: int = 64  # token size; MCAT uses 256, far more than ~600 training patients can feed
    snn_hidden: int = 256  # MCAT's SNN width
    dropout: float = 0.25  # MCAT's AlphaDropout
    heads: int = 2
    n_experts: int = 10  # official config
    n_bins: int = 4  # official config (model_num_classes)
    loss: Literal["nll", "cox"] = "nll"  # nll: MCAT's discrete-time NLL over n_bins; cox: partial likelihood
    alpha_surv: float = 0.0  # MCAT's default weight of the extra uncensored term
    group_weight: float = 1.0  # the cross-entropy "data loss" ("nllloss+celoss")
    ot_method: Literal["entropic", "unbalanced"] = "entropic"
    ot_reg: float = 0.1
    ot_reg_m: float = 0.5  # MOTCat's ot_tau
    ot_max_iter: int = 50
    with_treatment: bool = True  # also run the (possibly leaky) model with the treatment sentence
    per_cancer: bool = True  # also train one model per cancer
    genomic_only: bool = True  # MCAT's SNN on genes only, one per cancer
    # Seeds of the with-treatment and per-cancer comparisons; None: protocol.seeds, the same seeds and
    # folds as the headline (equal footing; a smaller number only to save time, and it is reported).
    comparison_seeds: int | None = None
    inner_valid_fraction: float = 0.2
    split_seed: int = 0
    n_folds: int = 5
    cox_penalizers: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    # Official: lr 2e-4, weight decay 1e-5, 20 epochs, effective batch 32. lr 1e-3 was chosen over 2e-4
    # on the inner validation splits of the five training folds (never the test folds): mean
    # within-cohort C-index of 2-seed ensembles 0.671 vs 0.661, and fewer epochs before early stopping.
    # One thread: tiny matrices.
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_epochs=20, patience=6, batch_size=32,
                                                                   lr=1e-3, weight_decay=1e-5, threads=1))
    protocol: ProtocolConfig = Field(default_factory=lambda: ProtocolConfig(seeds=3, selections=("valid",)))

    # The survival runner reads these names.
    @property
    def seeds(self) -> int:
        return self.protocol.seeds

    @property
    def n_boot(self) -> int:
        return self.protocol.n_boot


DEVIATIONS = (
    "no whole-slide images: the optimal-transport attention's context is the metadata sentences instead of slide "
    "patches (a pathology encoder of precomputed patch features plugs in as another context modality)",
    "all-MiniLM-L6-v2 (offline package) embeds the templates instead of CLIP's text encoder",
    "treatments are left out of the headline model because they are recorded after diagnosis and can reflect "
    "survival; the with-treatment model is reported beside it as possibly leaky",
    "balanced entropic Sinkhorn (POT, batched) by default instead of MOTCat's unbalanced solver "
    "(--ot-method unbalanced runs it)",
    "the guided mixture of experts is our reading of the paper (soft gate on the fused vector and the cancer-type "
    "embedding, cross-entropy on the gate's cancer-type logits); the upstream model source is not public",
    "early stopping and checkpoint on an inner validation split of each training fold; upstream trains 20 epochs "
    "and reports the test fold",
    "learning rate 1e-3 instead of 2e-4 (chosen on the inner validation splits); each fold's model is the "
    "ensemble of its 3 seeds (mean of risks standardised on the inner validation split)",
    "token size 64 (MCAT: 256) for ~600 training patients; RNA-seq z-scores go through arcsinh and a scaler "
    "fitted on training patients",
)

_MCAT = "MCAT repository results, 5-fold CV (mean over folds)"
PUBLISHED = (
    PublishedResult("snn-genomic", "c_index_blca", 0.541, _MCAT, "TCGA-BLCA, MCAT 5-fold splits"),
    PublishedResult("snn-genomic", "c_index_luad", 0.539, _MCAT, "TCGA-LUAD, MCAT 5-fold splits"),
    PublishedResult("MCAT (slides + genes)", "c_index_blca", 0.624, _MCAT, "TCGA-BLCA, MCAT 5-fold splits"),
    PublishedResult("MCAT (slides + genes)", "c_index_luad", 0.620, _MCAT, "TCGA-LUAD, MCAT 5-fold splits"),
    PublishedResult("umpsnet (slides + genes + text)", "c_index_mean", 0.725,
                    "UMPSNet paper, mean over 5 TCGA cohorts", "TCGA BLCA, BRCA, GBMLGG, LUAD, UCEC with slides"),
)


class UMPSNetFeaturizer:
    """Records -> genomics (1, F), cancer (1, E), metadata (2, E), treatment (1, E) arrays; clinical table.

    The genomic scaler is fitted on training patients only; sentence embeddings are fixed (frozen
    encoder) and computed once per process for every patient.
    """

    modalities: ClassVar[list[str]] = ["cancer", "genomics", "metadata", "treatment"]

    def __init__(self, genomics: pd.DataFrame, groups: dict[str, list[str]], text: dict[str, np.ndarray],
                 clip: float = 5.0) -> None:
        from polymodal.encoders.genomics import GenomicScaler

        self.genomics, self.text = genomics, text
        cols = list(dict.fromkeys(c for g in groups.values() for c in g))
        self.columns = cols
        position = {c: i for i, c in enumerate(cols)}
        self.group_index = {name: [position[c] for c in g] for name, g in groups.items() if g}
        self.scaler = GenomicScaler(clip)
        self.text_dim = next(iter(text.values())).shape[-1] if text else 0

    def __getstate__(self) -> dict[str, Any]:
        # Pickled without the cohort tables: a saved featuriser is re-pointed at a new cohort's data.
        return {k: v for k, v in self.__dict__.items() if k not in ("genomics", "text")}

    def with_data(self, genomics: pd.DataFrame, text: dict[str, np.ndarray]) -> UMPSNetFeaturizer:
        """This fitted featuriser reading another cohort's genomic table and sentence embeddings."""
        self.genomics, self.text = genomics, text
        return self

    def fit(self, records: Sequence[Record]) -> UMPSNetFeaturizer:
        self.scaler.fit(self.genomics.loc[[r.id for r in records], self.columns])
        self.clinical_fill_ = _clinical_frame(records).median()
        return self

    def transform(self, records: Sequence[Record]) -> list[dict[str, np.ndarray]]:
        genes = self.scaler.transform(self.genomics.loc[[r.id for r in records], self.columns])  # (N, F)
        out = []
        for i, r in enumerate(records):
            t = self.text[r.id]  # (4, E): demographic, cancer, treatment, diagnosis
            out.append({"genomics": genes[i : i + 1], "cancer": t[1:2], "metadata": t[[0, 3]], "treatment": t[2:3]})
        return out

    def clinical(self, records: Sequence[Record]) -> pd.DataFrame:
        """Age, sex, stage, T, N, M as numbers (ordinal stage/T/N/M); gaps filled with training medians."""
        return _clinical_frame(records).fillna(self.clinical_fill_).fillna(0.0)


def _ordinal(value: Any, prefix: str) -> float:
    """'Stage IIIA' -> 3, 'T2b' -> 2, 'N1' -> 1, 'M1a' -> 1; 'NX', 'MX', 'not reported' -> NaN."""
    text = str(value or "").strip().upper()
    if prefix == "STAGE":
        roman = text.replace("STAGE", "").strip().rstrip("ABC")
        return float({"I": 1, "II": 2, "III": 3, "IV": 4}.get(roman, np.nan))
    if text.startswith(prefix) and len(text) > 1 and text[1].isdigit():
        return float(text[1])
    return float("nan")


def _clinical_frame(records: Sequence[Record]) -> pd.DataFrame:
    rows = []
    for r in records:
        m = r.inputs["metadata"]
        demo, diag = m.get("demographic") or {}, m.get("diagnosis") or {}
        gender = str(demo.get("gender", "")).lower()
        rows.append({
            "age": float(demo["age"]) if demo.get("age") is not None else np.nan,
            "female": 1.0 if gender == "female" else 0.0 if gender == "male" else np.nan,
            "stage": _ordinal(diag.get("ajcc_pathologic_stage"), "STAGE"),
            "t": _ordinal(diag.get("ajcc_pathologic_t"), "T"),
            "n": _ordinal(diag.get("ajcc_pathologic_n"), "N"),
            "m": _ordinal(diag.get("ajcc_pathologic_m"), "M"),
        })
    return pd.DataFrame(rows, columns=["age", "female", "stage", "t", "n", "m"])


def build_umpsnet(cfg: UMPSNetConfig, feat: UMPSNetFeaturizer, modalities: Sequence[str], n_groups: int) -> nn.Module:
    """SNN family tokens + projected sentences -> OT attention fusion -> guided MoE -> (B, n_bins) hazards."""
    from polymodal.encoders.genomics import GroupSNNEncoder
    from polymodal.encoders.trainable import ProjectionEncoder
    from polymodal.fusion.guided_moe import GuidedMoEFusion
    from polymodal.fusion.ot_attention import OTAttentionFusion
    from polymodal.model import MultimodalModel

    d = cfg.dim
    encoders: dict[str, nn.Module] = {"genomics": GroupSNNEncoder(feat.group_index, d, cfg.snn_hidden, cfg.dropout)}
    encoders.update({m: ProjectionEncoder(feat.text_dim, d, dropout=cfg.dropout) for m in modalities
                     if m in TEXT_MODALITIES})
    base = OTAttentionFusion("genomics", [m for m in modalities if m != "genomics"], d, heads=cfg.heads,
                             dropout=cfg.dropout, reg=cfg.ot_reg, method=cfg.ot_method, reg_m=cfg.ot_reg_m,
                             max_iter=cfg.ot_max_iter)
    fusion = GuidedMoEFusion(base, "cancer", d, d, n_experts=cfg.n_experts, n_groups=n_groups, dropout=cfg.dropout)
    return MultimodalModel(encoders, fusion, nn.Linear(d, _outputs(cfg)))


def build_snn(cfg: UMPSNetConfig, feat: UMPSNetFeaturizer, modalities: Sequence[str], n_groups: int) -> nn.Module:
    """MCAT's genomic-only SNN: every genomic feature -> two SNN blocks -> (B, n_bins) hazards."""
    from polymodal.encoders.genomics import GroupSNNEncoder
    from polymodal.fusion.concat import ConcatFusion
    from polymodal.model import MultimodalModel

    everything = {"all": sorted({i for ix in feat.group_index.values() for i in ix})}
    encoder = GroupSNNEncoder(everything, cfg.dim, cfg.snn_hidden, cfg.dropout)
    return MultimodalModel({"genomics": encoder}, ConcatFusion(["genomics"], cfg.dim),
                           nn.Linear(cfg.dim + 1, _outputs(cfg)))


def _outputs(cfg: UMPSNetConfig) -> int:
    """Hazard logits per time bin (NLL) or one log-hazard (Cox)."""
    return 1 if cfg.loss == "cox" else cfg.n_bins


def embed_templates(cfg: UMPSNetConfig, records: Sequence[Record], cache_dir: Path | None) -> dict[str, np.ndarray]:
    """case_id -> (4, E) embeddings of the demographic, cancer, treatment and diagnosis sentences."""
    from polymodal.data.paths import resolve_cache_dir
    from polymodal.encoders.cache import EmbeddingCache
    from polymodal.encoders.templates import TEMPLATE_KINDS, TemplateEncoder
    from polymodal.encoders.text import HashingTextEncoder, SentenceTextEncoder

    text = HashingTextEncoder(dim=128) if cfg.text_model == "hashing" else SentenceTextEncoder(cfg.text_model)
    encoder = TemplateEncoder(text, EmbeddingCache(resolve_cache_dir(cache_dir) / "embeddings"))
    vectors = encoder.encode([r.inputs["metadata"] for r in records], TEMPLATE_KINDS)
    return {r.id: vectors[i] for i, r in enumerate(records)}


def make_problem(cfg: UMPSNetConfig, data_dir: Path | None, cache_dir: Path | None) -> Any:
    """Load the cohorts and assemble the survival CV problem (networks, featuriser, provenance)."""
    from polymodal.data.paths import resolve_data_dir
    from polymodal.data.sources.tcga import load_cohorts
    from polymodal.survival_experiment import NetworkSpec, SurvivalCVProblem

    data = load_cohorts(resolve_data_dir(data_dir), cfg.cohorts, n_folds=cfg.n_folds,
                        columns_also_in=cfg.genomic_columns_also_in)
    text = embed_templates(cfg, data.records, cache_dir)
    headline = ("cancer", "genomics", "metadata")

    def umpsnet(feat: Any, mods: tuple[str, ...], n_groups: int) -> nn.Module:
        return build_umpsnet(cfg, feat, mods, n_groups)

    def snn(feat: Any, mods: tuple[str, ...], n_groups: int) -> nn.Module:
        return build_snn(cfg, feat, mods, n_groups)

    networks = [NetworkSpec(NAME, "recipe", headline, umpsnet, robustness=cfg.protocol.robustness)]
    if cfg.with_treatment:
        networks.append(NetworkSpec("umpsnet+treatment (possibly leaky)", "baseline", (*headline, "treatment"),
                                    umpsnet, seeds=cfg.comparison_seeds))
    if cfg.per_cancer:
        networks.append(NetworkSpec("umpsnet-per-cancer", "baseline", headline, umpsnet, per_cohort=True,
                                    seeds=cfg.comparison_seeds))
    if cfg.genomic_only:
        networks.append(NetworkSpec("snn-genomic", "baseline", ("genomics",), snn, per_cohort=True))
    published = [{"model": p.model, "metric": p.metric, "value": p.value, "source": p.source,
                  "dataset_version": p.dataset_version, "split": p.split} for p in PUBLISHED]
    return SurvivalCVProblem(
        name=NAME, records=data.records, folds=data.folds,
        make_featurizer=lambda records: UMPSNetFeaturizer(data.genomics, data.groups, text),
        networks=networks,
        description=(f"TCGA {' + '.join(cfg.cohorts)} (MCAT cohort files, UMPSNet metadata and 5-fold splits; "
                     "the split's 'val' column is the held-out test fold), one patient per case_id."),
        files=data.files, version="MCAT b9cca63b cohort files + UMPSNet 2e820c04 metadata/splits",
        skips=data.skips, published=published,
        notes=[
            f"{NAME}: genomic family SNN tokens, projected MiniLM sentence tokens (demographics, diagnosis) and the "
            "cancer-type sentence; OT attention (genomics over sentences), three self-attended pooled streams, "
            "guided soft MoE; discrete-time NLL over 4 bins + cross-entropy on cancer type. No treatments.",
            "umpsnet+treatment adds the treatment sentence (Pharmaceutical / Radiation Therapy), recorded after "
            "diagnosis: it can reflect survival itself, so its number is possibly leaky.",
            "cox-clinical: lifelines Cox on age, sex, ordinal stage, T, N, M (one per cohort, L2 penalty chosen on "
            "the inner validation split); kaplan-meier: one constant risk (C-index 0.5).",
            "C-index per cohort: Harrell's (sksurv) per fold, mean over seeds, then mean and std over the 5 folds; "
            "CI: bootstrap of patients within folds. td_auc: sksurv cumulative_dynamic_auc at the 25/50/75% "
            "quantiles of test event times. KM plots: test risk centred on the fold's inner-validation median.",
        ],
    )


def run(cfg: UMPSNetConfig, *, data_dir: Path | None = None, out_dir: Path, cache_dir: Path | None = None
        ) -> dict[str, Any]:
    """``polymodal run umpsnet``: 5-fold CV on the configured cohorts; writes the run folder."""
    from polymodal.io import write_json
    from polymodal.survival_experiment import run_survival_cv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", {"recipe": NAME, **cfg.model_dump(mode="json")})
    return run_survival_cv(make_problem(cfg, data_dir, cache_dir), cfg, out_dir)


def _zero_shot(run_dir: Path, *, cohort: str, data_dir: Path | None = None, cache_dir: Path | None = None
               ) -> tuple[dict[str, Any], Path]:
    from polymodal.recipes.umpsnet_zero_shot import zero_shot

    return zero_shot(run_dir, cohort=cohort, data_dir=data_dir, cache_dir=cache_dir)


RECIPE = REGISTRY.register(
    Recipe(
        name=NAME,
        paper=Paper("From Single-Cancer to Pan-cancer Prognosis: A Multi-modal Deep Learning Framework for "
                    "Survival Analysis with Robust Generalization Capability (UMPSNet)", "2501.07016",
                    code_url="https://github.com/binging512/UMPSNet"),
        summary="Pan-cancer survival (TCGA BLCA + LUAD): genes by family + metadata as text, OT attention, guided MoE",
        config_cls=UMPSNetConfig,
        runner=run,
        data_licence="TCGA open access (NIH GDC) via MCAT (GPL-3.0); UMPSNet metadata and splits (no licence stated)",
        published=PUBLISHED,
        deviations=DEVIATIONS,
        extra={"zero_shot": _zero_shot},
    )
)
