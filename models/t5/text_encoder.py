"""Prompts → LlamaGen caption features: tokenizer + T5 encoder + left alignment, in one object."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ...errors import CheckpointError, ConfigError
from ..checkpoint import build_strict, check_finite, check_state_matches
from ..dtypes import parse_dtype
from .config import T5Config, infer_t5_config
from .encoder import T5Encoder
from .files import find_t5_files, read_t5_encoder_state
from .prompt import clean_prompt, left_align
from .tokenizer import T5PromptTokenizer

log = logging.getLogger("arsample")


@dataclass
class PromptFeatures:
    """Left-aligned caption features (B, L, C) float32, their mask (B, L), and what was encoded."""

    features: torch.Tensor
    mask: torch.Tensor
    prompts: list[str]
    dropped_tokens: list[int] = field(default_factory=list)


def tokenize_prompts(tokenizer: T5PromptTokenizer, prompts: list[str], max_length: int, clean: bool):
    """Clean (optionally) and tokenize; warns when a prompt is cut to ``max_length`` tokens."""
    used = [clean_prompt(p) if clean else p for p in prompts]
    tokens = tokenizer(used, max_length)
    for prompt, lost in zip(prompts, tokens.dropped):
        if lost:
            log.warning("Prompt is longer than %d T5 tokens; the last %d tokens were dropped (as the reference "
                        "does): %.60s...", max_length, lost, prompt)
    return used, tokens


class T5TextEncoder:
    """A T5 encoder with its tokenizer, giving the caption features LlamaGen's t2i GPT reads."""

    def __init__(self, model: T5Encoder, tokenizer: T5PromptTokenizer, name: str = "t5"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name

    @property
    def width(self) -> int:
        return self.model.config.d_model

    def encode(self, prompts: list[str] | str, max_length: int = 120, clean: bool = True) -> PromptFeatures:
        """Prompts → left-aligned features (B, max_length, width) and mask, as LlamaGen's sample_t2i."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        used, tokens = tokenize_prompts(self.tokenizer, prompts, max_length, clean)
        hidden = self.model(tokens.ids, tokens.mask).float()
        features, mask = left_align(hidden, tokens.mask)
        return PromptFeatures(features, mask, used, tokens.dropped)


def read_t5_checked(path: str | os.PathLike, tokenizer: str | os.PathLike | None = None):
    """Files, encoder tensors and config of a T5 (file or folder), keys, shapes and finite values checked;
    nothing built."""
    files = find_t5_files(path, tokenizer)
    state = read_t5_encoder_state(files)
    config = infer_t5_config(state, files.hf_config)
    with torch.device("meta"):
        check_state_matches(T5Encoder(config), state, files.name, "T5 encoder")
    check_finite(state, files.name)
    return files, state, config


def load_t5(path: str | os.PathLike, *, tokenizer: str | os.PathLike | None = None, dtype="fp32",
            device: str | torch.device = "cpu") -> T5TextEncoder:
    """Load a T5 encoder (weights file or Hugging Face folder) and its tokenizer.

    The tokenizer is ``tokenizer`` if given, else ``tokenizer.json`` in the folder
    (or beside the weights file), else the T5 v1.1 tokenizer bundled with the pack
    (FLAN-T5 uses the T5 v1.1 vocabulary).
    """
    files = find_t5_files(path, tokenizer)
    model = t5_from_state_dict(read_t5_encoder_state(files), files.name, files.hf_config, dtype=dtype, device=device)
    tok = T5PromptTokenizer(files.tokenizer)
    if tok.vocab_size > model.config.vocab_size:
        raise CheckpointError(f"The tokenizer has {tok.vocab_size} tokens but '{files.name}' embeds only "
                              f"{model.config.vocab_size}: they do not belong together.")
    return T5TextEncoder(model, tok, files.name)


def t5_from_state_dict(state: dict[str, torch.Tensor], name: str, hf_config: dict | None = None, *,
                       dtype="fp32", device="cpu") -> T5Encoder:
    """Build our T5Encoder from encoder tensors with strict key and shape checks."""
    config: T5Config = infer_t5_config(state, hf_config)
    weight_dtype = parse_dtype(dtype)
    if weight_dtype == torch.float16:
        log.warning("%s: T5 in fp16 overflows on long prompts; activations are clamped. Prefer bf16 or fp32.", name)
    model = build_strict(T5Encoder, replace(config, name=Path(name).stem), state, name, dtype=weight_dtype)
    return model.to(device=device).eval().requires_grad_(False)


def check_width(encoder_width: int, caption_dim: int, what: str = "this GPT") -> None:
    """Raise a clear error when the T5's width is not the caption width the GPT was trained on."""
    if encoder_width != caption_dim:
        raise ConfigError(f"The text encoder gives {encoder_width}-wide features but {what} reads {caption_dim}-wide "
                          f"captions. LlamaGen t2i models need FLAN-T5-XL (2048).")
