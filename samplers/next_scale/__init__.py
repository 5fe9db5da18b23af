"""Next-scale decoding (VAR, STAR): one pass per scale, VAR's guidance ramp and filter rules, and the
entropy temperature per token ("+Prob.") and per scale ("+Scale-wise")."""

from .filters import filter_top_k_top_p_var
from .method import NextScale
from .sampler import FILTER_RULES, NextScaleOptions, ScaleModel, sample_next_scale
from .schedule import CFG_SCHEDULES, SCALE_TEMPERATURE_FORMS, ScaleTemperature, guidance_weight, scale_ratio

__all__ = [
    "sample_next_scale", "NextScaleOptions", "ScaleModel", "NextScale", "ScaleTemperature", "filter_top_k_top_p_var",
    "FILTER_RULES", "CFG_SCHEDULES", "SCALE_TEMPERATURE_FORMS", "guidance_weight", "scale_ratio",
]
