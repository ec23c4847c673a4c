"""Explanations of image-text models and their measurement against masks and by perturbation."""

from polymodal.explain.maps import (
    EXPLAINERS,
    METHODS,
    ImageTextScorer,
    channel_entropy_weights,
    eclip_map,
    explain,
    gradcam_backend,
    gradcam_library,
    gradcam_map,
    gradient_map,
    medgrad_map,
)
from polymodal.explain.metrics import deletion_insertion, mask_mass_share, pointing_game

__all__ = [
    "EXPLAINERS",
    "METHODS",
    "ImageTextScorer",
    "channel_entropy_weights",
    "deletion_insertion",
    "eclip_map",
    "explain",
    "gradcam_backend",
    "gradcam_library",
    "gradcam_map",
    "gradient_map",
    "mask_mass_share",
    "medgrad_map",
    "pointing_game",
]
