"""Model-agnostic samplers for autoregressive image models (pure torch; never imports models/ or nodes/).

The shared core (entropy temperature, logits, the one distribution function, settings,
seeded draws, run scaffolding, results and layouts) sits at this level; each decoding
order has a folder of its own (``next_token/``, ``next_scale/``, ``masked/``). ``protocols.py`` holds the contract each
order's models implement, ``catalog.py`` the samplers as values.
"""

from .catalog import (CATALOG_NAMES, MASKED_SAMPLER_NAMES, SAMPLER_NAMES, SCALE_SAMPLER_NAMES, NamedSampler, NextToken,
                      SpeculativeJacobi, named_sampler, sampler_names)
from .distribution import token_distribution
from .entropy import PRESETS, EntropyTemperature, entropy, preset, preset_or_custom
from .layout import TokenLayout
from .logits import apply_cfg, filter_top_k_top_p
from .masked import Masked, MaskedOptions, sample_masked
from .next_scale import NextScale, NextScaleOptions, ScaleTemperature, filter_top_k_top_p_var, sample_next_scale
from .next_token import ACCEPTANCE_RULES, DRAFT_INITS, AcceptanceRule, SJDSettings, sample_ar, sample_sjd
from .protocols import GuidedLogits, MaskedPredictor, NextTokenModel, NextTokenSession, SamplingState, StepCallback
from .result import SamplingResult, SamplingStats
from .rng import make_generator, sample_categorical
from .settings import SamplerSettings

__all__ = [
    "SAMPLER_NAMES", "SCALE_SAMPLER_NAMES", "CATALOG_NAMES", "sampler_names", "NamedSampler", "NextToken",
    "SpeculativeJacobi", "named_sampler", "token_distribution",
    "PRESETS", "EntropyTemperature", "entropy", "preset", "preset_or_custom", "TokenLayout", "apply_cfg",
    "filter_top_k_top_p", "ACCEPTANCE_RULES", "DRAFT_INITS", "AcceptanceRule", "SJDSettings", "sample_ar",
    "sample_sjd", "GuidedLogits", "NextTokenModel", "NextTokenSession", "SamplingState", "StepCallback",
    "SamplingResult", "SamplingStats", "make_generator", "sample_categorical", "SamplerSettings", "NextScale",
    "NextScaleOptions", "ScaleTemperature", "filter_top_k_top_p_var", "sample_next_scale",
    "MASKED_SAMPLER_NAMES", "Masked", "MaskedOptions", "sample_masked", "MaskedPredictor",
]
