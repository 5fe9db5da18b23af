"""The FLAN-T5 text encoder that LlamaGen's text-to-image models read prompts with, in plain torch."""

from .config import FLAN_T5_XL, T5Config, infer_t5_config
from .encoder import T5Encoder
from .files import T5Files, find_t5_files, read_t5_encoder_state
from .prompt import clean_prompt, left_align
from .text_encoder import PromptFeatures, T5TextEncoder, load_t5, read_t5_checked
from .tokenizer import T5PromptTokenizer

__all__ = [
    "FLAN_T5_XL", "T5Config", "infer_t5_config", "T5Encoder", "T5Files", "find_t5_files", "read_t5_encoder_state",
    "clean_prompt", "left_align", "PromptFeatures", "T5TextEncoder", "load_t5", "read_t5_checked", "T5PromptTokenizer",
]
