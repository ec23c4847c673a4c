"""Fusion operators: ``forward(tokens: Mapping[str, Tokens]) -> (B, out_dim)``, one module per operator."""

from polymodal.fusion.base import Fusion
from polymodal.fusion.concat import ConcatFusion
from polymodal.fusion.guided_moe import GuidedMoEFusion
from polymodal.fusion.layers import MaskedAttentionBlock
from polymodal.fusion.mode_experts import ModeExpertsFusion
from polymodal.fusion.ot_attention import OTAttentionFusion
from polymodal.fusion.text_query import TextQueryFusion

__all__ = ["ConcatFusion", "Fusion", "GuidedMoEFusion", "MaskedAttentionBlock", "ModeExpertsFusion",
           "OTAttentionFusion", "TextQueryFusion"]
