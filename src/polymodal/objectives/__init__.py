"""Objectives: loss modules that return named parts; a task sums them with weights."""

from polymodal.objectives.binary import BinaryCrossEntropy
from polymodal.objectives.cauchy import CauchyGateLoss
from polymodal.objectives.contrastive import ExpertAgreementLoss, info_nce
from polymodal.objectives.ddi import MedicationObjective
from polymodal.objectives.survival import CoxPartialLikelihood, DiscreteTimeSurvivalNLL
from polymodal.objectives.weighted import WeightedSum

__all__ = ["BinaryCrossEntropy", "CauchyGateLoss", "CoxPartialLikelihood", "DiscreteTimeSurvivalNLL",
           "ExpertAgreementLoss", "MedicationObjective", "WeightedSum", "info_nce"]
