"""Janus-Pro (deepseek-ai, 1B and 7B) text-to-image generation in plain torch: the Llama decoder with the
generation embedding, aligner and head, the reference's prompt rows, and LlamaGen's VQ-16 decoder, loaded
from either release (original ``MultiModalityCausalLM`` or transformers ``JanusForConditionalGeneration``)
without ``transformers``. Only the generation path is built; the understanding tower is never read.
"""

from .config import JanusConfig, janus_config
from .language_model import LlamaDecoder
from .loader import janus_from_state_dict, load_janus, load_janus_vq, read_release, vq_from_state_dict
from .model import JanusGenerator
from .prompt import PLAIN_ROLES, PRO_ROLES, JanusCondition, JanusPromptTokenizer, format_prompt, unconditional_ids
from .session import JanusSession
from .vq import JanusVQ

__all__ = [
    "JanusConfig", "janus_config", "LlamaDecoder", "janus_from_state_dict", "load_janus", "load_janus_vq",
    "read_release", "vq_from_state_dict", "JanusGenerator", "PLAIN_ROLES", "PRO_ROLES", "JanusCondition",
    "JanusPromptTokenizer", "format_prompt", "unconditional_ids", "JanusSession", "JanusVQ",
]
