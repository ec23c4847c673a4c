"""MedGrad E-CLIP: explainable image-text skin-lesion diagnosis (Derm7pt, PH2).

Paper: Sadia Kamal, Tim Oates, "MedGrad E-CLIP: Enhancing Trust and Transparency in AI-Driven Skin
Lesion Diagnosis", arXiv 2501.06887 (2025). No official code was found.
Data: Derm7pt+ (gnapoles/Consistent-Derm7pt; images CC BY-NC-ND 4.0, metadata MIT) and PH2
(research use, cite Mendonça et al. 2013).

A CLIP-style model relates dermoscopy images to diagnostic-criteria texts; a lesion is classified
by matching it with diagnosis descriptions composed of those criteria, and each criterion text
gets a heat map (MedGrad E-CLIP: gradient-based E-CLIP maps with a weighted-entropy mechanism).

Faithful: contrastive image-text training on criteria captions; classification by description
matching; one heat map per criterion text; Grad-CAM and E-CLIP compared with MedGrad E-CLIP;
Derm7pt and PH2.

Deviations (each also in the medgrad-eclip section of docs/recipes.md):
  * LiT-style instead of fine-tuning CLIP: frozen EfficientNet-Lite0 (ImageNet) image features and
    frozen all-MiniLM-L6-v2 text features with trained projections (no CLIP weights offline);
    ``--image-backbone open_clip:<id>`` swaps in a medical CLIP such as BiomedCLIP when online;
  * E-CLIP on a pooled CNN: the attention-pool relevance is replaced by the local image-text
    similarity of each feature-map location; the entropy weighting is our reading of the paper;
  * captions are built from harmonised binary criteria (Derm7pt and PH2 annotate different ones);
  * shorter side to 224 px and a centred square (aspect kept; masks cropped alike), no augmentation
    (features are cached);
  * selection and thresholds on Derm7pt validation only; PH2 is an external test set;
  * extra variants: a diagnosis-supervised one and a concept bottleneck; baselines beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from polymodal.config import ProtocolConfig, TrainConfig
from polymodal.data.paths import resolve_cache_dir, resolve_data_dir
from polymodal.encoders.text import MINILM_ID
from polymodal.io import write_json, write_text
from polymodal.recipes.registry import REGISTRY, Paper, PublishedResult, Recipe

SplitKind = Literal["symmetric", "asymmetric"]


class MedGradEclipConfig(BaseModel):
    """MedGrad E-CLIP defaults; unknown keys are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_backbone: str = "efficientnet-lite0"  # or timm:<id>, open_clip:<id>[@tag] when online
    image_size: int = 224
    # "centre-crop" keeps the aspect ratio of non-square images (PH2 is 765x575); "squash" stretches
    # them to a square (the transform before benchmarks/medgrad_probe_preprocessing.py). Derm7pt+ is square.
    image_resize: Literal["squash", "centre-crop"] = "centre-crop"
    text_model: str = MINILM_ID
    splits: tuple[SplitKind, ...] = ("symmetric", "asymmetric")
    external_ph2: bool = True
    ph2_cv_folds: int = 5  # PH2 alone by stratified k-fold cross-validation; 0 skips it
    ph2_cv_seeds: int = 3  # repetitions of the cross-validation (each its own fold assignment)
    on_bad_image: Literal["raise", "skip"] = "raise"
    dim: int = 256  # shared embedding width of the LiT heads
    hidden: int = 0  # 0: linear image head (LiT); >0: one hidden layer
    dropout: float = 0.1
    concept_weight: float = 1.0  # criterion-prompt matching loss beside the caption InfoNCE
    diagnosis_weight: float = 1.0  # the "lit-trained" variant only; the zero-shot one never sees diagnoses
    explain_images: int = 12  # per dataset; 0 skips explanations (each costs ~100 CNN passes)
    explain_steps: int = 8  # points on each deletion/insertion curve
    explain_block: int = 16  # pixels per side of a perturbed block
    gallery_images: int = 4
    # One thread: the heads are tiny and the machine is shared (more threads only add contention).
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_epochs=200, patience=20, batch_size=64,
                                                                   lr=1e-3, weight_decay=1e-4, threads=1))
    protocol: ProtocolConfig = Field(default_factory=lambda: ProtocolConfig(seeds=5, selections=("valid",)))


DEVIATIONS = (
    "LiT-style image-text model: frozen EfficientNet-Lite0 (ImageNet) image features and frozen all-MiniLM-L6-v2 "
    "text features with trained projection heads, instead of fine-tuning CLIP (no CLIP weights load offline); "
    "--image-backbone open_clip:<id> loads a medical CLIP such as BiomedCLIP when online",
    "E-CLIP adapted to a pooled CNN: the attention-pool relevance of Grad-ECLIP is replaced by the local image-text "
    "similarity of each feature-map location; the entropy weighting (1 - normalised spatial entropy per channel) is "
    "our reading of the paper, whose formulas could not be consulted offline",
    "captions and prompts are built from seven harmonised binary criteria (Derm7pt and PH2 annotate different ones); "
    "PH2 is scored on the five it shares",
    "images: shorter side resized to 224 px and the centred 224x224 square kept (aspect ratio preserved, lesion "
    "masks cropped alike; squashing PH2's 765x575 images to a square cost the probe 0.12 PH2 ROC-AUC, "
    "benchmarks/medgrad_probe_preprocessing.md), not augmented (features are cached)",
    "model selection, early stopping and thresholds use the Derm7pt validation split only; PH2 is an external test "
    "set scored by models trained on Derm7pt",
    "beyond the paper: a diagnosis-supervised variant, a concept bottleneck, a linear probe and a prior baseline; "
    "the image-only fine-tuned CNN baseline (last two EfficientNet blocks) is a separate benchmark "
    "(benchmarks/medgrad_finetune_cnn.py), not part of the run, to keep it within its time budget",
    "Grad-CAM uses pytorch-grad-cam (extra 'gradcam') when usable; it imports torchvision, whose only wheel here is "
    "the CUDA build (fails on the CPU torch: 'operator torchvision::nms does not exist'), so the same formula runs "
    "in polymodal.explain and the report names the implementation used",
)

# The paper's result tables could not be read offline; these are the reference numbers,
# measured on the same files (logistic-regression probe on frozen EfficientNet-Lite0 features).
PUBLISHED = (
    PublishedResult("linear-probe (issue #6 reference)", "roc_auc", 0.784, "issue #6, measured on these files",
                    "Derm7pt+ symmetric split, test"),
    PublishedResult("linear-probe (issue #6 reference)", "roc_auc", 0.786, "issue #6, measured on these files",
                    "Derm7pt+ asymmetric split, test"),
)


def run(cfg: MedGradEclipConfig, *, data_dir: str | Path | None, out_dir: str | Path,
        cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Load Derm7pt+ and PH2, train every variant for every seed and split, explain, and write the run folder."""
    from polymodal.recipes.medgrad_run import run_medgrad  # heavier imports only when a run starts

    return run_medgrad(cfg, data_root=resolve_data_dir(data_dir), cache_root=resolve_cache_dir(cache_dir),
                       out_dir=Path(out_dir))


def write_run(out_dir: Path, cfg: MedGradEclipConfig, metrics: dict[str, Any], report: str) -> None:
    write_json(out_dir / "config.json", {"recipe": "medgrad-eclip", **cfg.model_dump()})
    write_json(out_dir / "metrics.json", metrics)
    write_text(out_dir / "report.md", report)


RECIPE = REGISTRY.register(
    Recipe(
        name="medgrad-eclip",
        paper=Paper("MedGrad E-CLIP: Enhancing Trust and Transparency in AI-Driven Skin Lesion Diagnosis",
                    "2501.06887", "arXiv 2025"),
        summary="Explainable image-text skin-lesion diagnosis with criterion heat maps (Derm7pt, PH2)",
        config_cls=MedGradEclipConfig,
        runner=run,
        data_licence="Derm7pt images CC BY-NC-ND 4.0 (metadata MIT); PH2 research use only",
        published=PUBLISHED,
        deviations=DEVIATIONS,
    )
)
