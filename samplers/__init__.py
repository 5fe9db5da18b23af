"""Model-agnostic samplers for autoregressive image models (pure torch)."""

from .ar import sample_ar
from .catalog import AR_SAMPLERS, SAMPLER_NAMES, NamedSampler, named_sampler
from .sjd import ACCEPTANCE_RULES, DRAFT_INITS, SJDSettings, sample_sjd
from .distribution import token_distribution
from .entropy import PRESETS, EntropyTemperature, entropy, preset
from .interface import ARModel, DecodeSession
from .logits import apply_cfg, filter_top_k_top_p
from .result import SamplingResult, SamplingStats
from .rng import make_generator, sample_categorical
from .settings import SamplerSettings

__all__ = [
    "sample_ar", "sample_sjd", "SJDSettings", "ACCEPTANCE_RULES", "DRAFT_INITS", "AR_SAMPLERS", "SAMPLER_NAMES", "NamedSampler", "named_sampler", "token_distribution", "PRESETS", "EntropyTemperature", "entropy", "preset", "ARModel",
    "DecodeSession", "apply_cfg", "filter_top_k_top_p", "SamplingResult", "SamplingStats", "make_generator",
    "sample_categorical", "SamplerSettings",
]
