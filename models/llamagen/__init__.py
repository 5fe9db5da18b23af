"""LlamaGen (FoundationVision) GPT and VQ tokenizer, written in plain torch."""

from .config import GPT_SIZES, GPTConfig, VQConfig, detect_kind, gpt_config
from .gpt import LlamaGenCondition, LlamaGenGPT
from .loader import gpt_from_state_dict, load_gpt, load_vq, parse_dtype, vq_from_state_dict
from .family import check_pair
from .session import LlamaGenSession
from .vq import LlamaGenVQ

__all__ = [
    "GPT_SIZES", "GPTConfig", "VQConfig", "detect_kind", "gpt_config", "LlamaGenCondition", "LlamaGenGPT",
    "LlamaGenSession", "LlamaGenVQ", "load_gpt", "load_vq", "gpt_from_state_dict", "vq_from_state_dict",
    "parse_dtype", "check_pair",
]
