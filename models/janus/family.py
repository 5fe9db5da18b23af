"""Janus-Pro's registry entry: next-token text-to-image, prompts tokenised by the model itself, VQ-16 decoding.

Files: the release folder of either layout (read by role: MODEL = language model + generation embedding,
aligner and head, with the folder's config.json and tokenizer.json; TOKENIZER = the VQ decoder under
``gen_vision_model.``), or one weight file with config.json beside it. One checkpoint is both the model and
its tokenizer, so ``recognise`` answers MODEL and the tokenizer loader reads the same file for its VQ.

Conditions: prompt strings (``PromptSpec.encoder_kind`` "own": no text encoder; ``text_condition``), turned
into the reference's conditional and unconditional rows by ``prompt.py``. Tokens: one raster grid (24×24 at
384 px), decoded by the release's VQ (``vq.JanusVQ``, LlamaGen's VQ-16 class).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...errors import ConfigError, SamplingError
from ..registry import MODEL, PROMPT, TOKENIZER, Condition, Family, ModelInfo, PromptSpec, TokenizerInfo, family
from .keys import looks_like_janus, looks_like_janus_vq
from .loader import (RELEASE_KEY, complete_metadata, is_release_folder, janus_from_state_dict, read_release,
                     vq_from_state_dict)
from .model import JanusGenerator
from .prompt import JanusCondition
from .vq import JanusVQ

TEXT_ENCODER = "its own tokenizer (the release's tokenizer.json; no text encoder)"


class JanusFamily(Family):
    name = "janus"
    title = "Janus-Pro"
    order = "next-token"
    preset = "llamagen"  # a LlamaGen-style next-token model over the same VQ-16 tokens

    # -- files ------------------------------------------------------------------------------
    def recognise(self, state, metadata) -> str | None:
        if looks_like_janus(state):
            return MODEL  # the whole checkpoint: its VQ is the tokenizer, read from the same file
        if looks_like_janus_vq(state):
            return TOKENIZER  # the VQ part the folder reader gives the tokenizer loader
        if RELEASE_KEY in metadata and any(k.startswith("language_model.model.") for k in state):
            return MODEL  # the model part of a release folder that lacks the generation parts (refused when built)
        return None

    def read_file(self, path, role=MODEL) -> tuple[dict, dict] | None:
        """The ``role`` part of a Janus release folder (or of its weight index json), else None."""
        return read_release(path, role) if is_release_folder(path) else None

    def complete_metadata(self, path, state, metadata):
        """A weight file's config.json and tokenizer.json from its folder."""
        return complete_metadata(path, metadata) if looks_like_janus(state) or looks_like_janus_vq(state) else metadata

    def build_model(self, state, metadata, filename, *, dtype, device, image_size=None, tokenizer=None,
                    override=None):
        downsample = getattr(tokenizer, "downsample", None)
        return janus_from_state_dict(state, metadata, filename, dtype=dtype, device=device, image_size=image_size,
                                     downsample=downsample, override=override)

    def build_tokenizer(self, state, metadata, filename, *, dtype, device):
        return vq_from_state_dict(state, metadata, filename, dtype=dtype, device=device)

    def model_info(self, model: JanusGenerator, name: str, path) -> ModelInfo:
        c = model.config
        # "own": hosts pass prompt strings (text_condition); length = the longest prompt in tokens that fits
        spec = PromptSpec(length=c.max_prompt_tokens, width=c.hidden_size, encoder=TEXT_ENCODER, encoder_kind="own")
        return ModelInfo(family=self.name, name=name, kind=PROMPT, vocab_size=c.image_vocab_size,
                         layout=tuple(model.token_layout), prompt=spec, preset=self.preset)

    def tokenizer_info(self, tokenizer: JanusVQ, name: str) -> TokenizerInfo:
        return TokenizerInfo(self.name, name, tokenizer.codebook_size)

    # -- conditions -------------------------------------------------------------------------
    def class_condition(self, info, ids, names=None) -> Condition:
        raise SamplingError(f"{info.name} is a text-to-image model (Janus-Pro): give a text prompt, not classes.")

    def prompt_condition(self, info, features, mask, prompts, pooled=None, null=None) -> Condition:
        raise SamplingError(f"{info.name} (Janus-Pro) reads the prompt text itself: give the prompt, not text-encoder "
                            f"features.")

    def text_condition(self, model: JanusGenerator, info: ModelInfo, prompts: Sequence[str], host: str = "cli",
                       **options) -> Condition:
        """Prompt strings (one per image) → the reference's rows; ``options`` go to ``JanusGenerator.condition``
        (e.g. ``roles``). SamplingError when the model has no tokenizer.json or a prompt does not fit."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        cond = Condition(self.name, PROMPT, model.condition(prompts, **options), tuple(prompts))
        self.check_fit(info, cond)
        return cond

    def check_fit(self, info: ModelInfo, cond: Condition) -> None:
        value = cond.value
        if not isinstance(value, JanusCondition):
            raise SamplingError(f"{info.name} (Janus-Pro) needs a condition built from prompt text by this model.")
        longest = max(value.lengths)
        if longest > info.prompt.length:
            raise SamplingError(f"A prompt of {longest} tokens does not fit {info.name}: its context leaves room for "
                                f"{info.prompt.length} before the image tokens. Shorten the prompt.")

    # -- tokens and pictures ----------------------------------------------------------------
    def check_vocab(self, vocab_size: int, tokenizer: TokenizerInfo) -> None:
        if vocab_size != tokenizer.codebook_size:
            raise ConfigError(f"The Janus-Pro model predicts {vocab_size} token ids but {tokenizer.name} has "
                              f"{tokenizer.codebook_size} codes: use the VQ of the same Janus-Pro release.")

    # Janus-Pro's tokens are LlamaGen's (one raster grid of VQ-16 codes; JanusVQ is a LlamaGenVQ): its decoding,
    # layouts and previews are LlamaGen's.
    def decode(self, tokenizer: JanusVQ, tokens: torch.Tensor, layout) -> torch.Tensor:
        return family("llamagen").decode(tokenizer, tokens, layout)

    def layout_for(self, num_tokens: int) -> tuple[tuple[int, int], ...]:
        return family("llamagen").layout_for(num_tokens)

    def preview(self, tokenizer: JanusVQ, state, layout) -> np.ndarray | None:
        return family("llamagen").preview(tokenizer, state, layout)


FAMILY = JanusFamily()
